use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in petal, each message naming the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("directory not found: {}; check the path (it should hold one subfolder per class)", .0.display())]
    DirectoryNotFound(PathBuf),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("no class folders in {}: put each class's images in a subfolder named after the class", .0.display())]
    NoClasses(PathBuf),

    #[error("class folder {} has no images (.bmp .gif .jpeg .jpg .png): add images or remove the folder", .0.display())]
    EmptyClass(PathBuf),

    #[error("class_names {given:?} do not match the subfolders of the directory {found:?}: give a subset of them")]
    ClassNamesMismatch {
        given: Vec<String>,
        found: Vec<String>,
    },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("invalid model: {0}")]
    Model(String),

    #[error("{}: {reason}", path.display())]
    ModelFile { path: PathBuf, reason: String },

    /// A TensorFlow Lite model that cannot be read, written or run; `origin` is its file (or
    /// what the bytes came from).
    #[error("{origin}: {reason}")]
    TfLite { origin: String, reason: String },

    #[error(transparent)]
    Image(#[from] ImageError),

    /// Downloading or unpacking a data set: `what` is the URL or the archive.
    #[error("{what}: {reason}")]
    Fetch { what: String, reason: String },

    /// Ctrl-C: the command stopped, keeping what it says; the process exits with 130.
    #[error("interrupted: {0}")]
    Interrupted(String),

    #[error("{count} of {total} images cannot be used (first: {first}); fix or remove them, or run without --strict to skip them")]
    BadImages {
        count: usize,
        total: usize,
        first: Box<ImageError>,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// An image file that cannot be used, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ImageError {
    pub path: PathBuf,
    pub kind: ImageErrorKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageErrorKind {
    #[error("cannot read the file ({0})")]
    Unreadable(String),
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error(
        "not an image in a supported format (BMP, GIF, JPEG, PNG), whatever its extension says"
    )]
    NotAnImage,
    #[error("corrupt or truncated image ({0})")]
    Corrupt(String),
    #[error("image is {width}×{height} = {pixels} pixels, over the limit of {limit}; shrink it or raise the limit (--max-pixels)")]
    TooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
}

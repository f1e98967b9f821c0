//! Keras's `get_file`: download a file or an archive once into petal's cache folder, check it,
//! unpack it, and find it there next time without asking the network.
//!
//! Nothing that looks complete is left by a failed or interrupted fetch: downloads go to a
//! temporary file that is checked and then renamed, archives unpack into a temporary folder
//! that is renamed into place.

mod download;
mod extract;

pub use download::Progress;
pub use extract::ArchiveKind;

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// What to fetch and how to check it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch {
    pub url: String,
    /// File name in the cache (the URL's last segment by default); an extracted archive's
    /// folder is this name without the archive suffix.
    pub name: String,
    /// Lower-case hex SHA-256 of the download, checked before it is kept.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub extract: bool,
    /// A download larger than this (or than `size`, when known) is stopped and nothing kept.
    pub max_bytes: u64,
    /// How long a download may wait for more data before it is given up.
    pub read_timeout: std::time::Duration,
}

/// The most a download of unknown size may bring: a disk is not filled by an endless reply.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;
/// How long a stalled download waits for more data by default.
pub const DEFAULT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Where TensorFlow publishes the tutorial's files; `$PETAL_MIRROR` replaces it (a local mirror,
/// or the tests' server), the checks staying the same.
const TUTORIAL_ORIGIN: &str =
    "https://storage.googleapis.com/download.tensorflow.org/example_images";

fn tutorial_url(file: &str) -> String {
    let origin = std::env::var("PETAL_MIRROR").unwrap_or_else(|_| TUTORIAL_ORIGIN.into());
    format!("{}/{file}", origin.trim_end_matches('/'))
}

impl Fetch {
    /// A plain download of `url`, named after its last path segment.
    pub fn url(url: &str) -> Result<Fetch> {
        let name = url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{url} does not end in a file name: give --name"))
            })?;
        Ok(Fetch {
            url: url.to_owned(),
            name: name.to_owned(),
            sha256: None,
            size: None,
            extract: false,
            max_bytes: DEFAULT_MAX_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
        })
    }

    /// The tutorial's own files: `flower_photos` (the archive, with TensorFlow Datasets'
    /// recorded size and checksum) and `sunflower` (the photo it predicts at the end).
    pub fn known(name: &str) -> Option<Fetch> {
        match name {
            "flower_photos" => Some(Fetch {
                url: tutorial_url("flower_photos.tgz"),
                name: "flower_photos.tgz".into(),
                sha256: Some(
                    "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c".into(),
                ),
                size: Some(228_813_984),
                extract: true,
                max_bytes: DEFAULT_MAX_BYTES,
                read_timeout: DEFAULT_READ_TIMEOUT,
            }),
            "sunflower" => Some(Fetch {
                url: tutorial_url("592px-Red_sunflower.jpg"),
                name: "Red_sunflower.jpg".into(),
                sha256: None,
                size: None,
                extract: false,
                max_bytes: 64 << 20, // a photo of 0.2 MB: anything near this is not it
                read_timeout: DEFAULT_READ_TIMEOUT,
            }),
            _ => None,
        }
    }

    /// Where the result lives under `home`: the file, or the archive's unpacked folder.
    pub fn destination(&self, home: &Path) -> Result<PathBuf> {
        check_name(&self.name)?;
        Ok(match self.extract {
            true => home
                .join("datasets")
                .join(ArchiveKind::strip_suffix(&self.name)),
            false => home.join("downloads").join(&self.name),
        })
    }
}

/// petal's cache folder: `$PETAL_HOME`, else the platform's cache folder + `petal`
/// (`~/.cache/petal` on Linux), as Keras keeps its downloads in `~/.keras`.
pub fn petal_home() -> PathBuf {
    match std::env::var_os("PETAL_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("petal"),
    }
}

/// Fetches into `home` unless the result is already there, and returns where it is: the
/// downloaded file, or the folder holding the archive's contents (its single top folder, when
/// the archive has one, as flower_photos.tgz has `flower_photos/`).
pub fn fetch(request: &Fetch, home: &Path, progress: &mut dyn Progress) -> Result<PathBuf> {
    let destination = request.destination(home)?;
    if is_complete(request, &destination)? {
        return Ok(destination);
    }
    let parent = destination.parent().expect("destinations are inside home");
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let download = match request.extract {
        true => parent.join(format!(".{}.download-{}", request.name, std::process::id())),
        false => destination.clone(),
    };
    download::download(request, &download, progress)?;
    if request.extract {
        let unpacked = extract::extract_into_place(&download, &request.name, &destination);
        let _ = std::fs::remove_file(&download);
        unpacked?;
    }
    Ok(destination)
}

/// A finished fetch: the unpacked folder exists (it only appears by a final rename), or the
/// file exists and, when a checksum is given, matches it (a mismatch means fetch again).
fn is_complete(request: &Fetch, destination: &Path) -> Result<bool> {
    if request.extract {
        return Ok(destination.is_dir());
    }
    if !destination.is_file() {
        return Ok(false);
    }
    match &request.sha256 {
        None => Ok(true),
        Some(expected) => Ok(download::sha256_of_file(destination)? == expected.to_lowercase()),
    }
}

fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.starts_with('.');
    match plain {
        true => Ok(()),
        false => Err(Error::InvalidArgument(format!(
            "{name:?} is not a plain file name: give --name with letters, digits, '-', '_' or '.'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_urls_and_known_names() {
        let f = Fetch::url("https://example.org/data/set.tar.gz?x=1").unwrap();
        assert_eq!(f.name, "set.tar.gz");
        assert!(Fetch::url("https://example.org/").is_err());
        let flowers = Fetch::known("flower_photos").unwrap();
        let home = Path::new("/h");
        assert_eq!(
            flowers.destination(home).unwrap(),
            Path::new("/h/datasets/flower_photos")
        );
        assert_eq!(flowers.size, Some(228_813_984));
        let photo = Fetch::known("sunflower").unwrap();
        assert_eq!(
            photo.destination(home).unwrap(),
            Path::new("/h/downloads/Red_sunflower.jpg")
        );
        let mut sneaky = photo;
        sneaky.name = "../etc".into();
        assert!(sneaky.destination(home).is_err());
    }
}

//! Finding the images: classes are the sorted, non-hidden subfolders; files are walked
//! recursively in Keras's order (folders sorted by path, files sorted by name).

use crate::{Error, Result};
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The extensions Keras's `image_dataset_from_directory` indexes (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["bmp", "gif", "jpeg", "jpg", "png"];

/// What a directory holds: its classes and every image file with its label, in Keras's order
/// before shuffling.
#[derive(Debug, Clone)]
pub struct DirectoryIndex {
    pub root: PathBuf,
    pub class_names: Vec<String>,
    /// Paths relative to `root`, starting with the class folder.
    pub files: Vec<PathBuf>,
    pub labels: Vec<i32>,
}

impl DirectoryIndex {
    /// Indexes `root`. `class_names`, if given, picks and orders a subset of the subfolders;
    /// `follow_links` walks into folders that are symbolic links.
    pub fn scan(root: &Path, class_names: Option<&[String]>, follow_links: bool) -> Result<Self> {
        let meta = std::fs::metadata(root).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::DirectoryNotFound(root.to_path_buf()),
            _ => Error::io(root, e),
        })?;
        if !meta.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} is a file, not a directory of class folders",
                root.display()
            )));
        }
        let found = class_folders(root)?;
        if found.is_empty() {
            return Err(Error::NoClasses(root.to_path_buf()));
        }
        let class_names = match class_names {
            None => found,
            Some(given) => {
                let known: HashSet<&String> = found.iter().collect();
                if given.is_empty() || !given.iter().all(|c| known.contains(c)) {
                    return Err(Error::ClassNamesMismatch {
                        given: given.to_vec(),
                        found,
                    });
                }
                let mut seen = HashSet::new();
                if let Some(twice) = given.iter().find(|c| !seen.insert(*c)) {
                    return Err(Error::InvalidArgument(format!(
                        "class_names lists {twice:?} twice: name each class once"
                    )));
                }
                given.to_vec()
            }
        };
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (label, class) in class_names.iter().enumerate() {
            let class_files = walk_class(root, class, follow_links)?;
            if class_files.is_empty() {
                return Err(Error::EmptyClass(root.join(class)));
            }
            labels.extend(std::iter::repeat_n(label as i32, class_files.len()));
            files.extend(class_files);
        }
        Ok(DirectoryIndex {
            root: root.to_path_buf(),
            class_names,
            files,
            labels,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Images per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        entries.push((entry.file_name(), entry.path()));
    }
    entries.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    Ok(entries)
}

/// Subfolders (symbolic links to folders included, as Python's `isdir` follows them) whose
/// names do not start with a dot.
fn class_folders(root: &Path) -> Result<Vec<String>> {
    let mut classes = Vec::new();
    for (name, path) in read_dir_sorted(root)? {
        if name.as_encoded_bytes().starts_with(b".") || !path.is_dir() {
            continue;
        }
        let name = name.into_string().map_err(|n| {
            Error::InvalidArgument(format!(
                "class folder name {n:?} in {} is not valid UTF-8: rename it",
                root.display()
            ))
        })?;
        classes.push(name);
    }
    Ok(classes)
}

fn is_image_name(name: &std::ffi::OsStr) -> bool {
    let lower = name.to_string_lossy().to_lowercase();
    IMAGE_EXTENSIONS.iter().any(|ext| {
        lower.len() > ext.len()
            && lower.ends_with(ext)
            && lower.as_bytes()[lower.len() - ext.len() - 1] == b'.'
    })
}

/// The image files under `root/class`, relative to `root`, in the order of Keras's
/// `iter_valid_files`: folders sorted by their path, then files sorted by name.
fn walk_class(root: &Path, class: &str, follow_links: bool) -> Result<Vec<PathBuf>> {
    let mut folders: Vec<(PathBuf, Vec<OsString>)> = Vec::new();
    let mut pending = vec![PathBuf::from(class)];
    let mut visited = HashSet::new();
    while let Some(rel) = pending.pop() {
        let abs = root.join(&rel);
        // A link cycle under follow_links would make Python walk forever; petal stops at it.
        if follow_links && !visited.insert(abs.canonicalize().map_err(|e| Error::io(&abs, e))?) {
            continue;
        }
        let mut files = Vec::new();
        for (name, path) in read_dir_sorted(&abs)? {
            if path.is_dir() {
                let is_link = path
                    .symlink_metadata()
                    .map(|m| m.is_symlink())
                    .unwrap_or(false);
                if follow_links || !is_link {
                    pending.push(rel.join(&name));
                }
            } else if is_image_name(&name) {
                files.push(name);
            }
        }
        folders.push((rel, files));
    }
    folders.sort_by(|a, b| {
        a.0.as_os_str()
            .as_encoded_bytes()
            .cmp(b.0.as_os_str().as_encoded_bytes())
    });
    Ok(folders
        .into_iter()
        .flat_map(|(rel, files)| files.into_iter().map(move |f| rel.join(f)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }

    #[test]
    fn classes_sorted_hidden_skipped_files_filtered_and_recursive() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        touch(r, "b/2.PNG");
        touch(r, "b/1.jpeg");
        touch(r, "b/notes.txt");
        touch(r, "b/sub/0.bmp");
        touch(r, "b/jpg");
        touch(r, "a/x.GIF");
        touch(r, ".hidden/y.jpg");
        touch(r, "loose.jpg");
        let idx = DirectoryIndex::scan(r, None, false).unwrap();
        assert_eq!(idx.class_names, ["a", "b"]);
        let files: Vec<_> = idx
            .files
            .iter()
            .map(|p| p.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(files, ["a/x.GIF", "b/1.jpeg", "b/2.PNG", "b/sub/0.bmp"]);
        assert_eq!(idx.labels, [0, 1, 1, 1]);
        assert_eq!(idx.class_counts(), [1, 3]);
    }

    #[test]
    fn class_names_pick_and_order_a_subset() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a/1.jpg");
        touch(dir.path(), "b/1.jpg");
        touch(dir.path(), "c/1.jpg");
        let names = vec!["c".to_string(), "a".to_string()];
        let idx = DirectoryIndex::scan(dir.path(), Some(&names), false).unwrap();
        assert_eq!(idx.class_names, ["c", "a"]);
        assert_eq!(idx.labels, [0, 1]);
        let bad = vec!["z".to_string()];
        let err = DirectoryIndex::scan(dir.path(), Some(&bad), false).unwrap_err();
        assert!(matches!(err, Error::ClassNamesMismatch { .. }));
        let twice = vec!["a".to_string(), "a".to_string()];
        let err = DirectoryIndex::scan(dir.path(), Some(&twice), false).unwrap_err();
        assert!(err.to_string().contains("\"a\" twice"), "{err}");
    }

    #[test]
    fn bad_directories_have_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = DirectoryIndex::scan(&missing, None, false).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(matches!(err, Error::DirectoryNotFound(_)));

        assert!(matches!(
            DirectoryIndex::scan(dir.path(), None, false),
            Err(Error::NoClasses(_))
        ));

        touch(dir.path(), "full/1.jpg");
        fs::create_dir(dir.path().join("empty")).unwrap();
        let err = DirectoryIndex::scan(dir.path(), None, false).unwrap_err();
        assert!(
            matches!(err, Error::EmptyClass(ref p) if p.ends_with("empty")),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_only_when_asked_and_cycles_end() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        touch(r, "outside/o.jpg");
        touch(r, "a/1.jpg");
        std::os::unix::fs::symlink(r.join("outside"), r.join("a/linked")).unwrap();
        std::os::unix::fs::symlink(r.join("a"), r.join("a/loop")).unwrap();
        let names = vec!["a".to_string()];
        let plain = DirectoryIndex::scan(r, Some(&names), false).unwrap();
        assert_eq!(plain.files, [PathBuf::from("a/1.jpg")]);
        let followed = DirectoryIndex::scan(r, Some(&names), true).unwrap();
        assert_eq!(
            followed.files,
            [PathBuf::from("a/1.jpg"), PathBuf::from("a/linked/o.jpg")]
        );
    }
}

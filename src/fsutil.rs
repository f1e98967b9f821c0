//! File writes that never destroy: a regular file is replaced atomically (a reader sees the old
//! file or the complete new one, even if petal is killed midway), a link is written through to
//! its target, a device or pipe such as `/dev/stdout` is written in place, and an output that is
//! one of the command's inputs is refused.

use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path`: see the module's rules.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let path = follow_links(path)?;
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Err(Error::InvalidArgument(format!(
            "{} is a folder: give a file name for the output",
            path.display()
        ))),
        Ok(meta) if !meta.is_file() => write_in_place(&path, &meta, bytes),
        _ => replace_atomically(&path, bytes),
    }
}

/// The file a chain of symbolic links ends at (the path itself when it is not a link).
fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(Error::InvalidArgument(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// Character devices and pipes (`/dev/stdout`, `/dev/null`, a FIFO) take the bytes as a stream;
/// anything else that is not a regular file (a disk device, a socket) is refused.
fn write_in_place(path: &Path, meta: &std::fs::Metadata, bytes: &[u8]) -> Result<()> {
    if !is_stream(meta) {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file; petal writes only files, pipes and character devices",
            path.display()
        )));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::io(path, e))
}

#[cfg(unix)]
fn is_stream(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() || meta.file_type().is_fifo()
}

#[cfg(not(unix))]
fn is_stream(_meta: &std::fs::Metadata) -> bool {
    false
}

fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a file path", path.display())))?
        .to_string_lossy();
    remove_files_of_dead_processes(dir, &temporary_prefix(&file_name));
    let tmp = dir.join(temporary_name(&file_name, std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

fn temporary_prefix(file_name: &str) -> String {
    format!(".{file_name}.tmp-")
}

fn temporary_name(file_name: &str, pid: u32) -> String {
    format!("{}{pid}", temporary_prefix(file_name))
}

/// Removes the files named `prefix` + a process id in `dir` whose process is gone: what a
/// petal killed mid-write left (another petal may be writing right now, so only those).
pub(crate) fn remove_files_of_dead_processes(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !process_alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` still runs. Where that cannot be known (no `/proc`), every process is
/// taken as alive, so nothing is removed.
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Refuses an `output` that is one of `inputs` (the same file under any name, through links
/// too): writing it would destroy what the command reads.
pub fn refuse_output_over_input(output: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(out) = std::fs::canonicalize(output) else {
        return Ok(()); // does not exist yet
    };
    for input in inputs {
        if std::fs::canonicalize(input).is_ok_and(|i| i == out) {
            return Err(Error::InvalidArgument(format!(
                "the output {} is the input {}: writing it would destroy the input; choose another output",
                output.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Checks, before long work, that files can be written in folder `dir` (creating it): a
/// read-only place or a file in the way is reported now, not after hours of training.
pub fn check_writable_folder(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir);
    if meta.as_ref().is_ok_and(|m| !m.is_dir()) {
        return Err(Error::InvalidArgument(format!(
            "{} is not a folder: --out takes a folder for the run's files",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let probe = dir.join(temporary_name("write-check", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.bin");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn reports_unwritable_destination() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_atomically(&blocker.join("out.png"), b"x").unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_written_through_and_devices_are_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.bin");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");

        write_atomically(Path::new("/dev/null"), b"discarded").unwrap();
        let meta = std::fs::metadata("/dev/null").unwrap();
        assert!(is_stream(&meta), "/dev/null must stay a device");

        let err = write_atomically(dir.path(), b"x").unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
    }

    #[test]
    fn temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(temporary_name("model.bin", u32::MAX - 1));
        let alive = dir.path().join(temporary_name("model.bin", 1));
        let other = dir.path().join(temporary_name("other.bin", u32::MAX - 1));
        for f in [&dead, &alive, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        write_atomically(&dir.path().join("model.bin"), b"whole").unwrap();
        assert_eq!(dead.exists(), !Path::new("/proc/self").exists());
        assert!(alive.exists() && other.exists());
    }

    #[test]
    fn an_output_that_is_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.safetensors");
        std::fs::write(&model, b"weights").unwrap();
        let same = dir.path().join(".").join("model.safetensors");
        let err = refuse_output_over_input(&same, &[&model]).unwrap_err();
        assert!(err.to_string().contains("destroy"), "{err}");
        refuse_output_over_input(&dir.path().join("new.tflite"), &[&model]).unwrap();
    }

    #[test]
    fn a_folder_that_cannot_take_the_outputs_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        check_writable_folder(&dir.path().join("runs/a")).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = check_writable_folder(&file).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
    }
}

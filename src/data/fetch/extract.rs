//! Unpacking .tgz, .tar.gz, .tar and .zip archives into a temporary folder that is renamed into
//! place, refusing every entry that would land outside it.

use crate::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    TarGz,
    Tar,
    Zip,
}

const SUFFIXES: [&str; 4] = [".tar.gz", ".tgz", ".tar", ".zip"];

impl ArchiveKind {
    /// `name` without its archive suffix ("flower_photos.tgz" → "flower_photos").
    pub fn strip_suffix(name: &str) -> &str {
        SUFFIXES
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|stem| !stem.is_empty())
            .unwrap_or(name)
    }

    /// The archive's kind from its first bytes, whatever its name says.
    fn sniff(path: &Path) -> Result<Option<ArchiveKind>> {
        let mut head = [0u8; 512];
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..]).map_err(|e| Error::io(path, e))? {
                0 => break,
                k => n += k,
            }
        }
        Ok(match &head[..n] {
            [0x1f, 0x8b, ..] => Some(ArchiveKind::TarGz),
            [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Some(ArchiveKind::Zip),
            h if h.len() >= 262 && &h[257..262] == b"ustar" => Some(ArchiveKind::Tar),
            _ => None,
        })
    }
}

/// Unpacks `archive` (downloaded as `name`) so that `destination` holds its contents — its
/// single top folder's contents when it has one — appearing there only once complete.
pub fn extract_into_place(archive: &Path, name: &str, destination: &Path) -> Result<()> {
    let fail = |reason: String| Error::Fetch {
        what: name.to_owned(),
        reason,
    };
    let kind = ArchiveKind::sniff(archive)?.ok_or_else(|| {
        fail("not an archive petal can unpack (.tgz, .tar.gz, .tar or .zip): check the URL, or fetch it without --extract".into())
    })?;
    let tmp = destination.with_file_name(format!(
        ".{}.extract-{}",
        destination
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| {
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let unpacked = match kind {
            ArchiveKind::TarGz => unpack_tar(flate2::read::GzDecoder::new(open(archive)?), &tmp),
            ArchiveKind::Tar => unpack_tar(open(archive)?, &tmp),
            ArchiveKind::Zip => unpack_zip(archive, &tmp),
        };
        unpacked.map_err(fail)?;
        let contents = single_top_folder(&tmp)?.unwrap_or_else(|| tmp.clone());
        std::fs::rename(&contents, destination).map_err(|e| Error::io(destination, e))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn open(path: &Path) -> Result<BufReader<File>> {
    Ok(BufReader::new(
        File::open(path).map_err(|e| Error::io(path, e))?,
    ))
}

fn single_top_folder(dir: &Path) -> Result<Option<PathBuf>> {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    Ok(match &entries[..] {
        [only] if only.file_type().is_ok_and(|t| t.is_dir()) => Some(only.path()),
        _ => None,
    })
}

/// `path` as a relative path that stays inside the folder it is unpacked into.
fn inside(path: &Path) -> std::result::Result<PathBuf, String> {
    let mut clean = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => clean.push(p),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                "entry {} would land outside the target folder; refusing to unpack this archive",
                path.display()
            ))
            }
        }
    }
    Ok(clean)
}

/// A link is allowed when its target is relative and only goes down: then nothing reached
/// through it can be outside the folder.
fn check_link(entry: &Path, target: &Path) -> std::result::Result<(), String> {
    let downward = target
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    match downward {
        true => Ok(()),
        false => Err(format!(
            "entry {} is a link to {}, outside the target folder; refusing to unpack this archive",
            entry.display(),
            target.display()
        )),
    }
}

fn unpack_tar(reader: impl Read, into: &Path) -> std::result::Result<(), String> {
    let broken = |e: std::io::Error| format!("the archive is corrupt or truncated ({e})");
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let path = entry.path().map_err(broken)?.into_owned();
        let relative = inside(&path)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name().map_err(broken)?.unwrap_or_default();
            check_link(&path, &target)?;
        } else if !(kind.is_file() || kind.is_dir()) {
            continue; // devices, fifos and metadata entries carry no data set content
        }
        if relative.as_os_str().is_empty() {
            continue;
        }
        let unpacked = entry.unpack_in(into).map_err(broken)?;
        if !unpacked {
            return Err(format!(
                "entry {} would land outside the target folder; refusing to unpack this archive",
                path.display()
            ));
        }
    }
    Ok(())
}

fn unpack_zip(archive: &Path, into: &Path) -> std::result::Result<(), String> {
    let broken = |e: zip::result::ZipError| format!("the archive is corrupt or truncated ({e})");
    let file = File::open(archive).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(broken)?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(broken)?;
        let name = PathBuf::from(entry.name().map_err(broken)?.as_ref());
        let path = into.join(inside(&name)?);
        let written = if entry.is_dir() {
            std::fs::create_dir_all(&path)
        } else if entry.is_symlink() {
            let mut target = String::new();
            entry
                .read_to_string(&mut target)
                .map_err(|e| e.to_string())?;
            check_link(&name, Path::new(&target))?;
            make_parent(&path).and_then(|_| symlink(Path::new(&target), &path))
        } else {
            make_parent(&path).and_then(|_| {
                let mut out = File::create(&path)?;
                std::io::copy(&mut entry, &mut out).map(|_| ())
            })
        };
        written.map_err(|e| format!("cannot unpack {}: {e}", name.display()))?;
    }
    Ok(())
}

fn make_parent(path: &Path) -> std::io::Result<()> {
    path.parent().map_or(Ok(()), std::fs::create_dir_all)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(format!(
        "{} is a symbolic link, which petal unpacks on Unix only",
        link.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_paths() {
        assert_eq!(
            ArchiveKind::strip_suffix("flower_photos.tgz"),
            "flower_photos"
        );
        assert_eq!(ArchiveKind::strip_suffix("a.tar.gz"), "a");
        assert_eq!(ArchiveKind::strip_suffix("photo.jpg"), "photo.jpg");
        assert_eq!(
            inside(Path::new("./a/b.jpg")).unwrap(),
            Path::new("a/b.jpg")
        );
        assert!(inside(Path::new("a/../../b")).is_err());
        assert!(inside(Path::new("/etc/passwd")).is_err());
        assert!(check_link(Path::new("l"), Path::new("sub/x")).is_ok());
        assert!(check_link(Path::new("l"), Path::new("../x")).is_err());
        assert!(check_link(Path::new("l"), Path::new("/x")).is_err());
    }
}

//! Where decoded, resized images are kept between epochs — nowhere, in memory, or in a file —
//! and which files turned out to be unusable, so each bad file is reported once and skipped.
//! Images are kept as 8-bit pixels: four times less memory than float32.

use crate::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

/// Keras's `.cache()` (`Memory`) and `.cache(filename)` (`Disk`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CacheMode {
    #[default]
    None,
    Memory,
    /// A file of fixed-size records that survives the process: for sets larger than RAM, and to
    /// skip decoding on the next run. It is rebuilt when the files or the image settings change.
    Disk(PathBuf),
}

const UNKNOWN: u8 = 0;
const READY: u8 = 1;
const BAD: u8 = 2;

const MAGIC: &[u8; 8] = b"PETALC01";
const HEADER_LEN: u64 = 32;
const ALIGN: u64 = 4096;

pub(crate) struct ImageStore {
    state: Vec<AtomicU8>,
    kind: StoreKind,
}

enum StoreKind {
    Uncached,
    Memory(Vec<OnceLock<Arc<[u8]>>>),
    Disk {
        file: File,
        path: PathBuf,
        records_at: u64,
        record_len: usize,
    },
}

impl ImageStore {
    /// `key` identifies the file list and image settings; a disk cache with another key is
    /// started afresh.
    pub fn open(mode: &CacheMode, len: usize, record_len: usize, key: u64) -> Result<Self> {
        let fresh = || (0..len).map(|_| AtomicU8::new(UNKNOWN)).collect::<Vec<_>>();
        Ok(match mode {
            CacheMode::None => ImageStore {
                state: fresh(),
                kind: StoreKind::Uncached,
            },
            CacheMode::Memory => ImageStore {
                state: fresh(),
                kind: StoreKind::Memory((0..len).map(|_| OnceLock::new()).collect()),
            },
            CacheMode::Disk(path) => open_disk(path, len, record_len, key)?,
        })
    }

    pub fn is_bad(&self, i: usize) -> bool {
        self.state[i].load(Ordering::Acquire) == BAD
    }

    /// Records that sample `i` cannot be decoded; true the first time, so it is reported once.
    pub fn mark_bad(&self, i: usize) -> bool {
        let first = self.state[i].swap(BAD, Ordering::AcqRel) != BAD;
        if first {
            self.write_state(i, BAD);
        }
        first
    }

    pub fn is_ready(&self, i: usize) -> bool {
        self.state[i].load(Ordering::Acquire) == READY && !matches!(self.kind, StoreKind::Uncached)
    }

    pub fn get(&self, i: usize) -> Option<Arc<[u8]>> {
        if !self.is_ready(i) {
            return None;
        }
        match &self.kind {
            StoreKind::Uncached => None,
            StoreKind::Memory(slots) => slots[i].get().cloned(),
            StoreKind::Disk {
                file,
                records_at,
                record_len,
                ..
            } => {
                let mut buf = vec![0u8; *record_len];
                let at = records_at + (i * record_len) as u64;
                file.read_exact_at(&mut buf, at)
                    .ok()
                    .map(|_| Arc::from(buf))
            }
        }
    }

    pub fn put(&self, i: usize, pixels: &Arc<[u8]>) {
        match &self.kind {
            StoreKind::Uncached => return,
            StoreKind::Memory(slots) => {
                let _ = slots[i].set(pixels.clone());
            }
            StoreKind::Disk {
                file,
                path,
                records_at,
                record_len,
            } => {
                let at = records_at + (i * record_len) as u64;
                if let Err(e) = file.write_all_at(pixels, at) {
                    // A full disk must not end a training run: keep going uncached for this image.
                    eprintln!(
                        "warning: cannot write the image cache {}: {e}",
                        path.display()
                    );
                    return;
                }
            }
        }
        self.state[i].store(READY, Ordering::Release);
        self.write_state(i, READY);
    }

    fn write_state(&self, i: usize, state: u8) {
        if let StoreKind::Disk { file, .. } = &self.kind {
            let _ = file.write_all_at(&[state], HEADER_LEN + i as u64);
        }
    }
}

fn open_disk(path: &Path, len: usize, record_len: usize, key: u64) -> Result<ImageStore> {
    let records_at = (HEADER_LEN + len as u64).div_ceil(ALIGN) * ALIGN;
    let total = records_at + (len * record_len) as u64;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let header = disk_header(key, len, record_len);
    let mut found = [0u8; HEADER_LEN as usize];
    let reusable = file.read_exact_at(&mut found, 0).is_ok()
        && found == header
        && file.metadata().map(|m| m.len() == total).unwrap_or(false);
    let mut flags = vec![UNKNOWN; len];
    if reusable {
        file.read_exact_at(&mut flags, HEADER_LEN)
            .map_err(|e| Error::io(path, e))?;
    } else {
        let init = || -> std::io::Result<()> {
            file.set_len(0)?;
            file.set_len(total)?;
            file.write_all_at(&header, 0)
        };
        init().map_err(|e| Error::io(path, e))?;
    }
    Ok(ImageStore {
        state: flags.into_iter().map(AtomicU8::new).collect(),
        kind: StoreKind::Disk {
            file,
            path: path.to_path_buf(),
            records_at,
            record_len,
        },
    })
}

fn disk_header(key: u64, len: usize, record_len: usize) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&key.to_le_bytes());
    h[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    h[24..32].copy_from_slice(&(record_len as u64).to_le_bytes());
    h
}

/// FNV-1a: a hash that stays the same across Rust versions, for cache keys stored on disk.
#[derive(Clone, Copy)]
pub(crate) struct StableHasher(u64);

impl StableHasher {
    pub fn new() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(v: u8) -> Arc<[u8]> {
        Arc::from(vec![v; 6])
    }

    #[test]
    fn memory_keeps_and_bad_is_reported_once() {
        let store = ImageStore::open(&CacheMode::Memory, 3, 6, 0).unwrap();
        assert!(store.get(0).is_none());
        store.put(0, &px(7));
        assert_eq!(&*store.get(0).unwrap(), &[7; 6]);
        assert!(store.mark_bad(1));
        assert!(!store.mark_bad(1));
        assert!(store.is_bad(1) && !store.is_bad(2));
    }

    #[test]
    fn uncached_keeps_nothing_but_bad_marks() {
        let store = ImageStore::open(&CacheMode::None, 2, 6, 0).unwrap();
        store.put(0, &px(1));
        assert!(store.get(0).is_none());
        store.mark_bad(1);
        assert!(store.is_bad(1));
    }

    #[test]
    fn disk_cache_survives_reopening_and_resets_on_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let mode = CacheMode::Disk(dir.path().join("c/images.cache"));
        {
            let store = ImageStore::open(&mode, 3, 6, 42).unwrap();
            store.put(2, &px(9));
            store.mark_bad(0);
        }
        let again = ImageStore::open(&mode, 3, 6, 42).unwrap();
        assert_eq!(&*again.get(2).unwrap(), &[9; 6]);
        assert!(again.is_bad(0));
        assert!(again.get(1).is_none());
        drop(again);
        let other = ImageStore::open(&mode, 3, 6, 43).unwrap();
        assert!(other.get(2).is_none() && !other.is_bad(0));
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        let mut h = StableHasher::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}

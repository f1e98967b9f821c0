//! HTTP(S) download into a temporary file, hashed on the way, renamed only when it checks out.

use super::Fetch;
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// Told how far a download has got, to draw a progress bar.
pub trait Progress {
    /// The response arrived; `total` is its length when the server says.
    fn start(&mut self, total: Option<u64>);
    /// `bytes` have arrived so far.
    fn advance(&mut self, bytes: u64);
    fn finish(&mut self);
}

/// Downloads `request.url` to `path` (through a temporary file beside it), checking size and
/// checksum when `request` gives them.
pub fn download(request: &Fetch, path: &Path, progress: &mut dyn Progress) -> Result<()> {
    let fail = |reason: String| Error::Fetch {
        what: request.url.clone(),
        reason,
    };
    let prefix = format!(
        ".{}.part-",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    if let Some(dir) = path.parent() {
        crate::fsutil::remove_files_of_dead_processes(dir, &prefix);
    }
    let tmp = path.with_file_name(format!("{prefix}{}", std::process::id()));
    let limit = request
        .size
        .unwrap_or(request.max_bytes)
        .min(request.max_bytes);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let copied = match request.url.strip_prefix("file://") {
            // As Keras's get_file, a file:// URL is copied (and checked) like a download.
            Some(local) => {
                let mut source = std::fs::File::open(local).map_err(|e| Error::io(local, e))?;
                progress.start(source.metadata().ok().map(|m| m.len()));
                copy_hashing(&mut source, &mut file, progress, limit)
            }
            None => {
                let mut response = agent(request.read_timeout)
                    .get(&request.url)
                    .call()
                    .map_err(|e| fail(explain(&e)))?;
                let body = response.body_mut();
                progress.start(body.content_length().or(request.size));
                copy_hashing(&mut body.as_reader(), &mut file, progress, limit)
            }
        };
        let (bytes, sha256) = copied.map_err(|e| match e {
            Copy::Read(e) if timed_out(&e) => fail(format!(
                "no data arrived for {} s ({e}); try again, or raise --read-timeout on a slow link",
                request.read_timeout.as_secs()
            )),
            Copy::Read(e) => fail(format!("the download broke off: {e}; try again")),
            Copy::Write(e) => Error::io(&tmp, e),
            Copy::TooLarge => fail(format!(
                "the download passed {limit} bytes, more than {}; stopped, nothing was kept",
                match request.size {
                    Some(_) => "the file's known size",
                    None => "--max-bytes allows",
                }
            )),
        })?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        progress.finish();
        if let Some(size) = request.size.filter(|&s| s != bytes) {
            return Err(fail(format!(
                "got {bytes} bytes, expected {size}: the download is incomplete or not the expected file"
            )));
        }
        if let Some(expected) = request.sha256.as_deref() {
            if !expected.eq_ignore_ascii_case(&sha256) {
                return Err(fail(format!(
                    "SHA-256 {sha256} does not match the expected {expected}: the file is corrupt or not the one expected; nothing was kept"
                )));
            }
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Waits are bounded so an unreachable, silent or stalled server fails instead of hanging; the
/// body's whole transfer is not, since a large data set on a slow link may take long.
fn agent(read_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(read_timeout))
        .build()
        .into()
}

/// A message for a failed request that says what to do.
fn explain(error: &ureq::Error) -> String {
    match error {
        ureq::Error::StatusCode(code) => format!(
            "the server answered HTTP {code}; check the URL, or try again later if it is a server error"
        ),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Io(_) => format!(
            "cannot reach the server ({error}); check the network, or point petal at a local copy (e.g. --data DIR)"
        ),
        _ => format!("the request failed: {error}"),
    }
}

/// Whether a read failed because no data came in time (ureq wraps its timeout in the I/O error).
fn timed_out(e: &std::io::Error) -> bool {
    let ureq_timeout = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
    ureq_timeout || e.kind() == std::io::ErrorKind::TimedOut
}

enum Copy {
    Read(std::io::Error),
    Write(std::io::Error),
    TooLarge,
}

/// Copies `from` to `to` (at most `limit` bytes) and returns the bytes and their SHA-256.
fn copy_hashing(
    from: &mut dyn Read,
    to: &mut dyn Write,
    progress: &mut dyn Progress,
    limit: u64,
) -> std::result::Result<(u64, String), Copy> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        total += n as u64;
        if total > limit {
            return Err(Copy::TooLarge);
        }
        hasher.update(&buffer[..n]);
        to.write_all(&buffer[..n]).map_err(Copy::Write)?;
        progress.advance(total);
    }
    Ok((total, hex(&hasher.finalize())))
}

pub fn sha256_of_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    match copy_hashing(&mut file, &mut std::io::sink(), &mut Quiet, u64::MAX) {
        Ok((_, sha256)) => Ok(sha256),
        Err(Copy::Read(e) | Copy::Write(e)) => Err(Error::io(path, e)),
        Err(Copy::TooLarge) => unreachable!("no limit was set"),
    }
}

struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: Option<u64>) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

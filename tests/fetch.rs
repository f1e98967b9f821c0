//! `petal data fetch` against a local HTTP server that serves archives built by the tests:
//! downloads, checks, unpacks, finds its cache, and refuses what it must.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Reply {
    status: u16,
    body: Vec<u8>,
    /// The Content-Length announced; more than the body means the connection breaks early.
    announced: usize,
}

fn ok(body: Vec<u8>) -> Reply {
    Reply {
        status: 200,
        announced: body.len(),
        body,
    }
}

/// Serves `routes` on 127.0.0.1 until the test ends; counts requests.
fn serve(routes: HashMap<&'static str, Reply>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let missing = Reply {
                status: 404,
                body: b"not found".to_vec(),
                announced: 9,
            };
            let reply = routes.get(path).unwrap_or(&missing);
            let head = format!(
                "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reply.status, reply.announced
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&reply.body);
            if path.starts_with("/stall") {
                // The body stops arriving but the connection stays open.
                std::thread::sleep(std::time::Duration::from_secs(4));
            }
        }
    });
    (base, count)
}

fn petal(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petal"))
        .env("PETAL_HOME", home)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A .tgz of `top/` with two class folders of one file each.
fn flowers_tgz() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, body) in [("top/a/1.txt", "one"), ("top/b/2.txt", "two")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, body.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A .tar with one entry whose raw name or link target is given as is, as an attacker writes it.
fn raw_tar(name: &str, link_target: Option<&str>) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_mode(0o644);
    match link_target {
        Some(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            header.set_size(0);
        }
        None => header.set_size(4),
    }
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    if link_target.is_none() {
        let mut block = b"evil".to_vec();
        block.resize(512, 0);
        out.extend(block);
    }
    out.resize(out.len() + 1024, 0);
    // Old-style headers lack "ustar": petal recognises tars by it, so mark this one too.
    out[257..262].copy_from_slice(b"ustar");
    let sum: u32 = out[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    out[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out
}

fn zip_with(name: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(name, options).unwrap();
    zip.write_all(b"data").unwrap();
    zip.finish().unwrap().into_inner()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn fetches_checks_unpacks_and_then_finds_its_cache() {
    let archive = flowers_tgz();
    let digest = sha256(&archive);
    let mut routes = HashMap::new();
    routes.insert("/sets/flowers.tgz", ok(archive.clone()));
    routes.insert("/photo.jpg", ok(b"jpeg bytes".to_vec()));
    routes.insert("/sets/flowers.zip", ok(zip_with("z/c/3.txt")));
    let (base, requests) = serve(routes);
    let home = tempfile::tempdir().unwrap();
    let url = format!("{base}/sets/flowers.tgz");
    let args = [
        "data",
        "fetch",
        url.as_str(),
        "--sha256",
        digest.as_str(),
        "--extract",
    ];
    let out = petal(home.path(), &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let folder = home.path().join("datasets/flowers");
    assert_eq!(text(&out.stdout).trim(), folder.to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(folder.join("a/1.txt")).unwrap(),
        "one"
    );
    assert_eq!(
        tree(&folder),
        [
            Path::new("a"),
            Path::new("a/1.txt"),
            Path::new("b"),
            Path::new("b/2.txt")
        ]
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    let again = petal(home.path(), &args);
    assert!(again.status.success());
    assert_eq!(again.stdout, out.stdout);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "a cache hit makes no request"
    );
    assert_eq!(
        tree(&home.path().join("datasets")).len(),
        5,
        "no download left behind"
    );

    let photo = petal(
        home.path(),
        &["data", "fetch", &format!("{base}/photo.jpg")],
    );
    assert!(photo.status.success(), "{}", text(&photo.stderr));
    let file = home.path().join("downloads/photo.jpg");
    assert_eq!(text(&photo.stdout).trim(), file.to_str().unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), b"jpeg bytes");

    let zip_url = format!("{base}/sets/flowers.zip");
    let zipped = petal(
        home.path(),
        &["data", "fetch", &zip_url, "--extract", "--name", "z.zip"],
    );
    assert!(zipped.status.success(), "{}", text(&zipped.stderr));
    assert_eq!(
        std::fs::read(home.path().join("datasets/z/c/3.txt")).unwrap(),
        b"data"
    );
}

#[test]
fn failed_fetches_say_why_and_leave_nothing() {
    let archive = flowers_tgz();
    let mut routes = HashMap::new();
    routes.insert("/good.tgz", ok(archive.clone()));
    routes.insert(
        "/truncated.tgz",
        Reply {
            status: 200,
            announced: archive.len() * 2,
            body: archive.clone(),
        },
    );
    routes.insert(
        "/broken.tgz",
        Reply {
            status: 500,
            body: b"oops".to_vec(),
            announced: 4,
        },
    );
    routes.insert("/page.tgz", ok(b"<html>not an archive</html>".to_vec()));
    routes.insert("/escape.tar", ok(raw_tar("../evil.txt", None)));
    routes.insert("/absolute.tar", ok(raw_tar("/tmp/petal-evil.txt", None)));
    routes.insert("/link.tar", ok(raw_tar("innocent", Some("../../outside"))));
    routes.insert("/escape.zip", ok(zip_with("../evil.txt")));
    let (base, _) = serve(routes);
    let home = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let cases: [(&str, &[&str], &str); 8] = [
        ("good.tgz", &["--sha256", &wrong], "does not match"),
        ("truncated.tgz", &[], "broke off"),
        ("broken.tgz", &[], "HTTP 500"),
        ("missing.tgz", &[], "HTTP 404"),
        ("page.tgz", &[], "not an archive"),
        ("escape.tar", &[], "outside the target folder"),
        ("absolute.tar", &[], "outside the target folder"),
        ("link.tar", &[], "outside the target folder"),
    ];
    for (file, extra, words) in cases {
        let url = format!("{base}/{file}");
        let mut args = vec!["data", "fetch", url.as_str(), "--extract"];
        args.extend(extra);
        let out = petal(home.path(), &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains(words) && err.contains(file), "{file}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            tree(&home.path().join("datasets")),
            Vec::<PathBuf>::new(),
            "{file} left files"
        );
    }
    let url = format!("{base}/escape.zip");
    let out = petal(home.path(), &["data", "fetch", &url, "--extract"]);
    assert!(
        text(&out.stderr).contains("outside the target folder"),
        "{}",
        text(&out.stderr)
    );
    assert!(!home.path().join("evil.txt").exists() && !Path::new("/tmp/petal-evil.txt").exists());
    let offline = petal(home.path(), &["data", "fetch", "http://127.0.0.1:9/x.tgz"]);
    assert!(
        text(&offline.stderr).contains("cannot reach the server"),
        "{}",
        text(&offline.stderr)
    );
    let unknown = petal(home.path(), &["data", "fetch", "tulip_photos"]);
    assert!(text(&unknown.stderr).contains("neither a known data set"));
}

#[test]
fn stalled_and_endless_downloads_stop_and_file_urls_are_fetched() {
    let mut routes = HashMap::new();
    routes.insert(
        "/stall.tgz",
        Reply {
            status: 200,
            announced: 1000,
            body: vec![0; 10],
        },
    );
    routes.insert("/endless.bin", ok(vec![7; 1 << 20]));
    let (base, _) = serve(routes);
    let home = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let url = format!("{base}/stall.tgz");
    let out = petal(home.path(), &["data", "fetch", &url, "--read-timeout", "1"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no data arrived for 1 s"), "{err}");
    assert!(
        started.elapsed().as_secs() < 4,
        "the stall was not cut short"
    );

    // What a fetch killed mid-download left: removed by the next fetch of the same file.
    let downloads = home.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::write(downloads.join(".endless.bin.part-4294967294"), b"partial").unwrap();
    let url = format!("{base}/endless.bin");
    let out = petal(
        home.path(),
        &["data", "fetch", &url, "--max-bytes", "100000"],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("passed 100000 bytes"), "{err}");
    assert_eq!(tree(&home.path().join("downloads")), Vec::<PathBuf>::new());

    let local = home.path().join("flowers.tgz");
    std::fs::write(&local, flowers_tgz()).unwrap();
    let url = format!("file://{}", local.display());
    let out = petal(home.path(), &["data", "fetch", &url, "--extract"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("datasets"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn known_data_sets_use_the_cache_or_a_mirror_and_keep_their_checksum() {
    let mut routes = HashMap::new();
    routes.insert("/flower_photos.tgz", ok(flowers_tgz()));
    let (base, requests) = serve(routes);
    let home = tempfile::tempdir().unwrap();
    let fetch = |home: &Path| {
        Command::new(env!("CARGO_BIN_EXE_petal"))
            .env("PETAL_HOME", home)
            .env("PETAL_MIRROR", &base)
            .args(["data", "fetch", "flower_photos"])
            .output()
            .unwrap()
    };
    // The mirror serves another archive than TensorFlow's: its size and checksum give it away.
    let out = fetch(home.path());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not the expected file"), "{err}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert_eq!(tree(&home.path().join("datasets")), Vec::<PathBuf>::new());
    // A finished fetch in the cache is used without asking anyone.
    let cached = home.path().join("datasets/flower_photos/daisy");
    std::fs::create_dir_all(&cached).unwrap();
    let out = fetch(home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        home.path().join("datasets/flower_photos").to_str().unwrap()
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

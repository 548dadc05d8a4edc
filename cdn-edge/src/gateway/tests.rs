//! The gateway against a real store, a real socket and `curl` (or raw TCP for requests curl
//! will not send).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Command;

use super::*;
use crate::manifest::{FileEntry, parse_redirects};
use crate::store::{Store, StoreConfig};

struct Sites(HashMap<String, Hash>);

impl SiteResolver for Sites {
    fn manifest_for(&self, host: &str) -> Option<Hash> {
        self.0.get(host).copied()
    }
}

struct Fixture {
    addr: SocketAddr,
    big: Vec<u8>,
    big_hash: Hash,
    store: Store,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn fixture(config: GatewayConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = StoreConfig::new(dir.path());
    sc.hot_max_blob = 64 * 1024;
    let store = Store::open(sc).unwrap();
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("index.html", b"<h1>home</h1>".to_vec(), "text/html"),
        ("docs/index.html", b"<h1>docs</h1>".to_vec(), "text/html"),
        ("css/a.css", b"body{}".to_vec(), "text/css"),
        ("404.html", b"<h1>custom 404</h1>".to_vec(), "text/html"),
        ("big.bin", big.clone(), "application/octet-stream"),
    ];
    let mut m = Manifest::default();
    for (path, data, ct) in files {
        let hash = store.import_bytes(&data, None, true).unwrap();
        m.entries.insert(
            path.into(),
            FileEntry {
                hash,
                size: data.len() as u64,
                content_type: ct.into(),
            },
        );
    }
    m.not_found = Some("404.html".into());
    m.redirects = parse_redirects("/old /docs/ 301\n").unwrap();
    let mut spa = m.clone();
    spa.spa_fallback = Some("index.html".into());
    let mh = store
        .import_bytes(&m.encode().unwrap(), None, true)
        .unwrap();
    let sh = store
        .import_bytes(&spa.encode().unwrap(), None, true)
        .unwrap();
    let sites = Sites(HashMap::from([
        ("site.proxima".to_owned(), mh),
        ("spa.proxima".to_owned(), sh),
    ]));
    let gw = Gateway::new(config, Arc::new(sites), Arc::new(store.clone()));
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(gw.serve(listener, stop.clone()));
    Fixture {
        addr,
        big_hash: Hash::of(&big),
        big,
        store,
        stop,
        _dir: dir,
    }
}

/// Runs curl; returns (status, headers lowercased, body).
async fn curl(args: Vec<String>) -> (u16, String, Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let hdr = dir.path().join("h");
        let out = Command::new("curl")
            .args(["-s", "-D"])
            .arg(&hdr)
            .args(&args)
            .output()
            .unwrap();
        let headers = std::fs::read_to_string(&hdr)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let status = headers
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, headers, out.stdout)
    })
    .await
    .unwrap()
}

fn get(f: &Fixture, host: &str, path: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "-H".to_owned(),
        format!("Host: {host}"),
        format!("http://{}{path}", f.addr),
    ];
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_site_with_http_semantics() {
    let f = fixture(GatewayConfig::default()).await;
    let (s, h, b) = curl(get(&f, "site.proxima:8080", "/", &[])).await;
    assert_eq!((s, b.as_slice()), (200, &b"<h1>home</h1>"[..]));
    assert!(h.contains("content-type: text/html"), "{h}");
    assert!(h.contains("cache-control: public, max-age=60"), "{h}");

    // `NAME.localhost` is the same site (browsers resolve `*.localhost` to loopback).
    let (s, _, b) = curl(get(&f, "site.proxima.localhost:8080", "/", &[])).await;
    assert_eq!((s, b.as_slice()), (200, &b"<h1>home</h1>"[..]));
    let (s, _, _) = curl(get(&f, "other.proxima.localhost", "/", &[])).await;
    assert_eq!(s, 404);

    let (s, _, b) = curl(get(&f, "site.proxima", "/docs/", &[])).await;
    assert_eq!((s, b.as_slice()), (200, &b"<h1>docs</h1>"[..]));
    let (s, h, _) = curl(get(&f, "site.proxima", "/docs", &[])).await;
    assert_eq!(s, 301);
    assert!(h.contains("location: /docs/"));
    let (s, h, _) = curl(get(&f, "site.proxima", "/old", &[])).await;
    assert_eq!(s, 301);
    assert!(h.contains("location: /docs/"));

    // Big file, byte-identical, streamed from disk with verification.
    let (s, _, b) = curl(get(&f, "site.proxima", "/big.bin", &[])).await;
    assert_eq!(s, 200);
    assert!(b == f.big);

    // HEAD: headers only.
    let (s, h, b) = curl(get(&f, "site.proxima", "/big.bin", &["-I"])).await;
    assert_eq!(s, 200);
    assert!(h.contains(&format!("content-length: {}", f.big.len())));
    assert!(b.is_empty() || String::from_utf8_lossy(&b).contains("HTTP/1.1 200"));

    // ETag / If-None-Match.
    let etag = format!("\"{}\"", Hash::of(b"body{}"));
    let (s, h, _) = curl(get(&f, "site.proxima", "/css/a.css", &[])).await;
    assert_eq!(s, 200);
    assert!(h.contains(&format!("etag: {etag}")), "{h}");
    assert!(h.contains("content-type: text/css"));
    let inm = format!("If-None-Match: {etag}");
    let (s, _, b) = curl(get(&f, "site.proxima", "/css/a.css", &["-H", &inm])).await;
    assert_eq!((s, b.len()), (304, 0));

    // Ranges: single (across chunk groups), suffix, multiple, unsatisfiable.
    let (s, h, b) = curl(get(
        &f,
        "site.proxima",
        "/big.bin",
        &["-H", "Range: bytes=16000-2000000"],
    ))
    .await;
    assert_eq!(s, 206);
    assert!(h.contains(&format!(
        "content-range: bytes 16000-2000000/{}",
        f.big.len()
    )));
    assert!(b == f.big[16000..=2_000_000]);
    let (s, _, b) = curl(get(
        &f,
        "site.proxima",
        "/big.bin",
        &["-H", "Range: bytes=-10"],
    ))
    .await;
    assert_eq!(s, 206);
    assert!(b == f.big[f.big.len() - 10..]);
    let (s, h, b) = curl(get(
        &f,
        "site.proxima",
        "/big.bin",
        &["-H", "Range: bytes=0-9,100-109"],
    ))
    .await;
    assert_eq!(s, 206);
    assert!(
        h.contains("content-type: multipart/byteranges; boundary="),
        "{h}"
    );
    let body = String::from_utf8_lossy(&b);
    assert!(body.contains("Content-Range: bytes 0-9/5000000"));
    assert!(body.contains("Content-Range: bytes 100-109/5000000"));
    assert!(b.windows(10).any(|w| w == &f.big[100..110]));
    let (s, h, _) = curl(get(
        &f,
        "site.proxima",
        "/big.bin",
        &["-H", "Range: bytes=9000000-"],
    ))
    .await;
    assert_eq!(s, 416);
    assert!(h.contains("content-range: bytes */5000000"));

    // 404 page of the site, with status 404; SPA fallback on the other host.
    let (s, _, b) = curl(get(&f, "site.proxima", "/nope", &[])).await;
    assert_eq!((s, b.as_slice()), (404, &b"<h1>custom 404</h1>"[..]));
    let (s, _, b) = curl(get(&f, "spa.proxima", "/app/route", &[])).await;
    assert_eq!((s, b.as_slice()), (200, &b"<h1>home</h1>"[..]));

    // Unknown host: helpful 404.
    let (s, _, b) = curl(get(&f, "other.proxima", "/", &[])).await;
    assert_eq!(s, 404);
    assert!(String::from_utf8_lossy(&b).contains("No site is published at other.proxima"));

    // Raw blobs, immutable.
    let (s, h, b) = curl(get(&f, "127.0.0.1", &format!("/blob/{}", f.big_hash), &[])).await;
    assert_eq!(s, 200);
    assert!(h.contains("cache-control: public, max-age=29030400, immutable"));
    assert!(b == f.big);
    let (s, _, _) = curl(get(
        &f,
        "x",
        &format!("/blob/{}", Hash::of(b"nothing")),
        &[],
    ))
    .await;
    assert_eq!(s, 404);
    let (s, _, _) = curl(get(&f, "x", "/blob/xyz", &[])).await;
    assert_eq!(s, 400);

    // Methods.
    let (s, h, _) = curl(get(&f, "site.proxima", "/", &["-X", "POST"])).await;
    assert_eq!(s, 405);
    assert!(h.contains("allow: get, head"));
    f.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_traversal_bad_encoding_and_huge_headers() {
    let f = fixture(GatewayConfig::default()).await;
    let addr = f.addr;
    let checks: Vec<(Vec<u8>, &str)> = vec![
        (b"GET /../etc/passwd HTTP/1.1\r\nHost: site.proxima\r\nConnection: close\r\n\r\n".to_vec(), "400"),
        (b"GET /a/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: site.proxima\r\nConnection: close\r\n\r\n".to_vec(), "400"),
        (b"GET /a%zz HTTP/1.1\r\nHost: site.proxima\r\nConnection: close\r\n\r\n".to_vec(), "400"),
        (b"GET /a%2fb HTTP/1.1\r\nHost: site.proxima\r\nConnection: close\r\n\r\n".to_vec(), "400"),
        (b"GARBAGE\r\n\r\n".to_vec(), "400"),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: site.proxima\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
                "a".repeat(20_000)
            )
            .into_bytes(),
            "431",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: site.proxima\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
                "a".repeat(1_100_000)
            )
            .into_bytes(),
            "431",
        ),
    ];
    for (req, want) in checks {
        let resp = tokio::task::spawn_blocking(move || raw(addr, &req))
            .await
            .unwrap();
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {want}")),
            "want {want}, got {:?}",
            &resp[..resp.len().min(80)]
        );
    }
    f.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_blob_is_not_served_and_is_dropped() {
    let f = fixture(GatewayConfig::default()).await;
    let path = f.store.blob_file_path(f.big_hash).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4_000_000] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // The client gets the verified prefix and then a cut connection, never the altered bytes.
    let (_, _, b) = curl(get(&f, "site.proxima", "/big.bin", &[])).await;
    assert!(b.len() < 4_000_000, "served {} bytes", b.len());
    assert!(!f.store.contains(f.big_hash));
    let (s, _, _) = curl(get(&f, "site.proxima", "/big.bin", &[])).await;
    assert_eq!(s, 502);
    f.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_answers_429_and_shutdown_closes_the_listener() {
    let config = GatewayConfig {
        max_concurrent: 1,
        ..GatewayConfig::default()
    };
    let f = fixture(config).await;
    // Hold the only permit with a slow reader of the big file (a small socket buffer, no reads).
    let addr = f.addr;
    let slow = std::net::TcpStream::connect(addr).unwrap();
    let mut w = slow.try_clone().unwrap();
    w.write_all(b"GET /big.bin HTTP/1.1\r\nHost: site.proxima\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut busy = false;
    for _ in 0..100 {
        let (s, h, _) = curl(get(&f, "site.proxima", "/css/a.css", &[])).await;
        if s == 429 {
            assert!(h.contains("retry-after: 1"));
            busy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(busy, "never got 429 while the only permit was held");
    drop((slow, w));
    f.stop.cancel();
    let mut closed = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "listener still open after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_are_cut_at_the_request_timeout() {
    let config = GatewayConfig {
        request_timeout: Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let f = fixture(config).await;
    let addr = f.addr;
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // A header that never ends (slowloris).
        s.write_all(b"GET / HTTP/1.1\r\nHost: site.proxima\r\n")
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        (started.elapsed(), buf)
    })
    .await
    .unwrap();
    let (elapsed, buf) = closed_after;
    assert!(
        elapsed < Duration::from_secs(5),
        "connection held for {elapsed:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    f.stop.cancel();
}

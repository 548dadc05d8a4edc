//! CDN edge, whole system: the real `proxima` CLI publishes a real site directory to a node
//! started through the harness (or as a process, for SIGKILL), and `curl` reads it back through
//! the node's gateway.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{cli, noise};
use anyhow::{Context, Result};
use proxima::harness::{TestNode, auth_header, curl, http_get, read_admin_token, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_proxima");

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn site_dir() -> (tempfile::TempDir, Vec<(&'static str, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(noise(120_000, 3));
    let files: Vec<(&'static str, Vec<u8>)> = vec![
        ("index.html", b"<h1>home</h1>".to_vec()),
        ("about/index.html", b"<h1>about</h1>".to_vec()),
        ("blog/2024/11/post.html", b"<p>post</p>".to_vec()),
        ("css/site.css", b"body{color:red}".to_vec()),
        ("img/logo.png", png),
        ("404.html", b"<h1>not here</h1>".to_vec()),
        ("downloads/big.bin", noise(50 * 1024 * 1024, 7)),
    ];
    for (p, d) in &files {
        write(dir.path(), p, d);
    }
    write(
        dir.path(),
        "_redirects",
        b"/old /about/ 301\n/blog/* /blog/2024/11/:splat 302\n",
    );
    (dir, files)
}

/// `curl` through the gateway with a Host header; returns (status, lowercased headers, body).
fn get(http: &str, host: &str, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let hdr = tempfile::NamedTempFile::new().unwrap();
    let url = format!("http://{http}{path}");
    let host = format!("Host: {host}");
    let mut args = vec!["-D", hdr.path().to_str().unwrap(), "-H", &host, &url];
    args.extend_from_slice(extra);
    let out = curl(&args).unwrap();
    let headers = std::fs::read_to_string(hdr.path())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, headers, out.stdout)
}

fn json(url: &str) -> serde_json::Value {
    serde_json::from_str(&http_get(url).unwrap()).unwrap()
}

fn sequence(admin: &str, name: &str) -> u64 {
    json(&format!("{admin}/api/names/{name}"))["zone"]["sequence"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn publish_serve_republish_and_get() {
    let node = TestNode::start(|_| {}).unwrap();
    let admin = node.admin_url();
    let http = node.addr("http").unwrap();
    let (dir, files) = site_dir();
    let site = dir.path().to_str().unwrap();
    cli(&["name", "register", "site6.proxima", "--node", &admin]).unwrap();
    let out = cli(&["publish", site, "--name", "site6.proxima", "--node", &admin]).unwrap();
    assert!(out.contains("published"), "{out}");

    // Every file, byte-identical, with its content type.
    for (path, data) in &files {
        let (s, h, body) = get(&http, "site6.proxima:80", &format!("/{path}"), &[]);
        assert_eq!(s, 200, "{path}");
        assert!(
            body == *data,
            "{path} differs ({} vs {} bytes)",
            body.len(),
            data.len()
        );
        assert!(h.contains("etag: \""), "{path}: {h}");
    }
    let (_, h, _) = get(&http, "site6.proxima", "/img/logo.png", &[]);
    assert!(h.contains("content-type: image/png"), "{h}");
    let (_, h, _) = get(&http, "site6.proxima", "/css/site.css", &[]);
    assert!(h.contains("content-type: text/css"), "{h}");
    assert!(h.contains("cache-control: public, max-age=60"), "{h}");
    let (s, _, body) = get(&http, "site6.proxima", "/about/", &[]);
    assert_eq!((s, body.as_slice()), (200, &b"<h1>about</h1>"[..]));

    // HEAD.
    let big = &files[6].1;
    let (s, h, body) = get(&http, "site6.proxima", "/downloads/big.bin", &["-I"]);
    assert_eq!(s, 200);
    assert!(h.contains(&format!("content-length: {}", big.len())));
    assert!(!h.contains("transfer-encoding"));
    assert!(body.len() < 1000, "HEAD returned a body");

    // Range: single and multiple.
    let (s, h, body) = get(
        &http,
        "site6.proxima",
        "/downloads/big.bin",
        &["-H", "Range: bytes=1000000-1999999"],
    );
    assert_eq!(s, 206);
    assert!(h.contains(&format!(
        "content-range: bytes 1000000-1999999/{}",
        big.len()
    )));
    assert!(body == big[1_000_000..2_000_000]);
    let (s, h, body) = get(
        &http,
        "site6.proxima",
        "/downloads/big.bin",
        &["-H", "Range: bytes=0-99,-100"],
    );
    assert_eq!(s, 206);
    assert!(h.contains("multipart/byteranges"));
    assert!(body.windows(100).any(|w| w == &big[..100]));
    assert!(body.windows(100).any(|w| w == &big[big.len() - 100..]));
    let (s, _, _) = get(
        &http,
        "site6.proxima",
        "/downloads/big.bin",
        &["-H", "Range: bytes=99999999999-"],
    );
    assert_eq!(s, 416);

    // If-None-Match.
    let (_, h, _) = get(&http, "site6.proxima", "/css/site.css", &[]);
    let etag = h
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_owned();
    let inm = format!("If-None-Match: {etag}");
    let (s, _, body) = get(&http, "site6.proxima", "/css/site.css", &["-H", &inm]);
    assert_eq!((s, body.len()), (304, 0));

    // 404 page, redirects, directory redirect, unknown host.
    let (s, _, body) = get(&http, "site6.proxima", "/missing.html", &[]);
    assert_eq!((s, body.as_slice()), (404, &b"<h1>not here</h1>"[..]));
    let (s, h, _) = get(&http, "site6.proxima", "/old", &[]);
    assert_eq!(s, 301);
    assert!(h.contains("location: /about/"));
    let (s, h, _) = get(&http, "site6.proxima", "/blog/x.html", &[]);
    assert_eq!(s, 302);
    assert!(h.contains("location: /blog/2024/11/x.html"));
    let (s, h, _) = get(&http, "site6.proxima", "/about", &[]);
    assert_eq!(s, 301);
    assert!(h.contains("location: /about/"));
    let (s, _, body) = get(&http, "nobody.proxima", "/", &[]);
    assert_eq!(s, 404);
    assert!(String::from_utf8_lossy(&body).contains("No site is published"));

    // SPA fallback on a second name.
    cli(&["name", "register", "spa6.proxima", "--node", &admin]).unwrap();
    cli(&[
        "publish",
        site,
        "--name",
        "spa6.proxima",
        "--spa",
        "index.html",
        "--node",
        &admin,
    ])
    .unwrap();
    let (s, _, body) = get(&http, "spa6.proxima", "/app/deep/route", &[]);
    assert_eq!((s, body.as_slice()), (200, &b"<h1>home</h1>"[..]));

    // Raw blob, immutable.
    let big_hash = cdn_edge::Hash::of(big).to_hex();
    let (s, h, _) = get(&http, "127.0.0.1", &format!("/blob/{big_hash}"), &["-I"]);
    assert_eq!(s, 200);
    assert!(h.contains("cache-control: public, max-age=29030400, immutable"));

    // Republish after changing one file: one new file blob (plus the new manifest) and a
    // higher zone sequence; the gateway serves the new bytes.
    let count = |admin: &str| {
        json(&format!("{admin}/api/blobs"))["count"]
            .as_u64()
            .unwrap()
    };
    let before = count(&admin);
    let seq_before = sequence(&admin, "site6.proxima");
    write(dir.path(), "css/site.css", b"body{color:blue}");
    let dry = cli(&[
        "publish",
        site,
        "--name",
        "site6.proxima",
        "--dry-run",
        "--node",
        &admin,
    ])
    .unwrap();
    assert!(
        dry.contains("1 to upload") && dry.contains("css/site.css"),
        "{dry}"
    );
    assert_eq!(count(&admin), before, "dry run stored something");
    cli(&["publish", site, "--name", "site6.proxima", "--node", &admin]).unwrap();
    assert_eq!(
        count(&admin),
        before + 2,
        "expected one new file blob and one manifest"
    );
    assert!(sequence(&admin, "site6.proxima") > seq_before);
    let (_, _, body) = get(&http, "site6.proxima", "/css/site.css", &[]);
    assert_eq!(body, b"body{color:blue}");

    // proxima get: by NAME/PATH and by hash, verified.
    let out_dir = tempfile::tempdir().unwrap();
    let logo = out_dir.path().join("logo.png");
    cli(&[
        "get",
        "site6.proxima/img/logo.png",
        "-o",
        logo.to_str().unwrap(),
        "--node",
        &admin,
    ])
    .unwrap();
    assert!(std::fs::read(&logo).unwrap() == files[4].1);
    let bigout = out_dir.path().join("big.bin");
    cli(&[
        "get",
        &big_hash,
        "-o",
        bigout.to_str().unwrap(),
        "--node",
        &admin,
    ])
    .unwrap();
    assert!(std::fs::read(&bigout).unwrap() == *big);
    assert!(cli(&["get", "site6.proxima/nope", "--node", &admin]).is_err());
}

#[test]
fn altered_blob_on_disk_is_flagged_and_dropped() {
    let node = TestNode::start(|_| {}).unwrap();
    let admin = node.admin_url();
    let http = node.addr("http").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = noise(6 * 1024 * 1024, 11);
    write(dir.path(), "index.html", b"hi");
    write(dir.path(), "f.bin", &data);
    cli(&["name", "register", "alt6.proxima", "--node", &admin]).unwrap();
    cli(&[
        "publish",
        dir.path().to_str().unwrap(),
        "--name",
        "alt6.proxima",
        "--node",
        &admin,
    ])
    .unwrap();
    let hash = cdn_edge::Hash::of(&data).to_hex();
    let file = node
        .data_dir()
        .join("blobs/data")
        .join(&hash[..2])
        .join(format!("{hash}.data"));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[5_000_000] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let (_, _, body) = get(&http, "alt6.proxima", "/f.bin", &[]);
    assert!(
        body.len() < 5_000_000,
        "served {} bytes of an altered blob",
        body.len()
    );
    assert!(
        body == data[..body.len()],
        "served bytes that are not the blob's"
    );
    let missing: serde_json::Value = serde_json::from_slice(
        &curl(&[
            "-X",
            "POST",
            "-H",
            &node.auth_header(),
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!("{{\"hashes\":[\"{hash}\"]}}"),
            &format!("{admin}/api/blobs/missing"),
        ])
        .unwrap()
        .stdout,
    )
    .unwrap();
    assert_eq!(
        missing["hashes"][0], hash,
        "altered blob still in the store"
    );
    let metrics = http_get(&format!("{admin}/metrics")).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("proxima_cdn_store_corrupt_total") && !l.ends_with(" 0")),
        "corrupt blob not counted"
    );
    let (s, _, _) = get(&http, "alt6.proxima", "/f.bin", &[]);
    assert_eq!(s, 502);
}

/// A `proxima node` process, killed with SIGKILL when dropped.
struct NodeProcess {
    child: Child,
    admin: String,
    /// `Authorization: Bearer <its admin token>`, for changing requests with `curl -H`.
    auth: String,
}

impl NodeProcess {
    fn start(data_dir: &Path) -> Result<Self> {
        let mut child = Command::new(BIN)
            .args(["node", "--data-dir"])
            .arg(data_dir)
            .args([
                "--admin-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--dns-listen",
                "127.0.0.1:0",
                "--redis-listen",
                "127.0.0.1:0",
                "--quic-listen",
                "127.0.0.1:0",
                "--p2p-listen",
                "/ip4/127.0.0.1/udp/0/quic-v1",
                "--log-format",
                "json",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // The node logs its real admin address when ready (JSON lines on stdout or stderr).
        let (tx, rx) = std::sync::mpsc::sync_channel(8); // one "node ready" line per pipe
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains("node ready") {
                        let _ = tx.send(line);
                    }
                }
            });
        }
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .context("node process never became ready")?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        let admin = v["fields"]["admin"]
            .as_str()
            .or_else(|| v["admin"].as_str())
            .context("no admin address in the ready line")?
            .to_owned();
        Ok(Self {
            child,
            admin: format!("http://{admin}"),
            auth: auth_header(&read_admin_token(data_dir)?),
        })
    }

    fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigkill_during_publish_leaves_only_good_blobs() {
    let data = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    for i in 0..8 {
        write(
            site.path(),
            &format!("f{i:02}.bin"),
            &noise(3 * 1024 * 1024, 100 + i),
        );
    }
    write(site.path(), "index.html", b"x");
    let node = NodeProcess::start(data.path()).unwrap();
    let admin = node.admin.clone();
    cli(&["name", "register", "kill6.proxima", "--node", &admin]).unwrap();
    let site_str = site.path().to_str().unwrap();
    cli(&[
        "publish",
        site_str,
        "--name",
        "kill6.proxima",
        "--node",
        &admin,
    ])
    .unwrap();
    let stored = json(&format!("{admin}/api/blobs"))["count"]
        .as_u64()
        .unwrap();

    // A second publish is in flight: one large blob is being uploaded slowly (a publisher on a
    // slow link), so the node is mid-write when it is killed.
    let big = noise(20 * 1024 * 1024, 999);
    let big_hash = cdn_edge::Hash::of(&big).to_hex();
    write(site.path(), "late/big.bin", &big);
    let big_path = site.path().join("late/big.bin");
    let url = format!("{admin}/api/blobs/{big_hash}?pin=true");
    let mut upload = Command::new("curl")
        .args([
            "-s",
            "-H",
            &node.auth,
            "-T",
            big_path.to_str().unwrap(),
            "--limit-rate",
            "2M",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp_dir = data.path().join("blobs/tmp");
    let partial = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(30), || partial(&tmp_dir) > 1024 * 1024).unwrap();
    node.sigkill();
    let _ = upload.wait();

    let node = NodeProcess::start(data.path()).unwrap();
    let verify = curl(&[
        "-X",
        "POST",
        "-H",
        &node.auth,
        &format!("{}/api/blobs/verify", node.admin),
    ])
    .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["ok"].as_u64().unwrap(), stored, "{report}");
    assert_eq!(
        report["dropped"],
        serde_json::json!([]),
        "a blob failed its hash after SIGKILL"
    );
    let tmp: Vec<PathBuf> = std::fs::read_dir(&tmp_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
    let missing: serde_json::Value = serde_json::from_slice(
        &curl(&[
            "-X",
            "POST",
            "-H",
            &node.auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!("{{\"hashes\":[\"{big_hash}\"]}}"),
            &format!("{}/api/blobs/missing", node.admin),
        ])
        .unwrap()
        .stdout,
    )
    .unwrap();
    assert_eq!(
        missing["hashes"][0], big_hash,
        "a half-written blob is visible"
    );
    // Publishing again completes, sending only what is missing.
    let out = cli(&[
        "publish",
        site_str,
        "--name",
        "kill6.proxima",
        "--node",
        &node.admin,
    ])
    .unwrap();
    assert!(out.contains("2 new blobs"), "{out}");
    let (s, _, body) = get(
        json(&format!("{}/health", node.admin))["services"]["http"]["listen"]
            .as_str()
            .unwrap(),
        "kill6.proxima",
        "/late/big.bin",
        &[],
    );
    assert_eq!(s, 200);
    assert!(body == big);
}

#[test]
fn kill_and_shutdown_close_the_gateway() {
    let closed = |addr: &str| {
        wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(addr).is_err()
        })
    };
    let mut node = TestNode::start(|_| {}).unwrap();
    let http = node.addr("http").unwrap();
    let (s, _, _) = get(&http, "x.proxima", "/", &[]);
    assert_eq!(s, 404);
    // A keep-alive connection stays open across the kill; the listener must not.
    let _held = std::net::TcpStream::connect(&http).unwrap();
    node.kill();
    closed(&http).expect("gateway still listening after kill()");
    node.restart().unwrap();
    let http = node.addr("http").unwrap();
    let (s, _, _) = get(&http, "x.proxima", "/", &[]);
    assert_eq!(s, 404);
    node.shutdown();
    closed(&http).expect("gateway still listening after shutdown()");
}

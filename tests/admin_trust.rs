//! Trust of the admin API, over real HTTP (`curl`) against real nodes: a changing request needs
//! the admin token (401 without, 403 wrong), `Host` must name this node (DNS rebinding), a
//! changing request from another site's page is refused (`Origin`), a node without a token
//! requirement refuses to listen beyond loopback, the token file is private, and the `proxima`
//! CLI finds the token of a local node by itself (runtime file) or through `--token-file`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use proxima::api::trust::{RuntimeInfo, TOKEN_FILE, runtime_dir, runtime_file_name};
use proxima::harness::{TestNode, auth_header, curl};

/// One request through `curl`: (status, lower-cased response headers, body).
fn call(method: &str, url: &str, headers: &[&str], body: Option<&str>) -> (u16, String, String) {
    let hdr = tempfile::NamedTempFile::new().unwrap();
    // `curl -X HEAD` would wait for a body; `-I` is its HEAD.
    let mut args = match method {
        "HEAD" => vec!["-I"],
        m => vec!["-X", m],
    };
    args.extend(["-D", hdr.path().to_str().unwrap()]);
    for h in headers {
        args.extend(["-H", h]);
    }
    if let Some(b) = body {
        args.extend(["-H", "content-type: application/json", "--data-binary", b]);
    }
    args.push(url);
    let out = curl(&args).unwrap();
    let head = std::fs::read_to_string(hdr.path())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        head,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).unwrap_or_default()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {body}"))
        .to_owned()
}

/// Whether the node holds a registration of `name` (a read: needs no token).
fn registered(admin: &str, name: &str) -> bool {
    call("GET", &format!("{admin}/api/names/{name}"), &[], None).0 == 200
}

fn register_body(name: &str) -> String {
    format!("{{\"name\":\"{name}\"}}")
}

#[test]
fn changing_requests_need_the_admin_token() {
    let node = TestNode::start(|_| {}).unwrap();
    let admin = node.admin_url();
    let names = format!("{admin}/api/names");
    let body = register_body("nokey.proxima");

    // No token: 401 with a JSON error that says how to get one, and nothing registered.
    let (s, head, out) = call("POST", &names, &[], Some(&body));
    assert_eq!(s, 401, "{head}{out}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(error_of(&out).contains("--token-file"), "{out}");
    assert!(!registered(&admin, "nokey.proxima"));

    // A wrong token (and a credential of another scheme): refused, nothing registered.
    let wrong = auth_header(&"0".repeat(64));
    let (s, _, out) = call("POST", &names, &[&wrong], Some(&body));
    assert_eq!(s, 403, "{out}");
    assert!(error_of(&out).contains("wrong admin token"), "{out}");
    let (s, _, _) = call(
        "POST",
        &names,
        &["Authorization: Basic Zm9vOmJhcg=="],
        Some(&body),
    );
    assert_eq!(s, 401);
    assert!(!registered(&admin, "nokey.proxima"));

    // The right token: registered.
    let auth = node.auth_header();
    let (s, _, out) = call("POST", &names, &[&auth], Some(&body));
    assert_eq!(s, 201, "{out}");
    assert!(registered(&admin, "nokey.proxima"));

    // Every changing route is covered, those of other services too, whatever the method.
    let hash = cdn_edge::Hash::of(b"x");
    for (method, path) in [
        (
            "DELETE",
            "/api/names/nokey.proxima/records?type=A".to_owned(),
        ),
        ("POST", "/api/names/nokey.proxima/rotate-key".to_owned()),
        ("PUT", format!("/api/blobs/{hash}")),
        ("POST", "/api/blobs/verify".to_owned()),
        ("POST", "/api/cluster/registrars".to_owned()),
        ("DELETE", "/api/cluster/registrars/somepeer".to_owned()),
        ("PATCH", "/health".to_owned()),
        ("POST", "/no-such-route".to_owned()),
    ] {
        let (s, _, out) = call(method, &format!("{admin}{path}"), &[], Some("{}"));
        assert_eq!(s, 401, "{method} {path}: {out}");
    }

    // Reads stay open.
    for path in [
        "/health",
        "/metrics",
        "/",
        "/api/names",
        "/api/dashboard",
        "/assets/dashboard.js",
    ] {
        let (s, _, _) = call("GET", &format!("{admin}{path}"), &[], None);
        assert_eq!(s, 200, "GET {path}");
    }
    let (s, _, _) = call("HEAD", &format!("{admin}/health"), &[], None);
    assert_eq!(s, 200);
}

#[test]
fn host_must_name_this_node() {
    let node = TestNode::start(|c| c.admin.allowed_hosts = vec!["proxy.example".into()]).unwrap();
    let admin = node.admin_url();
    let port = node.handle().unwrap().info().admin_addr.port();
    let auth = node.auth_header();

    // DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 (the
    // dashboard's document names every member, site and refusal: it must not be readable).
    for (method, path) in [
        ("GET", "/health"),
        ("POST", "/health"),
        ("GET", "/api/dashboard"),
    ] {
        let (s, _, out) = call(
            method,
            &format!("{admin}{path}"),
            &["Host: evil.example"],
            None,
        );
        assert_eq!(s, 403, "{method} {path}: {out}");
        assert!(error_of(&out).contains("Host not allowed"), "{out}");
    }
    let (s, _, out) = call(
        "POST",
        &format!("{admin}/api/names"),
        &[&auth, &format!("Host: evil.example:{port}")],
        Some(&register_body("rebound.proxima")),
    );
    assert_eq!(s, 403, "{out}");
    assert!(!registered(&admin, "rebound.proxima"));

    // IP literals, localhost and the allowed hosts pass.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".to_owned(),
        "10.9.8.7:80".to_owned(),
        "proxy.example".to_owned(),
        "PROXY.example:8443".to_owned(),
    ] {
        let (s, _, _) = call(
            "GET",
            &format!("{admin}/health"),
            &[&format!("Host: {host}")],
            None,
        );
        assert_eq!(s, 200, "Host: {host}");
    }
    // No Host at all (an HTTP/1.0 tool).
    let out = curl(&[
        "--http1.0",
        "-H",
        "Host:",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{admin}/health"),
    ])
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn writes_from_other_sites_pages_are_refused() {
    let node = TestNode::start(|_| {}).unwrap();
    let admin = node.admin_url();
    let auth = node.auth_header();
    let names = format!("{admin}/api/names");

    let (s, _, out) = call(
        "POST",
        &names,
        &[&auth, "Origin: http://evil.example"],
        Some(&register_body("csrf.proxima")),
    );
    assert_eq!(s, 403, "{out}");
    assert!(error_of(&out).contains("Origin not allowed"), "{out}");
    assert!(!registered(&admin, "csrf.proxima"));
    let (s, _, _) = call(
        "POST",
        &names,
        &[&auth, "Origin: null"],
        Some(&register_body("csrf.proxima")),
    );
    assert_eq!(s, 403);

    // The node's own pages (same origin) and local pages may write.
    let (s, _, out) = call(
        "POST",
        &names,
        &[&auth, &format!("Origin: {admin}")],
        Some(&register_body("same.proxima")),
    );
    assert_eq!(s, 201, "{out}");
    // A read from another site passes (the browser keeps the answer from the page anyway).
    let (s, _, _) = call(
        "GET",
        &format!("{admin}/health"),
        &["Origin: http://evil.example"],
        None,
    );
    assert_eq!(s, 200);
}

#[test]
fn without_a_token_requirement_only_loopback() {
    // In process: the node refuses to start, naming the key.
    let err = TestNode::start(|c| {
        c.admin.require_token = false;
        c.admin_listen = "0.0.0.0:0".parse().unwrap();
    })
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("admin_listen"), "{msg}");
    assert!(msg.contains("0.0.0.0:0"), "{msg}");
    assert!(msg.contains("require_token"), "{msg}");

    // As a process, through the environment: a one-line configuration error, exit code 2.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(["node", "--data-dir"])
        .arg(dir.path())
        .args(["--admin-listen", "0.0.0.0:0"])
        .env("PROXIMA_ADMIN__REQUIRE_TOKEN", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("a node with require_token = false started on 0.0.0.0");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("admin_listen") && stderr.contains("require_token"),
        "{stderr}"
    );

    // On loopback, a lab node takes changes without a token (Host and Origin still count).
    let node = TestNode::start(|c| c.admin.require_token = false).unwrap();
    let names = format!("{}/api/names", node.admin_url());
    let (s, _, out) = call("POST", &names, &[], Some(&register_body("lab.proxima")));
    assert_eq!(s, 201, "{out}");
    let (s, _, _) = call(
        "POST",
        &names,
        &["Origin: http://evil.example"],
        Some(&register_body("lab2.proxima")),
    );
    assert_eq!(s, 403);
}

#[test]
fn token_file_is_private_and_kept_across_restarts() {
    let mut node = TestNode::start(|_| {}).unwrap();
    let path = node.data_dir().join(TOKEN_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let token = node.admin_token();
    assert_eq!(text.trim(), token);
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    node.restart().unwrap();
    assert_eq!(node.admin_token(), token);
}

/// The runtime file of a node, where the CLI looks for it.
fn runtime_file_of(node: &TestNode) -> PathBuf {
    let addr = node.addr("admin").unwrap().parse().unwrap();
    runtime_dir().unwrap().join(runtime_file_name(addr))
}

fn proxima(node: &TestNode, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxima"));
    cmd.args(args)
        .args(["--node", &node.admin_url()])
        .env_remove("PROXIMA_NODE")
        .env_remove("PROXIMA_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn cli_finds_the_token_of_a_local_node() {
    let mut node = TestNode::start(|_| {}).unwrap();

    // The runtime file: private, with the real bound address, the token, pid and data dir.
    let file = runtime_file_of(&node);
    let info: RuntimeInfo = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(info.url, node.admin_url());
    assert_eq!(info.token, node.admin_token());
    assert_eq!(info.pid, std::process::id());
    assert_eq!(Path::new(&info.data_dir), node.data_dir());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);

    // No flag: the runtime file.
    let out = proxima(&node, &["name", "register", "x.proxima"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(registered(&node.admin_url(), "x.proxima"));

    // Without a runtime file: 401, and the message says what to do.
    let empty = tempfile::tempdir().unwrap();
    let out = proxima(
        &node,
        &["name", "register", "y.proxima"],
        &[("XDG_RUNTIME_DIR", empty.path())],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token-file"), "{err}");
    assert!(!registered(&node.admin_url(), "y.proxima"));

    // --token-file (a global flag, before or after the command).
    let token_file = node.data_dir().join(TOKEN_FILE);
    let tf = token_file.to_str().unwrap();
    let out = proxima(
        &node,
        &["--token-file", tf, "name", "register", "y.proxima"],
        &[("XDG_RUNTIME_DIR", empty.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = proxima(
        &node,
        &[
            "name",
            "set",
            "y.proxima",
            "A",
            "192.0.2.1",
            "--token-file",
            tf,
        ],
        &[("XDG_RUNTIME_DIR", empty.path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A wrong one is refused.
    let wrong = empty.path().join("wrong.token");
    std::fs::write(&wrong, "1".repeat(64)).unwrap();
    let out = proxima(
        &node,
        &[
            "--token-file",
            wrong.to_str().unwrap(),
            "name",
            "register",
            "z.proxima",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong admin token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!registered(&node.admin_url(), "z.proxima"));

    // PROXIMA_ADMIN_TOKEN.
    let out = Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(["name", "register", "z.proxima", "--node", &node.admin_url()])
        .env("XDG_RUNTIME_DIR", empty.path())
        .env("PROXIMA_ADMIN_TOKEN", node.admin_token())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A graceful shutdown removes the runtime file.
    node.shutdown();
    assert!(!file.exists(), "{} left behind", file.display());
}

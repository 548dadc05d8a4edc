//! Whole-system tests of the foundation: several nodes in one process, real HTTP, the real CLI.

use std::process::Command;
use std::time::Duration;

use proxima::harness::{Cluster, TestNode, get_health, http_get, wait_for};

#[test]
fn three_nodes_answer_and_survive_one_killed() {
    let mut cluster = Cluster::start(3).expect("three nodes start");
    let mut peer_ids = Vec::new();
    for node in &cluster.nodes {
        let health = node.health().expect("health answers");
        assert_eq!(health.status, "ok");
        assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
        // Port 0 was asked for; /health must report the real port.
        let admin = &health.services["admin"].listen;
        assert!(!admin.ends_with(":0"), "admin listen not resolved: {admin}");
        assert_eq!(format!("http://{admin}"), node.admin_url());
        let metrics = http_get(&format!("{}/metrics", node.admin_url())).unwrap();
        assert!(
            metrics.contains("# HELP proxima_uptime_seconds"),
            "{metrics}"
        );
        peer_ids.push(health.peer_id);
    }
    peer_ids.sort();
    peer_ids.dedup();
    assert_eq!(peer_ids.len(), 3, "every node has its own identity");

    let killed_url = cluster.node(1).admin_url();
    cluster.node_mut(1).kill();
    wait_for(Duration::from_secs(5), || get_health(&killed_url).is_err())
        .expect("a killed node stops answering");
    for i in [0, 2] {
        let h = cluster.node(i).health().expect("survivors keep answering");
        assert_eq!(h.status, "ok");
    }

    // Restarting on the same data directory keeps the identity.
    let before = peer_ids.clone();
    cluster.node_mut(1).restart().expect("restart");
    let after = cluster.node(1).health().unwrap().peer_id;
    assert!(before.contains(&after));
}

#[test]
fn second_node_on_the_same_data_dir_is_refused() {
    let node = TestNode::start(|_| {}).unwrap();
    let dir = node.data_dir().to_path_buf();
    let err = TestNode::start(|c| c.data_dir = Some(dir.clone())).unwrap_err();
    assert!(format!("{err:#}").contains("already in use"), "{err:#}");
    // The first node is unharmed.
    node.health().unwrap();
}

#[test]
fn identity_file_is_private() {
    let node = TestNode::start(|_| {}).unwrap();
    let meta = std::fs::metadata(node.data_dir().join("node.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

fn proxima() -> Command {
    Command::new(env!("CARGO_BIN_EXE_proxima"))
}

#[test]
fn cli_status_prints_a_summary_and_json() {
    let node = TestNode::start(|_| {}).unwrap();
    let out = proxima()
        .args(["status", "--node", &node.admin_url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let peer = node.health().unwrap().peer_id;
    assert!(text.contains(&peer), "{text}");
    assert!(text.contains("admin"), "{text}");

    let out = proxima()
        .args(["status", "--json", "--node", &node.admin_url()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["peer_id"], peer);
}

#[test]
fn cli_status_without_a_node_fails_clearly() {
    let out = proxima()
        .args(["status", "--node", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the node"));
}

#[test]
fn config_layers_file_env_flags_and_reports_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxima.toml");
    std::fs::write(&file, "admin_listen = \"127.0.0.1:1111\"\nhttp_listen = \"127.0.0.1:2222\"\ndns_listen = \"127.0.0.1:3333\"\n").unwrap();
    let out = proxima()
        .args(["config", "show", "--config"])
        .arg(&file)
        .args(["--admin-listen", "127.0.0.1:4444"])
        .env("PROXIMA_HTTP_LISTEN", "127.0.0.1:5555")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("admin_listen = \"127.0.0.1:4444\""),
        "flag wins: {shown}"
    );
    assert!(
        shown.contains("http_listen = \"127.0.0.1:5555\""),
        "env wins over file: {shown}"
    );
    assert!(
        shown.contains("dns_listen = \"127.0.0.1:3333\""),
        "file wins over default: {shown}"
    );

    // A bad value: one line naming the key and the value, and the node does not start.
    let out = proxima()
        .args(["node", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("PROXIMA_REDIS_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis_listen"), "{err}");
    assert!(err.contains("not-an-address"), "{err}");
    assert!(err.contains("PROXIMA_REDIS_LISTEN"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn config_example_is_what_the_node_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = proxima().args(["config", "example"]).output().unwrap();
    let file = dir.path().join("example.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let shown = proxima()
        .args(["config", "show", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
}

#[test]
fn sigterm_stops_the_node_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = proxima()
        .args(["node", "--data-dir"])
        .arg(dir.path())
        .args(["--admin-listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Ready when the identity exists and the lock is held.
    wait_for(Duration::from_secs(20), || {
        dir.path().join("node.key").exists()
    })
    .unwrap();
    wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(dir.path().join("LOCK")).is_ok_and(|s| !s.trim().is_empty())
    })
    .unwrap();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "node did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn dashboard_page_is_served() {
    let node = TestNode::start(|_| {}).unwrap();
    let page = http_get(&format!("{}/", node.admin_url())).unwrap();
    assert!(page.contains("<title>Proxima node</title>"), "{page}");
    // Every asset the page names is served from the binary (no network needed).
    for asset in [
        "/assets/dashboard.js",
        "/assets/dashboard.css",
        "/assets/uPlot.iife.min.js",
        "/assets/uPlot.min.css",
    ] {
        assert!(page.contains(asset), "the page does not load {asset}");
        let body = http_get(&format!("{}{asset}", node.admin_url())).unwrap();
        assert!(body.len() > 500, "{asset} is nearly empty");
    }
    let script = http_get(&format!("{}/assets/dashboard.js", node.admin_url())).unwrap();
    assert!(script.contains("/api/dashboard"));
    let doc: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{}/api/dashboard", node.admin_url())).unwrap())
            .unwrap();
    assert!(doc["points"]["times"].is_array(), "{doc}");
    assert!(doc["cache"]["cluster"]["majority"].is_boolean(), "{doc}");
}

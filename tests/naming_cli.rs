//! Names end to end: a node with the embedded ledger, driven by the real `proxima` CLI and the
//! admin API, including the CDN's site route, persistence across a restart, and the Ethereum
//! ledger on a real anvil with `proxima contracts deploy`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use proxima::config::LedgerKind;
use proxima::harness::{TestNode, http_get, wait_for};

fn cli(node: &TestNode, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(args)
        .args(["--node", &node.admin_url()])
        .env_remove("PROXIMA_NODE")
        .env_remove("PROXIMA_ADMIN_TOKEN")
        .output()
        .expect("run proxima")
}

fn ok(node: &TestNode, args: &[&str]) -> String {
    let out = cli(node, args);
    assert!(
        out.status.success(),
        "proxima {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(node: &TestNode, args: &[&str]) -> String {
    let out = cli(node, args);
    assert!(!out.status.success(), "proxima {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn register_set_show_records_rotate_transfer() {
    let mut node = TestNode::start(|_| {}).expect("node");
    let out = ok(&node, &["name", "register", "blog.proxima", "--years", "2"]);
    assert!(out.contains("registered blog.proxima"), "{out}");

    ok(&node, &["name", "set", "blog.proxima", "A", "192.0.2.7"]);
    ok(
        &node,
        &[
            "name",
            "set",
            "blog.proxima",
            "AAAA",
            "2001:db8::7",
            "--ttl",
            "60",
        ],
    );
    ok(
        &node,
        &["name", "set", "blog.proxima", "MX", "10 mail.blog.proxima"],
    );
    ok(
        &node,
        &["name", "set", "blog.proxima", "TXT", "v=spf1 -all"],
    );
    ok(
        &node,
        &[
            "name",
            "set",
            "blog.proxima",
            "CAA",
            "0 issue \"letsencrypt.org\"",
        ],
    );
    ok(
        &node,
        &["name", "set", "www.blog.proxima", "CNAME", "blog.proxima"],
    );
    ok(
        &node,
        &[
            "name",
            "set",
            "_sip._tcp.blog.proxima",
            "SRV",
            "10 5 5060 sip.blog.proxima",
        ],
    );

    let records = ok(&node, &["name", "records", "blog.proxima"]);
    for want in [
        "192.0.2.7",
        "2001:db8::7",
        "10 mail.blog.proxima",
        "v=spf1 -all",
        "letsencrypt.org",
        "www.blog.proxima",
        "5060",
    ] {
        assert!(records.contains(want), "{want} missing from\n{records}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(&node, &["name", "show", "blog.proxima", "--json"])).unwrap();
    assert!(json["expiry"].as_u64().unwrap() > 0);
    assert!(json["expires"].as_str().unwrap().ends_with('Z'));
    assert_eq!(json["owned_by_this_node"], true);
    assert_eq!(json["zone"]["sequence"], 8, "register + 7 edits");
    let key_before = json["zone_key"].as_str().unwrap().to_owned();

    // Bad input: clear errors, nothing reaches the ledger.
    let err = fails(&node, &["name", "register", "bad_name!.proxima"]);
    assert!(err.contains("invalid name"), "{err}");
    let err = fails(&node, &["name", "register", "a.b.proxima"]);
    assert!(err.contains("directly below"), "{err}");
    let err = fails(&node, &["name", "register", "blog.proxima"]);
    assert!(err.contains("already registered"), "{err}");
    let err = fails(&node, &["name", "set", "blog.proxima", "A", "300.1.1.1"]);
    assert!(err.contains("IPv4"), "{err}");
    let err = fails(&node, &["name", "set", "other.proxima", "A", "192.0.2.1"]);
    assert!(err.contains("not registered"), "{err}");

    // rm by value, then by type.
    ok(&node, &["name", "set", "blog.proxima", "A", "192.0.2.8"]);
    let out = ok(&node, &["name", "rm", "blog.proxima", "A", "192.0.2.7"]);
    assert!(out.contains("removed 1"), "{out}");
    let records = ok(&node, &["name", "records", "blog.proxima"]);
    assert!(!records.contains("192.0.2.7") && records.contains("192.0.2.8"));
    fails(&node, &["name", "rm", "blog.proxima", "A", "192.0.2.7"]);

    // Key rotation re-signs the zone with the new key and keeps the records.
    let out = ok(&node, &["name", "rotate-key", "blog.proxima"]);
    assert!(out.contains("new zone key"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&node, &["name", "show", "blog.proxima", "--json"])).unwrap();
    assert_ne!(json["zone_key"], key_before);
    assert_eq!(json["zone"]["zone_key"], json["zone_key"]);
    assert!(ok(&node, &["name", "records", "blog.proxima"]).contains("192.0.2.8"));

    // The CDN's route: point the site record at a manifest.
    let manifest = "ab".repeat(32);
    let resp = curl::post_json(
        &format!("{}/api/names/blog.proxima/site", node.admin_url()),
        &node.auth_header(),
        &format!("{{\"manifest\":\"{manifest}\"}}"),
    );
    assert!(resp.contains(&manifest), "{resp}");
    assert!(ok(&node, &["name", "records", "blog.proxima"]).contains(&manifest));
    let raw = http_get(&format!("{}/api/names/blog.proxima/zone", node.admin_url()));
    assert!(raw.is_ok());

    // Zones and keys persist across a restart.
    node.restart().expect("restart");
    let records = ok(&node, &["name", "records", "blog.proxima"]);
    assert!(
        records.contains("192.0.2.8") && records.contains(&manifest),
        "{records}"
    );
    ok(
        &node,
        &["name", "set", "blog.proxima", "TXT", "after restart"],
    );

    // Transfer to another key: the ledger says so; this node is no longer the owner.
    let other = "11".repeat(32);
    ok(&node, &["name", "transfer", "blog.proxima", &other]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&node, &["name", "show", "blog.proxima", "--json"])).unwrap();
    assert_eq!(json["owner"], other);
    assert_eq!(json["owned_by_this_node"], false);
    let err = fails(&node, &["name", "rotate-key", "blog.proxima"]);
    assert!(err.contains("not the owner"), "{err}");

    let metrics = http_get(&format!("{}/metrics", node.admin_url())).unwrap();
    assert!(metrics.contains("proxima_naming_zones"), "{metrics}");
}

/// Minimal blocking JSON POST without pulling more test dependencies.
mod curl {
    pub(crate) fn post_json(url: &str, auth: &str, body: &str) -> String {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                "-H",
                auth,
                "-H",
                "content-type: application/json",
                "-d",
                body,
                url,
            ])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn anvil() -> Option<PathBuf> {
    which::which("anvil").ok().or_else(|| {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/anvil");
        p.exists().then_some(p)
    })
}

/// `proxima contracts deploy` to a real anvil, then a node on `--ledger eth` registers and
/// edits a name through the same CLI.
#[test]
fn eth_ledger_node_with_deployed_registry() {
    let anvil_bin = anvil().expect("anvil (run scripts/install-deps)");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(anvil_bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("anvil");
    let rpc = format!("http://127.0.0.1:{port}");
    // anvil's first default account.
    let key = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let deployed = wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(deployed.is_ok(), "anvil did not start");
    let out = Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(["contracts", "deploy", "--rpc", &rpc, "--term-days", "30"])
        .env("ETH_PRIVATE_KEY", key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let address = stdout
        .split_whitespace()
        .find(|w| w.starts_with("0x") && w.len() == 42)
        .expect("address printed")
        .to_owned();

    let keydir = tempfile::tempdir().unwrap();
    let keyfile = keydir.path().join("eth.key");
    std::fs::write(&keyfile, key).unwrap();
    let node = TestNode::start(|c| {
        c.ledger = LedgerKind::Eth;
        c.eth_rpc = Some(rpc.clone());
        c.eth_registry = Some(address.clone());
        c.naming.eth_key_file = Some(keyfile.clone());
        c.naming.eth_poll_interval = Duration::from_millis(100);
    })
    .expect("node on the eth ledger");
    ok(&node, &["name", "register", "chain.proxima"]);
    ok(&node, &["name", "set", "chain.proxima", "A", "192.0.2.55"]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&node, &["name", "show", "chain.proxima", "--json"])).unwrap();
    assert_eq!(json["ledger"], "eth");
    assert_eq!(
        json["owner"].as_str().unwrap().to_lowercase(),
        "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    );
    assert!(ok(&node, &["name", "records", "chain.proxima"]).contains("192.0.2.55"));
    ok(&node, &["name", "rotate-key", "chain.proxima"]);
    assert!(ok(&node, &["name", "records", "chain.proxima"]).contains("192.0.2.55"));
    drop(node);
    let _ = child.kill();
    let _ = child.wait();
}

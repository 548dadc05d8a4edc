//! Nodes on separate hosts: three network namespaces on a bridge (198.18.0.0/24, inside
//! namespaces this test creates and removes), each running the real `proxima` binary listening
//! on `0.0.0.0`, the way servers are started. Members must be told addresses they can reach
//! (never `0.0.0.0` or `127.0.0.1`), join with tokens, share the cache, and resolve a name
//! registered on another host.
//!
//! Needs root and `ip` (iproute2); without them it fails with the reason.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use proxima::harness::wait_for;

const HOSTS: usize = 3;

/// The namespaces, the switch and the node processes; all removed on drop.
struct Net {
    tag: String,
    children: Vec<Child>,
    dirs: Vec<tempfile::TempDir>,
}

fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Net {
    fn ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.tag)
    }

    fn ip(i: usize) -> String {
        format!("198.18.0.{}", i + 1)
    }

    fn new() -> Self {
        assert!(
            nix_is_root(),
            "the multi-host test creates network namespaces and needs root"
        );
        assert!(
            sh(&["ip", "-V"]).status.success(),
            "`ip` (iproute2) is missing"
        );
        let tag = format!("px{}", std::process::id() % 100_000);
        let net = Self {
            tag,
            children: Vec::new(),
            dirs: Vec::new(),
        };
        let sw = format!("{}-sw", net.tag);
        must(&["ip", "netns", "add", &sw]);
        must(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        for i in 0..HOSTS {
            let ns = net.ns(i);
            let (a, b) = (format!("{}a{i}", net.tag), format!("{}b{i}", net.tag));
            must(&["ip", "netns", "add", &ns]);
            must(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
            must(&["ip", "link", "set", &a, "netns", &ns]);
            must(&["ip", "link", "set", &b, "netns", &sw]);
            must(&["ip", "-n", &sw, "link", "set", &b, "master", "br0"]);
            must(&["ip", "-n", &sw, "link", "set", &b, "up"]);
            must(&["ip", "-n", &ns, "link", "set", &a, "name", "eth0"]);
            must(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", Self::ip(i)),
                "dev",
                "eth0",
            ]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Runs `proxima ARGS` inside host `i`'s namespace and waits for it.
    fn cli(&self, i: usize, args: &[&str]) -> Output {
        let ns = self.ns(i);
        let mut full = vec!["ip", "netns", "exec", &ns, bin()];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Starts a node on host `i`, listening on 0.0.0.0 (admin on the host's loopback).
    fn start(&mut self, i: usize, extra: &[String]) {
        let dir = tempfile::Builder::new()
            .prefix("proxima-mh-")
            .tempdir()
            .unwrap();
        let ns = self.ns(i);
        let admin = format!("127.0.0.1:{}", 17400 + i);
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns, bin(), "node"])
            .args(["--data-dir", &dir.path().display().to_string()])
            .args(["--admin-listen", &admin])
            .args(["--quic-listen", "0.0.0.0:4300"])
            .args(["--p2p-listen", "/ip4/0.0.0.0/udp/4301/quic-v1"])
            .args(["--redis-listen", "0.0.0.0:6300"])
            .args(["--dns-listen", "0.0.0.0:5300"])
            .args(["--http-listen", "0.0.0.0:8300"])
            .args(extra)
            .env("PROXIMA_CACHE__REQUIREPASS", "secret")
            .stdout(Stdio::null())
            .stderr(log);
        self.children.push(cmd.spawn().expect("spawn the node"));
        self.dirs.push(dir);
        let url = format!("http://{admin}");
        wait_for(Duration::from_secs(60), || self.health(i, &url).is_some())
            .unwrap_or_else(|_| panic!("host {i} never answered /health:\n{}", self.log(i)));
    }

    fn log(&self, i: usize) -> String {
        self.dirs
            .get(i)
            .and_then(|d| std::fs::read_to_string(d.path().join("log")).ok())
            .unwrap_or_default()
    }

    fn health(&self, i: usize, url: &str) -> Option<serde_json::Value> {
        let out = sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns(i),
            "curl",
            "-sf",
            "--max-time",
            "2",
            &format!("{url}/health"),
        ]);
        serde_json::from_slice(&out.stdout).ok()
    }

    fn url(i: usize) -> String {
        format!("http://127.0.0.1:{}", 17400 + i)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 0..HOSTS {
            let _ = sh(&["ip", "netns", "del", &self.ns(i)]);
        }
        let _ = sh(&["ip", "netns", "del", &format!("{}-sw", self.tag)]);
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_proxima")
}

fn nix_is_root() -> bool {
    // `id -u` rather than a libc call: the crate denies unsafe code.
    String::from_utf8_lossy(&sh(&["id", "-u"]).stdout).trim() == "0"
}

fn in_ns(net: &Net, i: usize, args: &[&str]) -> String {
    let ns = net.ns(i);
    let mut full = vec!["ip", "netns", "exec", ns.as_str()];
    full.extend_from_slice(args);
    String::from_utf8_lossy(&sh(&full).stdout).into_owned()
}

#[test]
fn nodes_listening_on_0_0_0_0_on_separate_hosts_join_and_share_their_services() {
    let mut net = Net::new();
    net.start(0, &[]);
    let boot = format!("/ip4/{}/udp/4301/quic-v1", Net::ip(0));
    for i in 1..HOSTS {
        let out = net.cli(0, &["cluster", "token", "--node", &Net::url(0)]);
        assert!(
            out.status.success(),
            "cluster token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        net.start(
            i,
            &[
                "--bootstrap".into(),
                boot.clone(),
                "--join-token".into(),
                token,
            ],
        );
    }
    // Every host sees every other alive, at the address it can reach.
    for i in 0..HOSTS {
        wait_for(Duration::from_secs(30), || {
            net.health(i, &Net::url(i)).is_some_and(|h| {
                let ms = h["members"].as_array().cloned().unwrap_or_default();
                ms.iter().filter(|m| m["state"] == "alive").count() == HOSTS
            })
        })
        .unwrap_or_else(|_| panic!("host {i} does not see {HOSTS} members:\n{}", net.log(i)));
        let h = net.health(i, &Net::url(i)).unwrap();
        for m in h["members"].as_array().unwrap() {
            let quic = m["quic"].as_str().unwrap();
            assert!(
                quic.starts_with("198.18.0."),
                "host {i} was told {quic} for a member"
            );
            for (svc, addr) in m["addrs"].as_object().unwrap() {
                let a = addr.as_str().unwrap();
                assert!(
                    !a.contains("0.0.0.0") && !a.contains("127.0.0.1"),
                    "host {i} was told {svc} = {a}"
                );
            }
        }
    }
    // One cache across the hosts: every host counts every member, a key written on one
    // host is read on another (through the password, as a client would).
    let addr = |i: usize| Net::ip(i);
    wait_for(Duration::from_secs(30), || {
        (0..HOSTS).all(|i| {
            in_ns(
                &net,
                i,
                &[
                    "redis-cli",
                    "-h",
                    &addr(i),
                    "-p",
                    "6300",
                    "-a",
                    "secret",
                    "--no-auth-warning",
                    "info",
                    "cluster",
                ],
            )
            .contains(&format!("proxima_members:{HOSTS}"))
        })
    })
    .expect("every host counts every cache member");
    for k in 0..20 {
        let out = in_ns(
            &net,
            1,
            &[
                "redis-cli",
                "-h",
                &addr(1),
                "-p",
                "6300",
                "-a",
                "secret",
                "--no-auth-warning",
                "set",
                &format!("mh:{k}"),
                "v",
            ],
        );
        assert_eq!(out.trim(), "OK", "set through host 1: {out}");
    }
    for k in 0..20 {
        let out = in_ns(
            &net,
            2,
            &[
                "redis-cli",
                "-h",
                &addr(2),
                "-p",
                "6300",
                "-a",
                "secret",
                "--no-auth-warning",
                "get",
                &format!("mh:{k}"),
            ],
        );
        assert_eq!(out.trim(), "v", "get mh:{k} through host 2");
    }
    // A name registered through host 0 resolves through host 2's DNS.
    let out = net.cli(
        0,
        &["name", "register", "mh.proxima", "--node", &Net::url(0)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = net.cli(
        0,
        &[
            "name",
            "set",
            "mh.proxima",
            "A",
            "192.0.2.44",
            "--node",
            &Net::url(0),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(Duration::from_secs(20), || {
        in_ns(
            &net,
            2,
            &[
                "dig",
                &format!("@{}", addr(2)),
                "-p",
                "5300",
                "mh.proxima",
                "A",
                "+short",
                "+time=1",
                "+tries=1",
            ],
        )
        .contains("192.0.2.44")
    })
    .unwrap_or_else(|_| panic!("the name does not resolve on host 2:\n{}", net.log(2)));
}

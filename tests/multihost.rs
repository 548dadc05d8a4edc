//! Nodes on separate hosts: five network namespaces on a bridge (198.18.0.0/24, inside
//! namespaces this test creates and removes; the bridge lives in a namespace of its own, so
//! nothing is added to the machine's network), each running the real `proxima` binary. Hosts
//! 0, 2 and 4 listen on `0.0.0.0`, hosts 1 and 3 on their own address, all bootstrap by
//! address, join with tokens from host 0 (the cluster's certificates) and protect the cache
//! with a `requirepass`. Through public interfaces only (the CLI, HTTP, DNS, RESP), run from
//! inside the namespaces:
//!
//! - every member is told the 198.18.0.x addresses of every other (never `0.0.0.0` or
//!   `127.0.0.1`), in `/health`, `CLUSTER SLOTS`, `MOVED` and what redis-py's `RedisCluster`
//!   connects to;
//! - a name registered on one host resolves through every host's DNS;
//! - a site published with `proxima publish` on host 1 is served byte for byte by host 2's
//!   gateway to a client on host 3;
//! - redis-py `RedisCluster`, started against each host in turn from another host, writes and
//!   reads keys over many slots, and every key is on its replica;
//! - host 1 (which published the site and holds cache slots) is killed with SIGKILL: every
//!   survivor declares it dead within a bounded time (measured and printed), the keys written
//!   before are read through every survivor, the site is served by the survivors (one of which
//!   never served it before and must fetch it from another survivor), and DNS still answers.
//!
//! Needs root, `ip` (iproute2), `setpriv`, `curl`, `dig`, `redis-cli` and `tools/venv` with
//! redis-py; without one it fails with the reason. Phase timings are printed (`--nocapture`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use proxima::harness::wait_for;

/// Five hosts: measured on two shared cores (debug build), the test takes 19 to 25 s, 35 s
/// with two busy loops competing for the cores, so there is no reason to drop to four.
const HOSTS: usize = 5;
/// The host killed: it published the site and owns cache slots.
const KILLED: usize = 1;
const PASSWORD: &str = "secret";
/// Keys written through each host by `RedisCluster`.
const KEYS_PER_HOST: usize = 200;
const SITE: &str = "mhsite.proxima";
/// The services every member advertises.
const SERVICES: [&str; 5] = ["dns", "http", "redis", "p2p", "quic"];

/// The namespaces, the switch and the node processes; all removed on drop (even on panic).
struct Net {
    tag: String,
    /// The node process of each host (`None` once killed, or before it starts).
    children: Vec<Option<Child>>,
    dirs: Vec<tempfile::TempDir>,
    started: Instant,
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

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Host `i`'s address.
fn ip(i: usize) -> String {
    format!("198.18.0.{}", i + 1)
}

/// The address host `i` listens on: `0.0.0.0` for even hosts, its own address for odd ones.
fn listen_ip(i: usize) -> String {
    if i.is_multiple_of(2) {
        "0.0.0.0".into()
    } else {
        ip(i)
    }
}

/// The admin API of host `i`, on its own loopback (a port per host: the CLI's runtime files
/// live on the one file system all namespaces share).
fn admin_url(i: usize) -> String {
    format!("http://127.0.0.1:{}", 17400 + i)
}

/// The libp2p address host `i` is bootstrapped from.
fn p2p(i: usize) -> String {
    format!("/ip4/{}/udp/4301/quic-v1", ip(i))
}

/// Who host `i` bootstraps from: hosts 1 and 2 from host 0, hosts 3 and 4 from hosts 1 and 2.
fn bootstrap_of(i: usize) -> Option<usize> {
    match i {
        0 => None,
        1 | 2 => Some(0),
        n => Some(n - 2),
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_proxima")
}

fn is_root() -> bool {
    // `id -u` rather than a libc call: the crate denies unsafe code.
    String::from_utf8_lossy(&sh(&["id", "-u"]).stdout).trim() == "0"
}

fn have(tool: &str) -> bool {
    proxima::harness::have_tool(tool)
}

impl Net {
    fn ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.tag)
    }

    fn sw(&self) -> String {
        format!("{}-sw", self.tag)
    }

    fn new() -> Self {
        assert!(
            is_root(),
            "the multi-host test creates network namespaces and needs root"
        );
        for tool in ["ip", "setpriv", "curl", "dig", "redis-cli"] {
            assert!(
                have(tool),
                "`{tool}` is missing: run scripts/test, which installs the test tools"
            );
        }
        assert!(
            python().exists(),
            "redis-py is missing: run scripts/install-deps (it creates tools/venv)"
        );
        let tag = format!("px{}", std::process::id() % 100_000);
        let net = Self {
            tag,
            children: Vec::new(),
            dirs: Vec::new(),
            started: Instant::now(),
        };
        // The bridge in a namespace of its own, each host's end of a veth pair created
        // directly inside its namespace: nothing is created in the machine's own namespace.
        let sw = net.sw();
        must(&["ip", "netns", "add", &sw]);
        must(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        for i in 0..HOSTS {
            let ns = net.ns(i);
            let (a, b) = (format!("{}a{i}", net.tag), format!("{}b{i}", net.tag));
            must(&["ip", "netns", "add", &ns]);
            must(&[
                "ip", "link", "add", &a, "netns", &ns, "type", "veth", "peer", "name", &b, "netns",
                &sw,
            ]);
            must(&["ip", "-n", &sw, "link", "set", &b, "master", "br0"]);
            must(&["ip", "-n", &sw, "link", "set", &b, "up"]);
            must(&["ip", "-n", &ns, "link", "set", &a, "name", "eth0"]);
            let cidr = format!("{}/24", ip(i));
            must(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Prints a phase with the time since the network was built.
    fn phase(&self, what: &str) {
        eprintln!(
            "[multihost {:>6.1}s] {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Runs `ARGS` inside host `i`'s namespace and waits for it.
    fn exec(&self, i: usize, args: &[&str]) -> Output {
        let ns = self.ns(i);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Runs `proxima ARGS --node <host i's admin> --token-file <its admin token>` inside host
    /// `i`'s namespace; panics with stderr unless it succeeds; returns stdout.
    fn cli(&self, i: usize, args: &[&str]) -> String {
        let url = admin_url(i);
        let token = self.dirs[i].path().join("admin.token");
        let token = token.to_str().unwrap();
        let mut full = vec![bin()];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--node", &url, "--token-file", token]);
        let out = self.exec(i, &full);
        assert!(
            out.status.success(),
            "proxima {args:?} on host {i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text(&out)
    }

    /// Starts a node on host `i`, every service on [`listen_ip`] but the admin API (on the
    /// host's loopback), and waits until it answers `/health`.
    fn start(&mut self, i: usize, extra: &[String]) {
        assert_eq!(self.children.len(), i, "hosts start in order");
        let dir = tempfile::Builder::new()
            .prefix("proxima-mh-")
            .tempdir()
            .unwrap();
        let ns = self.ns(i);
        let l = listen_ip(i);
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut cmd = Command::new("ip");
        // `ip netns exec` and `setpriv` exec in turn: the child is the node itself (SIGKILL
        // reaches it), and it is killed if this test's thread dies without dropping `Net`.
        cmd.args([
            "netns",
            "exec",
            &ns,
            "setpriv",
            "--pdeathsig",
            "KILL",
            bin(),
        ])
        .arg("node")
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--admin-listen", &admin_url(i)[7..]])
        .args(["--quic-listen", &format!("{l}:4300")])
        .args(["--p2p-listen", &format!("/ip4/{l}/udp/4301/quic-v1")])
        .args(["--redis-listen", &format!("{l}:6300")])
        .args(["--dns-listen", &format!("{l}:5300")])
        .args(["--http-listen", &format!("{l}:8300")])
        .args(extra)
        .env("PROXIMA_CACHE__REQUIREPASS", PASSWORD)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log);
        self.children
            .push(Some(cmd.spawn().expect("spawn the node")));
        self.dirs.push(dir);
        wait_for(Duration::from_secs(60), || self.health(i).is_some())
            .unwrap_or_else(|_| panic!("host {i} never answered /health:\n{}", self.log(i)));
    }

    /// SIGKILL to host `i`'s node.
    fn kill(&mut self, i: usize) {
        let mut c = self.children[i].take().expect("host runs");
        c.kill().expect("SIGKILL the node");
        let _ = c.wait();
    }

    fn running(&self) -> Vec<usize> {
        (0..HOSTS)
            .filter(|&i| self.children.get(i).is_some_and(Option::is_some))
            .collect()
    }

    fn log(&self, i: usize) -> String {
        self.dirs
            .get(i)
            .and_then(|d| std::fs::read_to_string(d.path().join("log")).ok())
            .unwrap_or_default()
    }

    /// `/health` of host `i`, asked from inside its namespace.
    fn health(&self, i: usize) -> Option<serde_json::Value> {
        let url = format!("{}/health", admin_url(i));
        let out = self.exec(i, &["curl", "-sf", "--max-time", "2", &url]);
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `GET PATH` on host `i`'s admin API (JSON), asked from inside its namespace.
    fn admin_get(&self, i: usize, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", admin_url(i));
        let out = self.exec(i, &["curl", "-sf", "--max-time", "5", &url]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("GET {url} on host {i}: {e}: {}", text(&out)))
    }

    /// The state host `i` sees for the member reached at host `j`'s QUIC address.
    fn state_of(&self, i: usize, j: usize) -> Option<String> {
        let quic = format!("{}:4300", ip(j));
        let h = self.health(i)?;
        h["members"]
            .as_array()?
            .iter()
            .find(|m| m["quic"] == quic.as_str())
            .and_then(|m| m["state"].as_str().map(str::to_owned))
    }

    /// `redis-cli ... ARGS` from host `from` against host `to`'s cache, with the password.
    fn redis_cli(&self, from: usize, to: usize, args: &[&str]) -> String {
        let host = ip(to);
        let mut full = vec![
            "redis-cli",
            "-h",
            &host,
            "-p",
            "6300",
            "-a",
            PASSWORD,
            "--no-auth-warning",
        ];
        full.extend_from_slice(args);
        text(&self.exec(from, &full))
    }

    /// Whether host `i`'s cache counts `n` members and pulls no range (`INFO cluster`).
    fn cache_settled(&self, i: usize, n: usize) -> bool {
        let info = self.redis_cli(i, i, &["info", "cluster"]);
        let field = |k: &str| {
            info.lines().find_map(|l| {
                l.trim()
                    .strip_prefix(k)?
                    .strip_prefix(':')
                    .map(str::to_owned)
            })
        };
        field("proxima_members") == Some(n.to_string())
            && field("proxima_importing_ranges").as_deref() == Some("0")
    }

    /// `tests/cache/redis_py_multihost.py` run from host `from` against host `to`; panics with
    /// its output unless every check passed; returns its JSON summary.
    fn redis_py(&self, from: usize, to: usize, args: &[&str]) -> serde_json::Value {
        let script = root().join("tests/cache/redis_py_multihost.py");
        let (py, script, host) = (
            python().display().to_string(),
            script.display().to_string(),
            ip(to),
        );
        let mut full = vec![py.as_str(), &script, &host, "6300", PASSWORD];
        full.extend_from_slice(args);
        let out = self.exec(from, &full);
        assert!(
            out.status.success(),
            "redis-py from host {from} against host {to} {args:?} failed:\nstdout: {}\nstderr: {}\nhost {to}'s log:\n{}",
            text(&out),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(to))
        );
        serde_json::from_str(text(&out).trim())
            .unwrap_or_else(|e| panic!("redis-py summary {:?}: {e}", text(&out)))
    }

    /// `dig NAME A +short` from host `from` at host `to`'s DNS.
    fn dig(&self, from: usize, to: usize, name: &str) -> String {
        let at = format!("@{}", ip(to));
        text(&self.exec(
            from,
            &[
                "dig", &at, "-p", "5300", name, "A", "+short", "+time=1", "+tries=1",
            ],
        ))
    }

    /// `GET http://HOST:8300/PATH` with `Host: SITE`, from host `from` at host `to`'s gateway;
    /// the body when the status is 2xx.
    fn fetch(&self, from: usize, to: usize, path: &str) -> Option<Vec<u8>> {
        let url = format!("http://{}:8300/{path}", ip(to));
        let host = format!("Host: {SITE}");
        let out = self.exec(
            from,
            &["curl", "-sf", "--max-time", "10", "-H", &host, &url],
        );
        out.status.success().then_some(out.stdout)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 0..HOSTS {
            let _ = sh(&["ip", "netns", "del", &self.ns(i)]);
        }
        let _ = sh(&["ip", "netns", "del", &self.sw()]);
    }
}

fn python() -> PathBuf {
    root().join("tools/venv/bin/python")
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A small site: a page, a style sheet and an image (bytes that do not compress).
fn site_dir() -> (tempfile::TempDir, Vec<(&'static str, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while png.len() < 40_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        png.extend_from_slice(&x.to_le_bytes());
    }
    let files = vec![
        (
            "index.html",
            b"<!doctype html><link rel=stylesheet href=css/site.css><img src=img/logo.png><h1>on several hosts</h1>".to_vec(),
        ),
        ("css/site.css", b"body{font-family:serif;color:#123}".to_vec()),
        ("img/logo.png", png),
    ];
    for (p, d) in &files {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, d).unwrap();
    }
    (dir, files)
}

#[test]
fn five_hosts_on_a_bridge_share_names_sites_and_cache_and_survive_a_killed_host() {
    let mut net = Net::new();
    net.phase("namespaces and bridge ready");

    // Host 0 creates the cluster; every other host joins by address with a token from it.
    net.start(0, &[]);
    for i in 1..HOSTS {
        let token = net.cli(0, &["cluster", "token"]).trim().to_owned();
        let boot = bootstrap_of(i).unwrap();
        net.start(
            i,
            &[
                "--bootstrap".into(),
                p2p(boot),
                "--join-token".into(),
                token,
            ],
        );
    }
    net.phase("5 nodes started");

    // Every host sees every other alive and certified, at the addresses it can reach.
    for i in 0..HOSTS {
        wait_for(Duration::from_secs(60), || {
            net.health(i).is_some_and(|h| {
                let ms = h["members"].as_array().cloned().unwrap_or_default();
                // Alive, certified, and advertising every service (a node advertises its
                // services once they listen: the cache waits to see members first).
                ms.iter()
                    .filter(|m| {
                        m["state"] == "alive"
                            && m["standing"].to_string().contains("cache")
                            && SERVICES.iter().all(|s| m["addrs"].get(s).is_some())
                    })
                    .count()
                    == HOSTS
            })
        })
        .unwrap_or_else(|_| {
            panic!(
                "host {i} does not see {HOSTS} certified members alive: {}\n{}",
                net.health(i)
                    .map(|h| h["members"].to_string())
                    .unwrap_or_default(),
                tail(&net.log(i))
            )
        });
        let h = net.health(i).unwrap();
        let mut seen: Vec<String> = Vec::new();
        for m in h["members"].as_array().unwrap() {
            let quic = m["quic"].as_str().unwrap();
            let host = quic.strip_suffix(":4300").unwrap_or(quic);
            assert!(
                (0..HOSTS).any(|j| ip(j) == host),
                "host {i} was told {quic} for a member"
            );
            seen.push(host.to_owned());
            for (svc, addr) in m["addrs"].as_object().unwrap() {
                let a = addr.as_str().unwrap();
                // `IP:PORT` or a multiaddr `/ip4/IP/...`: the member's own 198.18.0.x.
                let on_host =
                    a.starts_with(&format!("{host}:")) || a.starts_with(&format!("/ip4/{host}/"));
                assert!(
                    on_host,
                    "host {i} was told {svc} = {a} for the member at {host}"
                );
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), HOSTS, "host {i} sees {seen:?}");
    }
    net.phase("every host sees 5 members alive, certified, at 198.18.0.x");
    let peers: Vec<String> = (0..HOSTS)
        .map(|i| {
            net.admin_get(i, "/health")["peer_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();

    // One cache: every host counts every member and pulls no range.
    wait_for(Duration::from_secs(60), || {
        (0..HOSTS).all(|i| net.cache_settled(i, HOSTS))
    })
    .unwrap_or_else(|_| {
        panic!(
            "the cache did not converge: {:?}",
            (0..HOSTS)
                .map(|i| net.redis_cli(i, i, &["info", "cluster"]))
                .collect::<Vec<_>>()
        )
    });
    net.phase("the cache counts 5 members on every host");

    // RedisCluster against each host in turn, from the next host: the map, MOVED and the
    // nodes it connects to are 198.18.0.x; it writes keys over many slots and reads back
    // every key written so far; the last run checks every key on each of its owners.
    let members = HOSTS.to_string();
    let count = KEYS_PER_HOST.to_string();
    let mut prefixes: Vec<String> = Vec::new();
    for h in 0..HOSTS {
        let prefix = format!("mh{h}");
        let mut args = vec!["--members", &members, "--count", &count, "--write", &prefix];
        if !prefixes.is_empty() {
            args.push("--read");
            args.extend(prefixes.iter().map(String::as_str));
        }
        if h == HOSTS - 1 {
            args.push("--replicas");
        }
        let summary = net.redis_py((h + 1) % HOSTS, h, &args);
        eprintln!("  redis-py via host {h}: {summary}");
        prefixes.push(prefix);
    }
    net.phase("RedisCluster wrote and read through every host; every key on its replica");

    // A name registered through host 0 resolves through every host's DNS, asked from another.
    net.cli(0, &["name", "register", "mh.proxima"]);
    net.cli(0, &["name", "set", "mh.proxima", "A", "192.0.2.44"]);
    for i in 0..HOSTS {
        wait_for(Duration::from_secs(30), || {
            net.dig((i + 1) % HOSTS, i, "mh.proxima").trim() == "192.0.2.44"
        })
        .unwrap_or_else(|_| {
            panic!(
                "mh.proxima does not resolve on host {i}:\n{}",
                tail(&net.log(i))
            )
        });
    }
    net.phase("mh.proxima resolves through every host");

    // A site published on host 1 (the real CLI, a real directory) is served by host 2's
    // gateway, byte for byte, to a client on host 3.
    let (site, files) = site_dir();
    net.cli(KILLED, &["name", "register", SITE]);
    let out = net.cli(
        KILLED,
        &["publish", site.path().to_str().unwrap(), "--name", SITE],
    );
    assert!(out.contains("published"), "{out}");
    let fetch_all = |net: &Net, from: usize, to: usize| {
        files
            .iter()
            .all(|(p, d)| net.fetch(from, to, p).is_some_and(|b| b == *d))
    };
    wait_for(Duration::from_secs(30), || fetch_all(&net, 3, 2)).unwrap_or_else(|_| {
        panic!(
            "host 2 does not serve the site published on host 1:\n{}",
            tail(&net.log(2))
        )
    });
    assert_eq!(
        net.fetch(3, 2, "").as_deref(),
        Some(files[0].1.as_slice()),
        "`/` is index.html"
    );
    net.phase("the site published on host 1 is served by host 2 to host 3");

    // The site's name is steered to gateways others can reach, through every host's DNS.
    for i in 0..HOSTS {
        let mut last = String::new();
        wait_for(Duration::from_secs(30), || {
            last = net.dig((i + 1) % HOSTS, i, SITE);
            let ips: Vec<&str> = last.split_whitespace().collect();
            !ips.is_empty() && ips.iter().all(|a| (0..HOSTS).any(|j| ip(j) == *a))
        })
        .unwrap_or_else(|_| panic!("{SITE} through host {i} answers {last:?}"));
    }
    net.phase("the site's name steers to 198.18.0.x through every host");

    // Kill host 1 (SIGKILL): it published the site and holds cache slots.
    let keys_before = net.redis_cli(KILLED, KILLED, &["dbsize"]);
    assert!(
        keys_before.trim().parse::<u64>().is_ok_and(|n| n > 0),
        "host {KILLED} holds no key: {keys_before}"
    );
    net.kill(KILLED);
    let killed_at = Instant::now();
    net.phase(&format!(
        "host {KILLED} killed (it held {} keys)",
        keys_before.trim()
    ));
    let survivors = net.running();
    let mut suspected: Vec<Option<Duration>> = vec![None; HOSTS];
    let mut dead: Vec<Option<Duration>> = vec![None; HOSTS];
    wait_for(Duration::from_secs(30), || {
        for &i in &survivors {
            if dead[i].is_some() {
                continue;
            }
            match net.state_of(i, KILLED).as_deref() {
                Some("suspect") => {
                    suspected[i].get_or_insert(killed_at.elapsed());
                }
                Some("dead") => {
                    dead[i] = Some(killed_at.elapsed());
                }
                _ => {}
            }
        }
        survivors.iter().all(|&i| dead[i].is_some())
    })
    .unwrap_or_else(|_| {
        panic!(
            "not every survivor declared host {KILLED} dead within 30 s: suspect {suspected:?}, dead {dead:?}"
        )
    });
    let detected = survivors.iter().filter_map(|&i| dead[i]).max().unwrap();
    for &i in &survivors {
        eprintln!(
            "  host {i}: suspect after {:?}, dead after {:?}",
            suspected[i], dead[i]
        );
    }
    net.phase(&format!(
        "every survivor declared host {KILLED} dead; the last after {:.1}s",
        detected.as_secs_f64()
    ));
    assert!(
        detected < Duration::from_secs(15),
        "detection took {detected:?} (README: about 6 s)"
    );

    // The cache of the survivors: 4 members, no range pulled, every key written before read
    // through every survivor (from another survivor), every key on each of its new owners,
    // and new writes accepted.
    let alive = survivors.len().to_string();
    wait_for(Duration::from_secs(60), || {
        survivors
            .iter()
            .all(|&i| net.cache_settled(i, survivors.len()))
    })
    .expect("the survivors' cache converges");
    net.phase("the survivors' cache counts 4 members");
    for (n, &h) in survivors.iter().enumerate() {
        let from = survivors[(n + 1) % survivors.len()];
        let mut args = vec!["--members", &alive, "--count", &count, "--read"];
        args.extend(prefixes.iter().map(String::as_str));
        if n == 0 {
            args.extend(["--write", "after", "--replicas"]);
        }
        let summary = net.redis_py(from, h, &args);
        eprintln!("  redis-py via host {h} after the kill: {summary}");
    }
    net.phase("every key written before the kill is read through every survivor");

    // The site is still served: by host 2, and by host 4, which never served it and must
    // fetch it from a survivor (its publisher is dead).
    for to in [2, 4] {
        let from = if to == 2 { 3 } else { 0 };
        wait_for(Duration::from_secs(30), || fetch_all(&net, from, to)).unwrap_or_else(|_| {
            panic!(
                "host {to} does not serve the site after host {KILLED} died:\n{}",
                tail(&net.log(to))
            )
        });
    }
    // Host 4 fetched what it served from survivors: every fetch it made completed, and
    // every provider that delivered a piece of a blob is a live host.
    let fetches = net.admin_get(4, "/api/blobs/fetches");
    let fetches = fetches.as_array().cloned().unwrap_or_default();
    assert!(
        !fetches.is_empty(),
        "host 4 served the site without fetching it: {fetches:?}"
    );
    for f in &fetches {
        assert_eq!(f["ok"], true, "a fetch by host 4 failed: {f}");
        for p in f["providers"].as_array().unwrap() {
            if p["groups"].as_u64().unwrap_or(0) > 0 {
                let from = peers.iter().position(|x| *x == p["peer"]);
                assert!(
                    from.is_some_and(|j| j != KILLED),
                    "host 4 was served by {} (host {from:?}): {f}",
                    p["peer"]
                );
            }
        }
    }
    net.phase(&format!(
        "the site is served by hosts 2 and 4 after its publisher died (host 4 made {} fetches from survivors)",
        fetches.len()
    ));

    // DNS on every survivor: the name, and the site steered only to live hosts.
    for (n, &i) in survivors.iter().enumerate() {
        let from = survivors[(n + 1) % survivors.len()];
        assert_eq!(
            net.dig(from, i, "mh.proxima").trim(),
            "192.0.2.44",
            "mh.proxima on host {i} after the kill"
        );
        let mut last = String::new();
        wait_for(Duration::from_secs(30), || {
            last = net.dig(from, i, SITE);
            let ips: Vec<&str> = last.split_whitespace().collect();
            !ips.is_empty() && ips.iter().all(|a| survivors.iter().any(|&j| ip(j) == *a))
        })
        .unwrap_or_else(|_| panic!("{SITE} through host {i} after the kill answers {last:?}"));
    }
    net.phase("DNS answers on every survivor, the site steered to live hosts only");
    eprintln!(
        "multihost: {HOSTS} hosts, host {KILLED} declared dead by every survivor after {:.1}s, whole test {:.1}s",
        detected.as_secs_f64(),
        net.started.elapsed().as_secs_f64()
    );
}

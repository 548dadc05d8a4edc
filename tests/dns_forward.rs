//! The forwarding resolver of a running node against a real upstream (Unbound serving a test
//! zone from a temporary directory on a free loopback port), with real clients (dig, kdig).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proxima::harness::{TestNode, dig, run_tool, wait_for};

/// An Unbound instance answering `example.test.` from local data and logging every query.
struct Unbound {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Unbound {
    /// One attempt on a fresh free port; `None` if Unbound exits (the port was taken between
    /// our probe and its bind) or does not answer in time.
    fn try_start() -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("proxima-unbound-")
            .tempdir()
            .unwrap();
        // A free port: bound and released; Unbound then binds it (both UDP and TCP).
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let conf = format!(
            r#"server:
  interface: 127.0.0.1@{port}
  port: {port}
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{d}"
  pidfile: ""
  logfile: "{d}/unbound.log"
  use-syslog: no
  log-queries: yes
  verbosity: 1
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "example.test." static
  local-data: "example.test. 3600 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 120"
  local-data: "a.example.test. 300 IN A 192.0.2.1"
  local-data: "B.example.test. 300 IN TXT \"upstream says hi\""
remote-control:
  control-enable: no
"#
        );
        let conf_path = dir.path().join("unbound.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let unbound = which::which("unbound")
            .or_else(|_| which::which("/usr/sbin/unbound"))
            .expect("unbound is installed by scripts/install-deps");
        let child = Command::new(unbound)
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut up = Self { child, dir, addr };
        let mut exited = false;
        let answered = wait_for(Duration::from_secs(20), || {
            exited = matches!(up.child.try_wait(), Ok(Some(_)));
            exited || dig(addr, &["a.example.test", "A"]).is_ok_and(|o| o.contains("192.0.2.1"))
        });
        (answered.is_ok() && !exited).then_some(up)
    }

    fn start() -> Self {
        (0..5)
            .find_map(|_| Self::try_start())
            .expect("unbound answers (5 attempts on fresh ports)")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("unbound.log")
    }

    /// How many times Unbound was asked `name` (presentation form with the final dot).
    fn asked(&self, name: &str, qtype: &str) -> usize {
        let needle = format!(" {name} {qtype} IN");
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.to_ascii_lowercase()
                    .contains(&needle.to_ascii_lowercase())
            })
            .count()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("<none>")
}

/// TTL of the first answer record for `name`.
fn answer_ttl(out: &str, name: &str) -> Option<u32> {
    let answers = out.split(";; ANSWER SECTION:").nth(1)?;
    answers
        .lines()
        .map(str::split_whitespace)
        .find_map(|mut f| {
            (f.next()?.eq_ignore_ascii_case(name)).then_some(())?;
            f.next()?.parse().ok()
        })
}

/// A plain query for `name` (presentation form, final dot) type A class IN with id `id`, RD set,
/// and an OPT record (payload 1232, DO clear) if `edns`.
fn raw_query(id: u16, name: &str, edns: bool) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if edns {
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

/// Sends `query` and returns the response with every TTL in it (OPT excluded).
fn raw_ask(addr: SocketAddr, query: &[u8]) -> (Vec<u8>, Vec<u32>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(query, addr).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    let resp = buf[..n].to_vec();
    let layout = dns::wire::layout(&resp).expect("a well-formed response");
    let ttls = layout
        .ttl_at
        .iter()
        .map(|&at| {
            let at = usize::from(at);
            u32::from_be_bytes(resp[at..at + 4].try_into().unwrap())
        })
        .collect();
    (resp, ttls)
}

fn dns_addr(node: &TestNode) -> SocketAddr {
    node.addr("dns").expect("dns service").parse().unwrap()
}

#[test]
fn forwards_and_caches_positive_and_negative_answers() {
    let up = Unbound::start();
    let node = TestNode::start(|c| c.dns.upstreams = vec![up.addr.to_string()]).unwrap();
    let addr = dns_addr(&node);
    let baseline = up.asked("a.example.test.", "A");

    let first = dig(addr, &["a.example.test", "A"]).unwrap();
    assert_eq!(status(&first), "NOERROR", "{first}");
    assert!(first.contains("192.0.2.1"), "{first}");
    assert!(
        first.contains(" ra"),
        "recursion available for a local client: {first}"
    );
    let ttl1 = answer_ttl(&first, "a.example.test.").expect("answer TTL");
    assert!(ttl1 <= 300 && ttl1 > 290, "{first}");
    wait_for(Duration::from_secs(5), || {
        up.asked("a.example.test.", "A") == baseline + 1
    })
    .expect("the upstream saw the first query");

    // The cached answer counts down; every one of these is a cache hit.
    let mut later = String::new();
    wait_for(Duration::from_secs(5), || {
        later = dig(addr, &["a.example.test", "A"]).unwrap();
        answer_ttl(&later, "a.example.test.").is_some_and(|t| t < ttl1)
    })
    .expect("the second answer's TTL is lower");
    assert!(later.contains("192.0.2.1"), "{later}");
    // kdig agrees, and the upstream still saw one query only.
    let k = run_tool(
        "kdig",
        &[
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            "+time=2",
            "+retry=0",
            "a.example.test",
            "A",
        ],
    )
    .unwrap();
    let k = String::from_utf8_lossy(&k.stdout);
    assert!(k.contains("192.0.2.1") && k.contains("NOERROR"), "{k}");
    assert_eq!(
        up.asked("a.example.test.", "A"),
        baseline + 1,
        "no second upstream query"
    );

    // Negative answers: NXDOMAIN with the upstream's SOA, cached too.
    let nx = dig(addr, &["nosuch.example.test", "A"]).unwrap();
    assert_eq!(status(&nx), "NXDOMAIN", "{nx}");
    assert!(nx.contains("SOA"), "{nx}");
    wait_for(Duration::from_secs(5), || {
        up.asked("nosuch.example.test.", "A") == 1
    })
    .unwrap();
    let nx2 = dig(addr, &["NoSuch.example.test", "A"]).unwrap();
    assert_eq!(status(&nx2), "NXDOMAIN", "{nx2}");
    assert!(
        nx2.contains("NoSuch.example.test"),
        "question case preserved: {nx2}"
    );
    assert_eq!(
        up.asked("nosuch.example.test.", "A"),
        1,
        "negative answer cached"
    );

    // Cache hits on the wire: each carries its query's id and question case, with and without
    // EDNS, and the TTLs (positive and negative answers) count down.
    let asked = |id: u16, name: &str, edns: bool| {
        let q = raw_query(id, name, edns);
        let (resp, ttls) = raw_ask(addr, &q);
        assert_eq!(resp[..2], id.to_be_bytes(), "id of query {id}");
        let qlen = q.len() - 12 - if edns { 11 } else { 0 };
        assert_eq!(resp[12..12 + qlen], q[12..12 + qlen], "question as asked");
        assert_eq!(resp[11], u8::from(edns), "OPT only for an EDNS query");
        (resp[3] & 0x0F, ttls)
    };
    let (rcode, pos1) = asked(0x1001, "A.Example.TEST.", false);
    assert_eq!((rcode, pos1.len()), (0, 1), "one A record, NOERROR");
    let (rcode, neg1) = asked(0x1002, "nosuch.EXAMPLE.test.", true);
    assert_eq!((rcode, neg1.len()), (3, 1), "NXDOMAIN with its SOA");
    wait_for(Duration::from_secs(5), || {
        let (_, pos2) = asked(0x2001, "a.example.test.", true);
        let (_, neg2) = asked(0x2002, "NOSUCH.example.test.", false);
        pos2[0] < pos1[0] && neg2[0] < neg1[0]
    })
    .expect("cached TTLs count down");
    assert_eq!(
        up.asked("a.example.test.", "A"),
        baseline + 1,
        "all cache hits"
    );
    assert_eq!(up.asked("nosuch.example.test.", "A"), 1, "all cache hits");

    // The metrics count answers by source.
    let metrics = proxima::harness::http_get(&format!("{}/metrics", node.admin_url())).unwrap();
    assert!(
        metrics.contains(r#"proxima_dns_responses_total{source="cache",rcode="NOERROR"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"proxima_dns_responses_total{source="forwarded",rcode="NXDOMAIN"} 1"#),
        "{metrics}"
    );
}

#[test]
fn upstream_failure_is_servfail_within_the_timeout() {
    // An "upstream" that receives and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let timeout = Duration::from_millis(400);
    let node = TestNode::start(|c| {
        c.dns.upstreams = vec![silent.local_addr().unwrap().to_string()];
        c.dns.forward_timeout = timeout;
    })
    .unwrap();
    let addr = dns_addr(&node);
    let started = Instant::now();
    let out = dig(addr, &["+time=5", "unreachable.example.test", "A"]).unwrap();
    let took = started.elapsed();
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    assert!(
        took < timeout + Duration::from_millis(1500),
        "SERVFAIL took {took:?}"
    );
    let mut buf = [0u8; 512];
    silent
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    assert!(silent.recv(&mut buf).is_ok(), "the upstream was asked");
}

#[test]
fn clients_outside_allowed_networks_are_refused() {
    let up = Unbound::start();
    let node = TestNode::start(|c| {
        c.dns.upstreams = vec![up.addr.to_string()];
        c.dns.allowed_clients = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .unwrap();
    let addr = dns_addr(&node);
    let ok = dig(addr, &["-b", "127.0.0.1", "a.example.test", "A"]).unwrap();
    assert_eq!(status(&ok), "NOERROR", "{ok}");
    let refused = dig(addr, &["-b", "127.0.0.2", "a.example.test", "A"]).unwrap();
    assert_eq!(status(&refused), "REFUSED", "{refused}");
    assert!(!refused.contains("192.0.2.1"), "{refused}");
    // Ledger names are still answered authoritatively to anyone (NXDOMAIN here).
    let auth = dig(addr, &["-b", "127.0.0.2", "nosuch.proxima", "A"]).unwrap();
    assert_eq!(status(&auth), "NXDOMAIN", "{auth}");
    assert!(auth.contains(" aa"), "{auth}");
}

//! Ledger names served by a running node: registered and edited with the real CLI
//! (`proxima name register` / `name set`), resolved with real clients (dig, kdig).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use proxima::harness::{TestNode, dig, run_tool, wait_for};

fn proxima(node: &TestNode, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_proxima"))
        .args(args)
        .args(["--node", &node.admin_url()])
        .output()
        .expect("the CLI runs");
    assert!(
        out.status.success(),
        "proxima {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dns_addr(node: &TestNode) -> SocketAddr {
    node.addr("dns").expect("dns service").parse().unwrap()
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("<none>")
}

fn flags(out: &str) -> Vec<&str> {
    out.split("flags: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default()
}

/// Answer-section records as (owner, ttl, type, data).
fn answers(out: &str) -> Vec<(String, u32, String, String)> {
    section(out, ";; ANSWER SECTION:")
}

fn section(out: &str, title: &str) -> Vec<(String, u32, String, String)> {
    let Some(rest) = out.split(title).nth(1) else {
        return Vec::new();
    };
    rest.lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let owner = f.next()?.to_owned();
            let ttl = f.next()?.parse().ok()?;
            let _class = f.next()?;
            let rtype = f.next()?.to_owned();
            let data = f.collect::<Vec<_>>().join(" ");
            Some((owner, ttl, rtype, data))
        })
        .collect()
}

#[test]
fn registered_records_resolve_with_the_right_flags_and_ttl() {
    let node = TestNode::start(|_| {}).unwrap();
    let addr = dns_addr(&node);
    proxima(&node, &["name", "register", "bars.proxima"]);
    proxima(
        &node,
        &[
            "name",
            "set",
            "bars.proxima",
            "A",
            "192.0.2.44",
            "--ttl",
            "120",
        ],
    );
    proxima(
        &node,
        &[
            "name",
            "set",
            "bars.proxima",
            "AAAA",
            "2001:db8::44",
            "--ttl",
            "130",
        ],
    );
    proxima(
        &node,
        &[
            "name",
            "set",
            "bars.proxima",
            "TXT",
            "hello bars",
            "--ttl",
            "140",
        ],
    );
    proxima(
        &node,
        &[
            "name",
            "set",
            "bars.proxima",
            "MX",
            "10 mail.bars.proxima",
            "--ttl",
            "150",
        ],
    );
    proxima(
        &node,
        &[
            "name",
            "set",
            "www.bars.proxima",
            "CNAME",
            "bars.proxima",
            "--ttl",
            "160",
        ],
    );

    let mut out = String::new();
    wait_for(Duration::from_secs(10), || {
        out = dig(addr, &["bars.proxima", "MX"]).unwrap();
        !answers(&out).is_empty()
    })
    .unwrap_or_else(|_| panic!("MX never resolved: {out}"));

    let cases = [
        ("A", "192.0.2.44", 120),
        ("AAAA", "2001:db8::44", 130),
        ("TXT", "\"hello bars\"", 140),
        ("MX", "10 mail.bars.proxima.", 150),
    ];
    for (rtype, data, ttl) in cases {
        let out = dig(addr, &["bars.proxima", rtype]).unwrap();
        assert_eq!(status(&out), "NOERROR", "{out}");
        let f = flags(&out);
        assert!(f.contains(&"qr") && f.contains(&"aa"), "{rtype}: {out}");
        assert!(!f.contains(&"tc"), "{out}");
        assert_eq!(
            answers(&out),
            vec![(
                "bars.proxima.".to_owned(),
                ttl,
                rtype.to_owned(),
                data.to_owned()
            )],
            "{out}"
        );
        // Asked again (now from the fast path): the same answer.
        let again = dig(addr, &["bars.proxima", rtype]).unwrap();
        assert_eq!(answers(&again), answers(&out), "{again}");
    }

    // CNAME inside the zone is followed.
    let out = dig(addr, &["www.bars.proxima", "A"]).unwrap();
    let a = answers(&out);
    assert_eq!(a.len(), 2, "{out}");
    assert_eq!(
        (a[0].1, a[0].2.as_str(), a[0].3.as_str()),
        (160, "CNAME", "bars.proxima.")
    );
    assert_eq!((a[1].2.as_str(), a[1].3.as_str()), ("A", "192.0.2.44"));

    // kdig agrees (with and without EDNS).
    for edns in ["+edns", "+noedns"] {
        let port = addr.port().to_string();
        let k = run_tool(
            "kdig",
            &[
                &format!("@{}", addr.ip()),
                "-p",
                &port,
                "+time=2",
                "+retry=0",
                edns,
                "bars.proxima",
                "A",
            ],
        )
        .unwrap();
        let k = String::from_utf8_lossy(&k.stdout);
        assert!(k.contains("NOERROR") && k.contains("192.0.2.44"), "{k}");
        assert!(k.to_ascii_lowercase().contains("flags: qr aa"), "{k}");
    }
    // The question keeps the client's case (dig sends it as typed), slow path and fast path.
    for _ in 0..2 {
        let out = dig(addr, &["BaRs.PROXIMA", "A"]).unwrap();
        assert!(
            out.contains(";BaRs.PROXIMA."),
            "question case preserved: {out}"
        );
        assert_eq!(answers(&out)[0].3, "192.0.2.44", "{out}");
    }

    // Unregistered: NXDOMAIN with the SOA in the authority section.
    let out = dig(addr, &["nosuch-bars.proxima", "A"]).unwrap();
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(flags(&out).contains(&"aa"), "{out}");
    let auth = section(&out, ";; AUTHORITY SECTION:");
    assert_eq!(auth.len(), 1, "{out}");
    assert_eq!(
        (auth[0].0.as_str(), auth[0].2.as_str()),
        ("proxima.", "SOA")
    );
    // A name below a registered one that has no records is NXDOMAIN too.
    let out = dig(addr, &["nothing.bars.proxima", "A"]).unwrap();
    assert_eq!(status(&out), "NXDOMAIN", "{out}");

    // NODATA: the name exists, the type does not.
    let out = dig(addr, &["bars.proxima", "SRV"]).unwrap();
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(answers(&out).is_empty(), "{out}");
    assert_eq!(section(&out, ";; AUTHORITY SECTION:")[0].2, "SOA", "{out}");

    // The TLD apex: synthesized SOA and NS.
    let out = dig(addr, &["proxima", "SOA"]).unwrap();
    assert_eq!(answers(&out)[0].2, "SOA", "{out}");
    let out = dig(addr, &["proxima", "NS"]).unwrap();
    assert_eq!(answers(&out)[0].2, "NS", "{out}");

    // Minimal ANY (RFC 8482): one RRset.
    let out = dig(addr, &["bars.proxima", "ANY"]).unwrap();
    let any = answers(&out);
    assert!(!any.is_empty(), "{out}");
    assert!(any.iter().all(|r| r.2 == any[0].2), "one RRset: {out}");

    // TCP answers the same.
    let mut out = dig(addr, &["+tcp", "bars.proxima", "A"]).unwrap();
    assert_eq!(answers(&out)[0].3, "192.0.2.44", "{out}");

    // An edit shows up at once, although the old answer was served from the fast path.
    proxima(
        &node,
        &[
            "name",
            "set",
            "bars.proxima",
            "A",
            "192.0.2.45",
            "--ttl",
            "120",
        ],
    );
    wait_for(Duration::from_secs(5), || {
        out = dig(addr, &["bars.proxima", "A"]).unwrap();
        answers(&out).len() == 2
    })
    .unwrap_or_else(|_| panic!("the new A record never appeared: {out}"));
    proxima(&node, &["name", "rm", "bars.proxima", "TXT"]);
    wait_for(Duration::from_secs(5), || {
        out = dig(addr, &["bars.proxima", "TXT"]).unwrap();
        status(&out) == "NOERROR" && answers(&out).is_empty()
    })
    .unwrap_or_else(|_| panic!("the removed TXT is still served: {out}"));
    // Registering a name that was NXDOMAIN makes it exist.
    proxima(&node, &["name", "register", "later.proxima"]);
    proxima(&node, &["name", "set", "later.proxima", "A", "192.0.2.77"]);
    wait_for(Duration::from_secs(5), || {
        out = dig(addr, &["later.proxima", "A"]).unwrap();
        out.contains("192.0.2.77")
    })
    .unwrap_or_else(|_| panic!("a new name never resolved: {out}"));

    // Metrics count authoritative answers by rcode.
    let metrics = proxima::harness::http_get(&format!("{}/metrics", node.admin_url())).unwrap();
    assert!(
        metrics.contains(r#"proxima_dns_responses_total{source="authoritative",rcode="NXDOMAIN"}"#),
        "{metrics}"
    );
    let fast: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("proxima_dns_fast_path_hits_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        fast > 0,
        "repeated questions are served from ready answers: {metrics}"
    );
}

#[test]
fn large_answers_truncate_over_udp_and_succeed_over_tcp() {
    let node = TestNode::start(|_| {}).unwrap();
    let addr = dns_addr(&node);
    proxima(&node, &["name", "register", "big.proxima"]);
    for i in 0..3 {
        let text = format!("{i}{}", "x".repeat(700));
        proxima(&node, &["name", "set", "big.proxima", "TXT", &text]);
    }
    let mut out = String::new();
    wait_for(Duration::from_secs(10), || {
        out = dig(addr, &["+tcp", "big.proxima", "TXT"]).unwrap();
        answers(&out).len() == 3
    })
    .unwrap_or_else(|_| panic!("TXT set never complete over TCP: {out}"));
    // Over UDP with the default EDNS size (1232): truncated, no records.
    let udp = dig(addr, &["+ignore", "big.proxima", "TXT"]).unwrap();
    assert!(flags(&udp).contains(&"tc"), "{udp}");
    assert!(answers(&udp).is_empty(), "{udp}");
    // A client that accepts 4096 bytes gets it all over UDP (EDNS buffer size respected).
    let big = dig(addr, &["+ignore", "+bufsize=4096", "big.proxima", "TXT"]).unwrap();
    assert!(!flags(&big).contains(&"tc"), "{big}");
    assert_eq!(answers(&big).len(), 3, "{big}");
    // Without EDNS the limit is 512 bytes.
    let plain = dig(addr, &["+ignore", "+noedns", "big.proxima", "TXT"]).unwrap();
    assert!(flags(&plain).contains(&"tc"), "{plain}");
    // dig's own fallback: truncated over UDP, retried over TCP, complete.
    let fallback = dig(addr, &["big.proxima", "TXT"]).unwrap();
    assert_eq!(answers(&fallback).len(), 3, "{fallback}");
}

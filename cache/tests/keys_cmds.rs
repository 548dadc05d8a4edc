//! The key-space commands through a whole session: DUMP / RESTORE and their errors, OBJECT,
//! the count range errors of the random-member commands, and HSCAN / SSCAN / ZSCAN cursors.

use std::collections::HashSet;

use cache::session::Session;

/// Sends one command whose arguments may be binary; returns the raw reply.
fn raw(s: &mut Session, args: &[&[u8]]) -> Vec<u8> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    s.feed(&req)
}

/// The payload of a bulk reply.
fn bulk(reply: &[u8]) -> Vec<u8> {
    assert_eq!(reply[0], b'$', "{}", String::from_utf8_lossy(reply));
    let nl = reply.iter().position(|&b| b == b'\n').unwrap();
    let n: usize = std::str::from_utf8(&reply[1..nl - 1])
        .unwrap()
        .parse()
        .unwrap();
    reply[nl + 1..nl + 1 + n].to_vec()
}

#[test]
fn dump_restore_and_options() {
    let mut s = Session::new();
    assert_eq!(s.cmd(&["DUMP", "nokey"]), "$-1\r\n");
    s.cmd(&["RPUSH", "l", "a", "1", "b"]);
    let payload = bulk(&raw(&mut s, &[b"DUMP", b"l"]));
    // RDB version 10 in the footer.
    assert_eq!(&payload[payload.len() - 10..payload.len() - 8], &[10, 0]);
    assert_eq!(
        raw(&mut s, &[b"RESTORE", b"l", b"0", &payload]),
        b"-BUSYKEY Target key name already exists.\r\n"
    );
    assert_eq!(
        raw(&mut s, &[b"RESTORE", b"l2", b"0", &payload]),
        b"+OK\r\n"
    );
    assert_eq!(
        s.cmd(&["LRANGE", "l2", "0", "-1"]),
        "*3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n"
    );
    assert_eq!(s.cmd(&["TTL", "l2"]), ":-1\r\n");
    // A relative TTL, then an absolute one in the past: the key ends up absent.
    assert_eq!(
        raw(&mut s, &[b"RESTORE", b"l2", b"5000", &payload, b"REPLACE"]),
        b"+OK\r\n"
    );
    let pttl: i64 = s.cmd(&["PTTL", "l2"])[1..].trim().parse().unwrap();
    assert!((4000..=5000).contains(&pttl));
    assert_eq!(
        raw(
            &mut s,
            &[b"RESTORE", b"l2", b"1", &payload, b"REPLACE", b"ABSTTL"]
        ),
        b"+OK\r\n"
    );
    assert_eq!(s.cmd(&["EXISTS", "l2"]), ":0\r\n");
    // Option errors, in Redis's order of checks.
    let bad: &[(&[&[u8]], &str)] = &[
        (&[b"x", b"0", b"p", b"BOGUS"], "-ERR syntax error\r\n"),
        (
            &[b"x", b"0", b"p", b"IDLETIME", b"-1"],
            "-ERR Invalid IDLETIME value, must be >= 0\r\n",
        ),
        (
            &[b"x", b"0", b"p", b"FREQ", b"256"],
            "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n",
        ),
        (
            &[b"x", b"0", b"p", b"FREQ", b"1", b"IDLETIME", b"1"],
            "-ERR syntax error\r\n",
        ),
        (
            &[b"x", b"-1", b"p"],
            "-ERR Invalid TTL value, must be >= 0\r\n",
        ),
        (
            &[b"x", b"0", b"payload"],
            "-ERR DUMP payload version or checksum are wrong\r\n",
        ),
    ];
    for (args, want) in bad {
        let mut full: Vec<&[u8]> = vec![b"RESTORE"];
        full.extend_from_slice(args);
        assert_eq!(
            String::from_utf8_lossy(&raw(&mut s, &full)),
            *want,
            "{full:?}"
        );
    }
    // A checksum that matches a body that is not a value.
    let mut body = vec![0xEEu8, 1, 2, 3];
    body.extend_from_slice(&10u16.to_le_bytes());
    let crc = cache::rdb::crc64(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        raw(&mut s, &[b"RESTORE", b"x", b"0", &body]),
        b"-ERR Bad data format\r\n"
    );
    // FREQ lands in the key's counter (the default policy here is LFU).
    assert_eq!(
        raw(&mut s, &[b"RESTORE", b"f", b"0", &payload, b"FREQ", b"100"]),
        b"+OK\r\n"
    );
    assert_eq!(s.cmd(&["OBJECT", "FREQ", "f"]), ":100\r\n");
}

#[test]
fn object_encodings_follow_size() {
    let mut s = Session::new();
    s.cmd(&["SET", "n", "12345"]);
    s.cmd(&["SET", "e", "hello"]);
    s.cmd(&["SET", "r", &"x".repeat(45)]);
    s.cmd(&["SADD", "si", "1", "2", "-3"]);
    s.cmd(&["SADD", "sh", "1", "a"]);
    s.cmd(&["HSET", "h", "f", "v"]);
    s.cmd(&["HSET", "hb", "f", &"v".repeat(65)]);
    s.cmd(&["RPUSH", "l", "a"]);
    for (k, enc) in [
        ("n", "int"),
        ("e", "embstr"),
        ("r", "raw"),
        ("si", "intset"),
        ("sh", "hashtable"),
        ("h", "listpack"),
        ("hb", "hashtable"),
        ("l", "quicklist"),
    ] {
        assert_eq!(
            s.cmd(&["OBJECT", "ENCODING", k]),
            format!("${}\r\n{enc}\r\n", enc.len()),
            "{k}"
        );
    }
    assert_eq!(s.cmd(&["OBJECT", "ENCODING", "missing"]), "$-1\r\n");
    // The access time is kept under the default LFU policy too (Redis refuses IDLETIME there).
    assert_eq!(s.cmd(&["OBJECT", "IDLETIME", "n"]), ":0\r\n");
    s.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    assert_eq!(s.cmd(&["OBJECT", "IDLETIME", "n"]), ":0\r\n");
    assert!(
        s.cmd(&["OBJECT", "FREQ", "n"])
            .starts_with("-ERR An LFU maxmemory policy is not selected")
    );
    assert_eq!(s.cmd(&["OBJECT", "REFCOUNT", "n"]), ":1\r\n");
    let help = s.cmd(&["OBJECT", "HELP"]);
    assert!(help.starts_with("*15\r\n+OBJECT <subcommand>"));
}

#[test]
fn restore_idletime_sets_idle() {
    let mut s = Session::new();
    s.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    s.cmd(&["SET", "k", "v"]);
    let payload = bulk(&raw(&mut s, &[b"DUMP", b"k"]));
    assert_eq!(
        raw(
            &mut s,
            &[
                b"RESTORE",
                b"k",
                b"0",
                &payload,
                b"REPLACE",
                b"IDLETIME",
                b"1000"
            ]
        ),
        b"+OK\r\n"
    );
    let idle: i64 = s.cmd(&["OBJECT", "IDLETIME", "k"])[1..]
        .trim()
        .parse()
        .unwrap();
    assert!((1000..=1010).contains(&idle));
}

#[test]
fn random_member_counts_are_range_checked() {
    let mut s = Session::new();
    s.cmd(&["SADD", "s", "a", "b"]);
    s.cmd(&["HSET", "h", "a", "1"]);
    let long_min = "-9223372036854775808";
    let range = "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n";
    assert_eq!(s.cmd(&["SRANDMEMBER", "s", long_min]), range);
    assert_eq!(s.cmd(&["HRANDFIELD", "h", long_min]), range);
    assert_eq!(
        s.cmd(&["HRANDFIELD", "h", "-9223372036854770000", "WITHVALUES"]),
        "-ERR value is out of range\r\n"
    );
    assert_eq!(
        s.cmd(&["SRANDMEMBER", "s", "-3"]).lines().next(),
        Some("*3")
    );
    assert_eq!(
        s.cmd(&["LMPOP", "1", "l", "LEFT", "COUNT", "a"]),
        "-ERR count should be greater than 0\r\n"
    );
    assert_eq!(
        s.cmd(&["SINTERCARD", "1", "s", "LIMIT", "a"]),
        "-ERR LIMIT can't be negative\r\n"
    );
    assert_eq!(
        s.cmd(&["HINCRBYFLOAT", "h", "a", "inf"]),
        "-ERR value is NaN or Infinity\r\n"
    );
}

/// The members of a `[cursor, [items...]]` scan reply, and the cursor.
fn scan_reply(r: &str) -> (u64, Vec<String>) {
    let lines: Vec<&str> = r.split("\r\n").collect();
    let cursor = lines[2].parse().unwrap();
    let items = lines[4..]
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| c[1].to_owned())
        .collect();
    (cursor, items)
}

#[test]
fn collection_scans_walk_large_values_with_cursors() {
    let mut s = Session::new();
    let n = 1000;
    for i in 0..n {
        s.cmd(&["SADD", "set", &format!("m{i}")]);
        s.cmd(&["HSET", "hash", &format!("m{i}"), "v"]);
        s.cmd(&["ZADD", "zset", &i.to_string(), &format!("m{i}")]);
    }
    for (cmd, key, per) in [
        ("SSCAN", "set", 1),
        ("HSCAN", "hash", 2),
        ("ZSCAN", "zset", 2),
    ] {
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        let mut steps = 0;
        loop {
            let (next, items) = scan_reply(&s.cmd(&[cmd, key, &cursor.to_string(), "COUNT", "50"]));
            for m in items.iter().step_by(per) {
                // Every member exactly once, even though members come and go meanwhile.
                assert!(seen.insert(m.clone()), "{cmd} returned {m} twice");
            }
            // Members come and go mid-iteration: the original ones must still all come back.
            s.cmd(&["SADD", "set", &format!("new{steps}")]);
            s.cmd(&["HSET", "hash", &format!("new{steps}"), "v"]);
            s.cmd(&["ZADD", "zset", "0", &format!("new{steps}")]);
            s.cmd(&["SREM", "set", &format!("new{}", steps / 2)]);
            steps += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert!(steps > 5, "{cmd} should take several steps, took {steps}");
        for i in 0..n {
            assert!(seen.contains(&format!("m{i}")), "{cmd} missed m{i}");
        }
    }
    // Small values come whole with cursor 0, as from a listpack.
    s.cmd(&["HSET", "small", "a", "1", "b", "2"]);
    let (c, items) = scan_reply(&s.cmd(&["HSCAN", "small", "0", "MATCH", "a*"]));
    assert_eq!((c, items), (0, vec!["a".to_owned(), "1".to_owned()]));
    assert!(s.cmd(&["SSCAN", "hash", "0"]).starts_with("-WRONGTYPE"));
}

#[test]
fn smove_to_a_set_holding_the_member_keeps_watch() {
    let mut s = Session::new();
    let mut other = Session::on(s.shared().clone());
    s.cmd(&["SADD", "src", "a", "b"]);
    s.cmd(&["SADD", "dst", "a"]);
    s.cmd(&["WATCH", "dst"]);
    s.cmd(&["MULTI"]);
    s.cmd(&["SADD", "dst", "c"]);
    assert_eq!(other.cmd(&["SMOVE", "src", "dst", "a"]), ":1\r\n");
    assert_eq!(s.cmd(&["EXEC"]), "*1\r\n:1\r\n");
    assert_eq!(other.cmd(&["SMOVE", "nosrc", "dst", "a"]), ":0\r\n");
}

#[test]
fn sort_by_get_limit_store() {
    let mut s = Session::new();
    s.cmd(&["RPUSH", "l", "3", "1", "2", "10"]);
    assert_eq!(
        s.cmd(&["SORT", "l"]),
        "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n"
    );
    assert_eq!(
        s.cmd(&["SORT", "l", "ALPHA", "DESC", "LIMIT", "0", "2"]),
        "*2\r\n$1\r\n3\r\n$1\r\n2\r\n"
    );
    // BY a constant keeps the list's order; GET # and a hash field.
    for (id, w) in [("1", "c"), ("2", "a"), ("3", "b"), ("10", "d")] {
        s.cmd(&["HSET", &format!("obj_{id}"), "name", w]);
        s.cmd(&[
            "SET",
            &format!("w_{id}"),
            &(100 - id.parse::<i32>().unwrap()).to_string(),
        ]);
    }
    assert_eq!(
        s.cmd(&[
            "SORT",
            "l",
            "BY",
            "nosort",
            "GET",
            "#",
            "GET",
            "obj_*->name",
            "LIMIT",
            "1",
            "2"
        ]),
        "*4\r\n$1\r\n1\r\n$1\r\nc\r\n$1\r\n2\r\n$1\r\na\r\n"
    );
    assert_eq!(
        s.cmd(&["SORT", "l", "BY", "w_*", "GET", "obj_*->name"]),
        "*4\r\n$1\r\nd\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nc\r\n"
    );
    assert_eq!(s.cmd(&["SORT", "l", "BY", "w_*", "STORE", "dst"]), ":4\r\n");
    assert_eq!(s.cmd(&["LINDEX", "dst", "0"]), "$2\r\n10\r\n");
    assert_eq!(s.cmd(&["SORT", "missing", "STORE", "dst"]), ":0\r\n");
    assert_eq!(s.cmd(&["EXISTS", "dst"]), ":0\r\n");
    s.cmd(&["SADD", "words", "b", "a"]);
    assert_eq!(
        s.cmd(&["SORT", "words"]),
        "-ERR One or more scores can't be converted into double\r\n"
    );
    assert_eq!(
        s.cmd(&["SORT_RO", "words", "STORE", "x"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        s.cmd(&["SORT", "l", "LIMIT", "a", "1"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    s.cmd(&["SET", "str", "x"]);
    assert!(s.cmd(&["SORT", "str"]).starts_with("-WRONGTYPE"));
}

#[test]
fn small_hashes_keep_insertion_order_through_dump() {
    let mut s = Session::new();
    s.cmd(&["HSET", "h", "z", "1", "a", "2", "m", "3", "b", "4"]);
    s.cmd(&["HDEL", "h", "a"]);
    s.cmd(&["HSET", "h", "z", "9"]);
    let want = "*6\r\n$1\r\nz\r\n$1\r\n9\r\n$1\r\nm\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n4\r\n";
    assert_eq!(s.cmd(&["HGETALL", "h"]), want);
    let payload = bulk(&raw(&mut s, &[b"DUMP", b"h"]));
    assert_eq!(
        raw(&mut s, &[b"RESTORE", b"h2", b"0", &payload]),
        b"+OK\r\n"
    );
    assert_eq!(s.cmd(&["HGETALL", "h2"]), want);
}

/// Strings grow and shrink across the 23-byte inline limit of keys and values (APPEND,
/// SETRANGE, SETBIT, GETRANGE) with the same results on either side.
#[test]
fn strings_cross_the_inline_limit() {
    let mut s = Session::new();
    let k23 = "k".repeat(23);
    let k24 = "k".repeat(24);
    for k in [k23.as_str(), k24.as_str()] {
        assert_eq!(s.cmd(&["SET", k, "0123456789012345678901"]), "+OK\r\n");
        assert_eq!(s.cmd(&["APPEND", k, "2"]), ":23\r\n");
        assert_eq!(s.cmd(&["APPEND", k, "3"]), ":24\r\n");
        assert_eq!(s.cmd(&["GET", k]), "$24\r\n012345678901234567890123\r\n");
        assert_eq!(s.cmd(&["STRLEN", k]), ":24\r\n");
    }
    // SETRANGE past the end pads with zeros, inline and then on the heap.
    assert_eq!(s.cmd(&["SETRANGE", "r", "5", "ab"]), ":7\r\n");
    assert_eq!(s.cmd(&["GET", "r"]), "$7\r\n\0\0\0\0\0ab\r\n");
    assert_eq!(s.cmd(&["SETRANGE", "r", "22", "cd"]), ":24\r\n");
    assert_eq!(s.cmd(&["GETRANGE", "r", "20", "-1"]), "$4\r\n\0\0cd\r\n");
    // SETBIT grows a short string by whole bytes: bit 191 is the last of byte 23.
    assert_eq!(s.cmd(&["SET", "b", "x"]), "+OK\r\n");
    assert_eq!(s.cmd(&["SETBIT", "b", "183", "1"]), ":0\r\n");
    assert_eq!(s.cmd(&["STRLEN", "b"]), ":23\r\n");
    assert_eq!(s.cmd(&["SETBIT", "b", "191", "1"]), ":0\r\n");
    assert_eq!(s.cmd(&["STRLEN", "b"]), ":24\r\n");
    assert_eq!(s.cmd(&["GETBIT", "b", "183"]), ":1\r\n");
    // "x" has 4 bits set, plus the two set above.
    assert_eq!(s.cmd(&["BITCOUNT", "b"]), ":6\r\n");
    // A counter stays a string value.
    assert_eq!(s.cmd(&["SET", "i", "9"]), "+OK\r\n");
    assert_eq!(s.cmd(&["INCR", "i"]), ":10\r\n");
    // A heap value overwritten by a short one, and keys found by their bytes either way.
    assert_eq!(s.cmd(&["SET", &k24, "short"]), "+OK\r\n");
    assert_eq!(s.cmd(&["GET", &k24]), "$5\r\nshort\r\n");
    assert_eq!(s.cmd(&["EXISTS", &k23, &k24, "kk"]), ":2\r\n");
    assert_eq!(s.cmd(&["DEL", &k23]), ":1\r\n");
    assert_eq!(s.cmd(&["GET", &k23]), "$-1\r\n");
}

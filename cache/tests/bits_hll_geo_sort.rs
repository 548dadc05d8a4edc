//! Bitmaps, HyperLogLog, geo, SORT and LCS through the command layer. Expected replies and
//! bytes were taken from a real redis-server 7.0.15 given the same commands.

use cache::session::Session;

/// Runs a command with binary arguments and returns the raw reply bytes.
fn bin(s: &mut Session, args: &[&[u8]]) -> Vec<u8> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    s.feed(&req)
}

/// The payload of a bulk-string reply.
fn bulk(reply: &[u8]) -> Vec<u8> {
    let nl = reply.iter().position(|&c| c == b'\n').expect("header");
    reply[nl + 1..reply.len() - 2].to_vec()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x100000001b3)
    })
}

const SPARSE_A_TO_Z: &str = "48594c4c01000000190000000000000044458c42268040898846e89441758440ec840e8040c484449094446680426280443c843880408f8041ac8047d18043b08042ed8441fc8c43938443188840df80426d8041d080407e8408";

#[test]
fn setbit_getbit_and_bounds() {
    let mut s = Session::new();
    assert_eq!(s.cmd(&["SETBIT", "b", "100", "1"]), ":0\r\n");
    assert_eq!(s.cmd(&["SETBIT", "b", "100", "1"]), ":1\r\n");
    assert_eq!(s.cmd(&["GETBIT", "b", "100"]), ":1\r\n");
    assert_eq!(s.cmd(&["GETBIT", "b", "99999"]), ":0\r\n");
    assert_eq!(s.cmd(&["STRLEN", "b"]), ":13\r\n");
    assert_eq!(s.cmd(&["BITCOUNT", "b"]), ":1\r\n");
    assert_eq!(s.cmd(&["BITPOS", "b", "1"]), ":100\r\n");
    assert_eq!(s.cmd(&["BITCOUNT", "b", "97", "100", "BIT"]), ":1\r\n");
    assert_eq!(s.cmd(&["BITCOUNT", "b", "97", "99", "BIT"]), ":0\r\n");
    // Refused before anything is allocated: the byte would be past proto-max-bulk-len.
    assert_eq!(
        s.cmd(&["SETBIT", "big", "4294967296", "1"]),
        "-ERR bit offset is not an integer or out of range\r\n"
    );
    assert_eq!(s.cmd(&["EXISTS", "big"]), ":0\r\n");
    assert_eq!(
        s.cmd(&["SETBIT", "b", "1", "2"]),
        "-ERR bit is not an integer or out of range\r\n"
    );
    s.cmd(&["RPUSH", "l", "1"]);
    assert_eq!(
        s.cmd(&["BITPOS", "l", "1"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
}

#[test]
fn bitop_and_bitfield() {
    let mut s = Session::new();
    s.cmd(&["SET", "a", "foobar"]);
    s.cmd(&["SET", "b", "abcdef"]);
    assert_eq!(s.cmd(&["BITOP", "AND", "d", "a", "b"]), ":6\r\n");
    assert_eq!(s.cmd(&["GET", "d"]), "$6\r\n`bc`ab\r\n");
    assert_eq!(s.cmd(&["BITOP", "NOT", "d", "missing"]), ":0\r\n");
    assert_eq!(s.cmd(&["EXISTS", "d"]), ":0\r\n");
    // As redis-server 7.0.15 answers the same sequence.
    assert_eq!(
        s.cmd(&[
            "BITFIELD", "bf", "SET", "i8", "0", "-100", "INCRBY", "u4", "#3", "7", "GET", "i8",
            "0", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "10", "OVERFLOW", "SAT", "INCRBY", "i8",
            "0", "-100"
        ]),
        "*5\r\n:0\r\n:7\r\n:-100\r\n$-1\r\n:-128\r\n"
    );
    assert_eq!(bin(&mut s, &[b"GET", b"bf"]), b"$2\r\n\x80\x07\r\n");
    assert_eq!(
        s.cmd(&["BITFIELD_RO", "bf", "SET", "u8", "0", "1"]),
        "-ERR BITFIELD_RO only supports the GET subcommand\r\n"
    );
    assert_eq!(
        s.cmd(&["BITFIELD", "bf", "GET", "u64", "0"]),
        "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n"
    );
}

#[test]
fn hll_bytes_match_redis() {
    let mut s = Session::new();
    let mut args: Vec<&[u8]> = vec![b"PFADD", b"s"];
    let letters: Vec<[u8; 1]> = (b'a'..=b'z').map(|c| [c]).collect();
    args.extend(letters.iter().map(|l| &l[..]));
    assert_eq!(bin(&mut s, &args), b":1\r\n");
    // Byte for byte Redis's sparse encoding, cached cardinality marked stale.
    let mut want = hex(SPARSE_A_TO_Z);
    want[8] = 0;
    want[15] = 0x80;
    assert_eq!(bulk(&bin(&mut s, &[b"GET", b"s"])), want);
    assert_eq!(s.cmd(&["PFCOUNT", "s"]), ":25\r\n");
    assert_eq!(bulk(&bin(&mut s, &[b"GET", b"s"])), hex(SPARSE_A_TO_Z));

    // 3000 elements promote to dense at the default hll-sparse-max-bytes.
    for i in 0..3000 {
        s.cmd(&["PFADD", "d", &format!("e{i}")]);
    }
    assert_eq!(s.cmd(&["PFCOUNT", "d"]), ":2979\r\n");
    let dense = bulk(&bin(&mut s, &[b"GET", b"d"]));
    assert_eq!(dense.len(), 12304);
    assert_eq!(fnv1a(&dense), 0xb581fa7fa1f68d1c);
    assert_eq!(s.cmd(&["PFCOUNT", "s", "d"]), ":3007\r\n");
    s.cmd(&["PFADD", "d2", "x"]);
    assert_eq!(s.cmd(&["PFMERGE", "m", "s", "d2"]), "+OK\r\n");
    assert_eq!(s.cmd(&["PFCOUNT", "m"]), ":25\r\n");
    assert_eq!(s.cmd(&["PFDEBUG", "ENCODING", "m"]), "+sparse\r\n");
    assert_eq!(s.cmd(&["PFDEBUG", "TODENSE", "m"]), ":1\r\n");
    assert_eq!(s.cmd(&["PFDEBUG", "ENCODING", "m"]), "+dense\r\n");
    assert_eq!(s.cmd(&["PFCOUNT", "m"]), ":25\r\n");
    assert_eq!(
        s.cmd(&["PFDEBUG", "DECODE", "m"]),
        "-ERR HLL encoding is not sparse\r\n"
    );
}

#[test]
fn hll_from_redis_and_corruption() {
    let mut s = Session::new();
    // A value written by Redis is read as the same HLL.
    bin(&mut s, &[b"SET", b"r", &hex(SPARSE_A_TO_Z)]);
    assert_eq!(s.cmd(&["PFCOUNT", "r"]), ":25\r\n");
    assert_eq!(s.cmd(&["PFADD", "r", "a"]), ":0\r\n");
    // A sparse value whose opcodes cover too many registers.
    let mut bad = hex(SPARSE_A_TO_Z);
    bad[15] = 0x80;
    bad.extend_from_slice(&[0x7f, 0xff]);
    bin(&mut s, &[b"SET", b"bad", &bad]);
    assert_eq!(
        s.cmd(&["PFCOUNT", "bad"]),
        "-INVALIDOBJ Corrupted HLL object detected\r\n"
    );
    s.cmd(&["SET", "str", "hello world, not an HLL"]);
    assert_eq!(
        s.cmd(&["PFADD", "str", "a"]),
        "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"
    );
}

#[test]
fn geo_like_redis() {
    let mut s = Session::new();
    assert_eq!(
        s.cmd(&[
            "GEOADD",
            "g",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania"
        ]),
        ":2\r\n"
    );
    assert_eq!(
        s.cmd(&["ZSCORE", "g", "Palermo"]),
        "$16\r\n3479099956230698\r\n"
    );
    assert_eq!(
        s.cmd(&["GEODIST", "g", "Palermo", "Catania", "km"]),
        "$8\r\n166.2742\r\n"
    );
    assert_eq!(
        s.cmd(&["GEOHASH", "g", "Palermo", "Catania", "nope"]),
        "*3\r\n$11\r\nsqc8b49rny0\r\n$11\r\nsqdtr74hyu0\r\n$-1\r\n"
    );
    assert_eq!(
        s.cmd(&["GEOPOS", "g", "Palermo"]),
        "*1\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n"
    );
    assert_eq!(
        s.cmd(&[
            "GEOSEARCH",
            "g",
            "FROMLONLAT",
            "15",
            "37",
            "BYBOX",
            "400",
            "400",
            "km",
            "ASC",
            "WITHDIST",
            "WITHHASH"
        ]),
        "*2\r\n*3\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n\
         *3\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n:3479099956230698\r\n"
    );
    assert_eq!(
        s.cmd(&["GEORADIUS", "g", "15", "37", "100", "km", "STORE", "near"]),
        ":1\r\n"
    );
    assert_eq!(
        s.cmd(&["ZRANGE", "near", "0", "-1"]),
        "*1\r\n$7\r\nCatania\r\n"
    );
    assert_eq!(
        s.cmd(&["GEOADD", "g", "200", "0", "x"]),
        "-ERR invalid longitude,latitude pair 200.000000,0.000000\r\n"
    );
}

#[test]
fn sort_like_redis() {
    let mut s = Session::new();
    s.cmd(&["RPUSH", "l", "3", "1", "2"]);
    for (k, v) in [("w_1", "10"), ("w_2", "30"), ("w_3", "20")] {
        s.cmd(&["SET", k, v]);
    }
    for (k, v) in [("h_1", "c"), ("h_2", "a"), ("h_3", "b")] {
        s.cmd(&["HSET", k, "f", v]);
    }
    assert_eq!(
        s.cmd(&["SORT", "l", "BY", "w_*", "GET", "#", "GET", "h_*->f"]),
        "*6\r\n$1\r\n1\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\na\r\n"
    );
    assert_eq!(
        s.cmd(&[
            "SORT", "l", "BY", "h_*->f", "ALPHA", "DESC", "LIMIT", "0", "2"
        ]),
        "*2\r\n$1\r\n1\r\n$1\r\n3\r\n"
    );
    assert_eq!(
        s.cmd(&["SORT", "l", "BY", "nosort", "DESC"]),
        "*3\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n3\r\n"
    );
    assert_eq!(
        s.cmd(&["SORT", "l", "LIMIT", "1", "5", "STORE", "dst"]),
        ":2\r\n"
    );
    assert_eq!(
        s.cmd(&["LRANGE", "dst", "0", "-1"]),
        "*2\r\n$1\r\n2\r\n$1\r\n3\r\n"
    );
    assert_eq!(
        s.cmd(&["SORT_RO", "l", "STORE", "dst"]),
        "-ERR syntax error\r\n"
    );
    s.cmd(&["RPUSH", "bad", "1", "x"]);
    assert_eq!(
        s.cmd(&["SORT", "bad"]),
        "-ERR One or more scores can't be converted into double\r\n"
    );
}

#[test]
fn lcs_like_redis() {
    let mut s = Session::new();
    s.cmd(&["SET", "x", "ohmytext"]);
    s.cmd(&["SET", "y", "mynewtext"]);
    assert_eq!(s.cmd(&["LCS", "x", "y"]), "$6\r\nmytext\r\n");
    assert_eq!(s.cmd(&["LCS", "x", "y", "LEN"]), ":6\r\n");
    assert_eq!(
        s.cmd(&["LCS", "x", "y", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"]),
        "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n"
    );
}

#[test]
fn sort_patterns_need_read_access_to_every_key() {
    // BY and GET name keys the command's own key check never sees: a user limited to some
    // keys could read any other through them, so they need full read access (as in Redis).
    let mut s = Session::new();
    s.cmd(&["SET", "v1", "1"]);
    s.cmd(&["LPUSH", "mylist", "1"]);
    for rules in [
        &["on", "nopass", "+sort", "~mylist"][..],
        &["~v*"],
        &["%W~*"],
    ] {
        let mut args = vec!["ACL", "SETUSER", "limited"];
        args.extend_from_slice(rules);
        assert_eq!(s.cmd(&args), "+OK\r\n");
        let mut u = Session::on(s.shared().clone());
        assert_eq!(u.cmd(&["AUTH", "limited", "x"]), "+OK\r\n");
        assert_eq!(
            u.cmd(&["SORT", "mylist", "BY", "v*"]),
            "-ERR BY option of SORT denied due to insufficient ACL permissions.\r\n"
        );
        assert_eq!(
            u.cmd(&["SORT", "mylist", "GET", "v*"]),
            "-ERR GET option of SORT denied due to insufficient ACL permissions.\r\n"
        );
        // Without patterns the key check alone applies.
        assert_eq!(u.cmd(&["SORT", "mylist"]), "*1\r\n$1\r\n1\r\n");
    }
    assert_eq!(s.cmd(&["ACL", "SETUSER", "limited", "%R~*"]), "+OK\r\n");
    let mut u = Session::on(s.shared().clone());
    assert_eq!(u.cmd(&["AUTH", "limited", "x"]), "+OK\r\n");
    assert_eq!(u.cmd(&["SORT", "mylist", "BY", "v*"]), "*1\r\n$1\r\n1\r\n");
    // The default user reads every key: GET v* reads v1.
    assert_eq!(s.cmd(&["SORT", "mylist", "GET", "v*"]), "*1\r\n$1\r\n1\r\n");
}

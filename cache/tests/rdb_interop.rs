//! DUMP / RESTORE against real redis-server 7.0: a value Redis dumps restores here to the same
//! value, and what this server dumps restores into Redis. Skipped (passes vacuously, with a
//! note) when `redis-server` is not installed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use cache::session::Session;

struct Redis {
    child: Child,
    conn: BufReader<UnixStream>,
    socket: PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A RESP reply, as far as these tests need.
#[derive(Debug, PartialEq)]
enum R {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Arr(Vec<R>),
}

fn read_reply(r: &mut impl BufRead) -> R {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).unwrap();
    let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    match line[0] {
        b'+' => R::Simple(text),
        b'-' => R::Err(text),
        b':' => R::Int(text.parse().unwrap()),
        b'$' => {
            let n: i64 = text.parse().unwrap();
            if n < 0 {
                return R::Bulk(None);
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf).unwrap();
            buf.truncate(n as usize);
            R::Bulk(Some(buf))
        }
        b'*' => {
            let n: i64 = text.parse().unwrap();
            R::Arr((0..n.max(0)).map(|_| read_reply(r)).collect())
        }
        c => panic!("unexpected reply type {c}"),
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Redis {
    fn start() -> Option<Redis> {
        // A Unix socket of our own: no TCP port to collide with other servers on the machine.
        let socket = std::env::temp_dir().join(format!("rdb-interop-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no", "--loglevel", "notice"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // Redis logs "ready to accept connections" once it listens: wait for that line rather
        // than polling.
        let log = BufReader::new(child.stdout.take().expect("piped stdout"));
        let ready = log.lines().map_while(Result::ok).any(|l| {
            l.to_ascii_lowercase()
                .contains("ready to accept connections")
        });
        assert!(ready, "redis-server exited before it was ready");
        let stream = UnixStream::connect(&socket).expect("connect to redis-server");
        Some(Redis {
            child,
            conn: BufReader::new(stream),
            socket,
        })
    }

    fn cmd(&mut self, args: &[&[u8]]) -> R {
        self.conn.get_mut().write_all(&encode(args)).unwrap();
        read_reply(&mut self.conn)
    }
}

fn ours(s: &mut Session, args: &[&[u8]]) -> R {
    let raw = s.feed(&encode(args));
    read_reply(&mut &raw[..])
}

/// Commands that build one key of each type and encoding, small and large.
fn fixtures() -> Vec<Vec<Vec<u8>>> {
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut push =
        |parts: Vec<String>| cmds.push(parts.into_iter().map(String::into_bytes).collect());
    push(vec!["SET".into(), "s_int".into(), "12345".into()]);
    push(vec!["SET".into(), "s_neg".into(), "-70000".into()]);
    push(vec!["SET".into(), "s_str".into(), "hello world".into()]);
    // Long and repetitive: Redis compresses it with LZF.
    push(vec!["SET".into(), "s_lzf".into(), "abcabcabc".repeat(100)]);
    for (key, n) in [("small", 5usize), ("big", 700)] {
        let mut l = vec!["RPUSH".to_owned(), format!("l_{key}")];
        let mut s = vec!["SADD".to_owned(), format!("si_{key}")];
        let mut sh = vec!["SADD".to_owned(), format!("ss_{key}")];
        let mut h = vec!["HSET".to_owned(), format!("h_{key}")];
        let mut z = vec!["ZADD".to_owned(), format!("z_{key}")];
        for i in 0..n {
            l.push(match i % 4 {
                0 => i.to_string(),
                1 => format!("-{}", i * 100_003),
                2 => "v".repeat(i % 90),
                _ => format!("{}", (i as i64) << 40),
            });
            s.push((i as i64 * 1_000_000_007 - 3).to_string());
            sh.push(format!("m{i}"));
            h.push(format!("f{i}"));
            h.push(if i % 2 == 0 {
                i.to_string()
            } else {
                "x".repeat(i % 100)
            });
            z.push(format!("{}", i as f64 * 1.25 - 3.0));
            z.push(format!("m{i}"));
        }
        for c in [l, s, sh, h, z] {
            push(c);
        }
    }
    cmds
}

/// A canonical, order-independent view of a key's value, read with ordinary commands.
fn snapshot(mut run: impl FnMut(&[&[u8]]) -> R, key: &[u8]) -> Vec<Vec<u8>> {
    let ty = match run(&[b"TYPE", key]) {
        R::Simple(t) => t,
        r => panic!("{r:?}"),
    };
    let reply = match ty.as_str() {
        "string" => run(&[b"GET", key]),
        "list" => run(&[b"LRANGE", key, b"0", b"-1"]),
        "set" => run(&[b"SMEMBERS", key]),
        "hash" => run(&[b"HGETALL", key]),
        "zset" => run(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]),
        t => panic!("type {t}"),
    };
    let mut items = match reply {
        R::Bulk(Some(b)) => vec![b],
        R::Arr(a) => a
            .into_iter()
            .map(|r| match r {
                R::Bulk(Some(b)) => b,
                r => panic!("{r:?}"),
            })
            .collect(),
        r => panic!("{r:?}"),
    };
    match ty.as_str() {
        "set" => items.sort(),
        "hash" => {
            let mut pairs: Vec<Vec<u8>> = items
                .chunks(2)
                .map(|p| [p[0].clone(), b"=".to_vec(), p[1].clone()].concat())
                .collect();
            pairs.sort();
            items = pairs;
        }
        _ => {}
    }
    items.insert(0, ty.into_bytes());
    items
}

#[test]
fn dump_restore_both_ways_with_redis_7() {
    let Some(mut redis) = Redis::start() else {
        eprintln!("redis-server not installed: interop test skipped");
        return;
    };
    let mut s = Session::new();
    for c in fixtures() {
        let args: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
        assert!(!matches!(redis.cmd(&args), R::Err(_)));
        assert!(!matches!(ours(&mut s, &args), R::Err(_)));
    }
    for c in fixtures() {
        let key = c[1].as_slice();
        // Redis -> us.
        let R::Bulk(Some(payload)) = redis.cmd(&[b"DUMP", key]) else {
            panic!("redis DUMP {key:?}");
        };
        assert_eq!(
            ours(&mut s, &[b"RESTORE", b"copy", b"0", &payload, b"REPLACE"]),
            R::Simple("OK".into()),
            "restoring Redis's dump of {}",
            String::from_utf8_lossy(key)
        );
        let want = snapshot(|a| redis.cmd(a), key);
        assert_eq!(snapshot(|a| ours(&mut s, a), b"copy"), want);
        // Us -> Redis.
        let R::Bulk(Some(payload)) = ours(&mut s, &[b"DUMP", key]) else {
            panic!("our DUMP {key:?}");
        };
        assert_eq!(
            redis.cmd(&[b"RESTORE", b"copy", b"0", &payload, b"REPLACE"]),
            R::Simple("OK".into()),
            "Redis restoring our dump of {}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(snapshot(|a| redis.cmd(a), b"copy"), want);
    }
}

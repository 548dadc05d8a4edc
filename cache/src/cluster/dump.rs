//! A key's whole state as RESP commands that recreate it (`SET ... PXAT`, `DEL` + `RPUSH` ...).
//!
//! Replication ships the state a write left behind rather than the write itself: applying a
//! state is idempotent and deterministic (`SPOP`, `INCRBYFLOAT`, relative expiries and
//! evictions cannot make a replica diverge), the same encoding moves ranges to a new owner, and
//! the replica applies it through the ordinary, fuzzed request parser and command handlers. The
//! cost is that a write to a large collection ships the whole collection.
//!
//! Each state travels with the version of the write that left it ([`dump_state`]), so a node
//! given copies of a key by several peers (a heal) keeps the newest.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use super::group_of;
use super::proto::command;
use super::view::GROUPS;
use crate::db::Db;
use crate::slot::key_slot;
use crate::value::Value;

/// Elements per command, so that one command never approaches the frame bound on its own.
const CHUNK: usize = 512;
/// Bytes of key states per record when whole ranges are sent.
const CHUNK_BYTES: usize = 256 * 1024;

/// The states of every key in ranges `groups` whose version is at least `since`, deleted keys
/// (as `DEL` states of their tombstones' versions) included, in chunks of about `CHUNK_BYTES`
/// (with how many keys each holds).
pub fn dump_ranges(db: &mut Db, groups: &[u16], now: u64, since: u64) -> Vec<(usize, Bytes)> {
    dump_ranges_apart(db, groups, now, since)
        .into_values()
        .flatten()
        .collect()
}

/// As [`dump_ranges`], in one walk of the keyspace, with each range's chunks apart (ranges
/// without such keys are left out).
pub fn dump_ranges_apart(
    db: &mut Db,
    groups: &[u16],
    now: u64,
    since: u64,
) -> BTreeMap<u16, Vec<(usize, Bytes)>> {
    dump_selected(db, groups, now, since, |_| true)
}

/// The states of the keys of ranges `groups` under the leaves `leaves` of their hash trees
/// ([`super::aae`]), deleted keys included, in chunks.
pub fn dump_leaves(
    db: &mut Db,
    groups: &[u16],
    leaves: &super::aae::LeafSet,
    now: u64,
) -> Vec<(usize, Bytes)> {
    dump_selected(db, groups, now, 0, |k| {
        let leaf = super::aae::leaf_of(k) as u8;
        leaves.contains(&(group_of(key_slot(k)), leaf))
    })
    .into_values()
    .flatten()
    .collect()
}

/// The states of the keys of ranges `groups` that `keep` selects, with versions of at least
/// `since`, per range.
fn dump_selected(
    db: &mut Db,
    groups: &[u16],
    now: u64,
    since: u64,
    keep: impl Fn(&[u8]) -> bool,
) -> BTreeMap<u16, Vec<(usize, Bytes)>> {
    let mut want = [false; GROUPS];
    for g in groups {
        want[usize::from(*g)] = true;
    }
    // Live keys, then deleted ones with their tombstones' versions: a copy that missed a
    // delete must meet it, or the key would come back from that copy at the next merge.
    let mut keys: Vec<(Bytes, u64)> = Vec::new();
    db.for_each_key(now, |k| {
        if want[usize::from(group_of(key_slot(k)))] && keep(k) {
            keys.push((Bytes::copy_from_slice(k), 0));
        }
    });
    db.for_each_tombstone(now, |k, ver| {
        if ver >= since && want[usize::from(group_of(key_slot(k)))] && keep(k) {
            keys.push((Bytes::copy_from_slice(k), ver));
        }
    });
    /// One range's chunks so far and the one being filled.
    #[derive(Default)]
    struct Chunks {
        done: Vec<(usize, Bytes)>,
        buf: BytesMut,
        n: usize,
    }
    let mut per: BTreeMap<u16, Chunks> = BTreeMap::new();
    for (k, buried) in &keys {
        let ver = if *buried != 0 {
            *buried
        } else {
            db.version(k, now)
        };
        if ver < since {
            continue;
        }
        let c = per.entry(group_of(key_slot(k))).or_default();
        dump_state(db, k, ver, now, &mut c.buf);
        c.n += 1;
        if c.buf.len() >= CHUNK_BYTES {
            c.done
                .push((std::mem::take(&mut c.n), c.buf.split().freeze()));
        }
    }
    per.into_iter()
        .map(|(g, mut c)| {
            if !c.buf.is_empty() {
                c.done.push((c.n, c.buf.freeze()));
            }
            (g, c.done)
        })
        .collect()
}

/// Appends `key`'s current state in `db` as a [`super::proto::KeyState`] of version `ver`.
pub fn dump_state(db: &Db, key: &[u8], ver: u64, now: u64, out: &mut BytesMut) {
    super::proto::encode_key_state(out, key, ver, |o| dump_key(db, key, now, o));
}

/// Appends commands that set `key` to its current state in `db` (a `DEL` if it is absent).
pub fn dump_key(db: &Db, key: &[u8], now: u64, out: &mut BytesMut) {
    let Some(e) = db.peek_ref(key, now) else {
        command(out, &[b"DEL", key]);
        return;
    };
    let px = e.expire_at.to_string();
    match &e.value {
        Value::Str(v) => {
            if e.expire_at > 0 {
                command(out, &[b"SET", key, v, b"PXAT", px.as_bytes()]);
            } else {
                command(out, &[b"SET", key, v]);
            }
            return;
        }
        Value::Hash(h) => {
            command(out, &[b"DEL", key]);
            let items: Vec<(&[u8], &[u8])> = h.map.iter().map(|(f, v)| (&**f, &**v)).collect();
            for chunk in items.chunks(CHUNK) {
                let mut args: Vec<&[u8]> = vec![b"HSET", key];
                for (f, v) in chunk {
                    args.push(f);
                    args.push(v);
                }
                command(out, &args);
            }
        }
        Value::List(l) => {
            command(out, &[b"DEL", key]);
            let items: Vec<&[u8]> = l.items.iter().map(|v| &**v).collect();
            for chunk in items.chunks(CHUNK) {
                let mut args: Vec<&[u8]> = vec![b"RPUSH", key];
                args.extend_from_slice(chunk);
                command(out, &args);
            }
        }
        Value::Set(s) => {
            command(out, &[b"DEL", key]);
            let items: Vec<&[u8]> = s.set.iter().map(|v| &**v).collect();
            for chunk in items.chunks(CHUNK) {
                let mut args: Vec<&[u8]> = vec![b"SADD", key];
                args.extend_from_slice(chunk);
                command(out, &args);
            }
        }
        Value::Stream(s) => {
            command(out, &[b"DEL", key]);
            s.replay_commands(key, |args| command(out, args));
        }
        Value::ZSet(z) => {
            command(out, &[b"DEL", key]);
            let items: Vec<(String, &[u8])> =
                z.dict.iter().map(|(m, s)| (score_text(*s), &**m)).collect();
            for chunk in items.chunks(CHUNK) {
                let mut args: Vec<&[u8]> = vec![b"ZADD", key];
                for (s, m) in chunk {
                    args.push(s.as_bytes());
                    args.push(m);
                }
                command(out, &args);
            }
        }
    }
    if e.expire_at > 0 {
        command(out, &[b"PEXPIREAT", key, px.as_bytes()]);
    }
}

/// The commands of a key state a peer sent, parsed, if they are exactly what [`dump_key`]
/// emits for `key` and nothing else: `SET key value [PXAT ms]` alone; or `DEL key`, then
/// commands of one collection kind (`RPUSH`, `HSET`, `SADD` or `ZADD`) each naming `key`,
/// then at most one `PEXPIREAT key ms`. Replication carries key states, never commands: a
/// state that would run anything else (`FLUSHALL`, a write to another key) is refused whole,
/// before any of it runs.
pub fn state_commands<'a>(
    key: &[u8],
    ops: &'a [u8],
    limits: crate::resp::Limits,
) -> Result<Vec<Vec<&'a [u8]>>, &'static str> {
    use crate::resp::{Parsed, parse};
    let mut cmds: Vec<Vec<&'a [u8]>> = Vec::new();
    let mut argv: Vec<&'a [u8]> = Vec::with_capacity(8);
    let mut pos = 0;
    while pos < ops.len() {
        match parse(&ops[pos..], &mut argv, limits) {
            Ok(Parsed::Multibulk { consumed }) if !argv.is_empty() => {
                pos += consumed;
                cmds.push(std::mem::take(&mut argv));
            }
            _ => return Err("not a sequence of RESP commands"),
        }
    }
    let is = |c: &[&[u8]], name: &str| c[0].eq_ignore_ascii_case(name.as_bytes());
    if cmds
        .iter()
        .any(|c| c.get(crate::stream::replay_key_index(c)).copied() != Some(key))
    {
        return Err("a command that does not name the state's key");
    }
    let Some((first, rest)) = cmds.split_first() else {
        return Err("no commands");
    };
    if is(first, "SET") {
        let pxat = first.len() == 5 && first[3].eq_ignore_ascii_case(b"PXAT");
        if (first.len() != 3 && !pxat) || !rest.is_empty() {
            return Err("SET is not SET key value [PXAT ms] alone");
        }
        return Ok(cmds);
    }
    if !is(first, "DEL") || first.len() != 2 {
        return Err("the first command is neither SET nor DEL key");
    }
    let body = match rest.split_last() {
        Some((last, body)) if is(last, "PEXPIREAT") => {
            if last.len() != 3 || body.is_empty() {
                return Err("a PEXPIREAT that is not PEXPIREAT key ms after a value");
            }
            body
        }
        _ => rest,
    };
    if let Some(kind) = body.first() {
        if is(kind, "XADD") {
            if !body.iter().all(|c| crate::stream::is_replay_command(c)) {
                return Err("a stream state with a command it does not emit");
            }
            return Ok(cmds);
        }
        let (name, pairs) = if is(kind, "RPUSH") {
            ("RPUSH", false)
        } else if is(kind, "SADD") {
            ("SADD", false)
        } else if is(kind, "HSET") {
            ("HSET", true)
        } else if is(kind, "ZADD") {
            ("ZADD", true)
        } else {
            return Err("a command that does not build a value");
        };
        let ok = |c: &Vec<&[u8]>| {
            is(c, name)
                && c.len() >= if pairs { 4 } else { 3 }
                && (!pairs || c.len().is_multiple_of(2))
        };
        if !body.iter().all(ok) {
            return Err("commands of several kinds, or with the wrong arity");
        }
    }
    Ok(cmds)
}

/// The expiry (Unix ms) a state's commands, checked by [`state_commands`], give its key: the
/// `PXAT` of its `SET`, or its closing `PEXPIREAT`.
pub fn state_expiry(cmds: &[Vec<&[u8]>]) -> Option<u64> {
    let ms = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    let first = cmds.first()?;
    if first.len() == 5 && first[0].eq_ignore_ascii_case(b"SET") {
        return ms(first[4]);
    }
    let last = cmds.last()?;
    if last.len() == 3 && last[0].eq_ignore_ascii_case(b"PEXPIREAT") {
        return ms(last[2]);
    }
    None
}

/// A score as text that parses back to the same `f64`.
fn score_text(s: f64) -> String {
    if s == f64::INFINITY {
        "inf".into()
    } else if s == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::state_commands;
    use crate::cluster::proto::command;
    use crate::resp::Limits;
    use crate::session::Session;

    fn ops(cmds: &[&[&str]]) -> Vec<u8> {
        let mut b = BytesMut::new();
        for c in cmds {
            let v: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
            command(&mut b, &v);
        }
        b.to_vec()
    }

    #[test]
    fn only_the_commands_a_dump_emits_for_its_own_key_pass() {
        let ok: &[&[&[&str]]] = &[
            &[&["DEL", "k"]],
            &[&["SET", "k", "v"]],
            &[&["set", "k", "v", "pxat", "123"]],
            &[
                &["DEL", "k"],
                &["RPUSH", "k", "a", "b"],
                &["RPUSH", "k", "c"],
            ],
            &[
                &["DEL", "k"],
                &["HSET", "k", "f", "v"],
                &["PEXPIREAT", "k", "9"],
            ],
            &[&["DEL", "k"], &["SADD", "k", "m"]],
            &[&["DEL", "k"], &["ZADD", "k", "1", "m", "2", "n"]],
            &[
                &["DEL", "k"],
                &["XADD", "k", "1-1", "f", "v"],
                &["XGROUP", "CREATE", "k", "g", "0", "ENTRIESREAD", "1"],
                &["XGROUP", "CREATECONSUMER", "k", "g", "c"],
                &["XSETID", "k", "1-1"],
            ],
        ];
        for o in ok {
            let b = ops(o);
            assert!(state_commands(b"k", &b, Limits::default()).is_ok(), "{o:?}");
        }
        let bad: &[&[&[&str]]] = &[
            &[],
            &[&["FLUSHALL"]],
            &[&["DEL", "k"], &["FLUSHALL"]],
            &[&["SET", "other", "v"]],
            &[&["DEL", "k"], &["RPUSH", "other", "a"]],
            &[&["DEL", "k", "other"]],
            &[&["SET", "k", "v"], &["DEL", "k"]],
            &[&["SET", "k", "v", "GET"]],
            &[&["SET", "k", "v", "EX", "10"]],
            &[&["DEL", "k"], &["RPUSH", "k", "a"], &["SADD", "k", "m"]],
            &[&["DEL", "k"], &["HSET", "k", "f"]],
            &[&["DEL", "k"], &["ZADD", "k", "1"]],
            &[&["DEL", "k"], &["PEXPIREAT", "k", "9"]],
            &[
                &["DEL", "k"],
                &["RPUSH", "k", "a"],
                &["PEXPIREAT", "k", "9", "x"],
            ],
            &[
                &["DEL", "k"],
                &["PEXPIREAT", "k", "9"],
                &["RPUSH", "k", "a"],
            ],
            &[&["DEL", "k"], &["EVAL", "k", "0"]],
            // A stream state: only the replay commands, each naming its own key.
            &[&["DEL", "k"], &["XADD", "other", "1-1", "f", "v"]],
            &[
                &["DEL", "k"],
                &["XADD", "k", "1-1", "f", "v"],
                &["XGROUP", "CREATE", "other", "g", "0", "ENTRIESREAD", "1"],
            ],
            &[
                &["DEL", "k"],
                &["XADD", "k", "1-1", "f", "v"],
                &["XGROUP", "DESTROY", "k", "g"],
            ],
            &[
                &["DEL", "k"],
                &["XADD", "k", "1-1", "f", "v"],
                &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "k", ">"],
            ],
            &[
                &["DEL", "k"],
                &["XADD", "k", "1-1", "f", "v"],
                &["SET", "k", "v"],
            ],
            &[&["CONFIG", "k", "requirepass", "x"]],
        ];
        for o in bad {
            let b = ops(o);
            assert!(
                state_commands(b"k", &b, Limits::default()).is_err(),
                "{o:?}"
            );
        }
        // Inline commands and trailing garbage are refused too.
        assert!(state_commands(b"k", b"DEL k\r\n", Limits::default()).is_err());
        let mut b = ops(&[&["DEL", "k"]]);
        b.extend_from_slice(b"*1\r\n");
        assert!(state_commands(b"k", &b, Limits::default()).is_err());
    }

    #[test]
    fn every_dump_passes_the_state_check() {
        let mut a = Session::new();
        a.cmd(&["SET", "s", "v", "PX", "100000"]);
        a.cmd(&["SET", "p", "v"]);
        a.cmd(&["HSET", "h", "f", "1", "g", "2"]);
        a.cmd(&["RPUSH", "l", "a", "b", "c"]);
        a.cmd(&["SADD", "st", "x", "y"]);
        a.cmd(&["ZADD", "z", "1.5", "m", "-inf", "n", "0.1", "o"]);
        a.cmd(&["PEXPIRE", "z", "100000"]);
        let many: Vec<String> = (0..1500).map(|i| i.to_string()).collect();
        let mut args = vec!["RPUSH", "big"];
        args.extend(many.iter().map(String::as_str));
        a.cmd(&args);
        let now = crate::session::now_ms();
        for k in ["s", "p", "h", "l", "st", "z", "big", "missing"] {
            let mut out = BytesMut::new();
            super::dump_key(&a.shared().db.lock(), k.as_bytes(), now, &mut out);
            assert!(
                state_commands(k.as_bytes(), &out, Limits::default()).is_ok(),
                "{k}"
            );
        }
    }

    #[test]
    fn a_dump_recreates_every_type() {
        let mut a = Session::new();
        a.cmd(&["SET", "s", "v", "PX", "100000"]);
        a.cmd(&["HSET", "h", "f", "1", "g", "2"]);
        a.cmd(&["RPUSH", "l", "a", "b", "c"]);
        a.cmd(&["SADD", "st", "x", "y"]);
        a.cmd(&["ZADD", "z", "1.5", "m", "-inf", "n", "0.1", "o"]);
        let mut b = Session::new();
        let now = crate::session::now_ms();
        for k in ["s", "h", "l", "st", "z", "missing"] {
            let mut out = bytes::BytesMut::new();
            super::dump_key(&a.shared().db.lock(), k.as_bytes(), now, &mut out);
            b.feed(&out);
        }
        for q in [
            vec!["GET", "s"],
            vec!["HGETALL", "h"],
            vec!["LRANGE", "l", "0", "-1"],
            vec!["SMEMBERS", "st"],
            vec!["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            vec!["EXISTS", "missing"],
        ] {
            let (x, y) = (a.cmd(&q), b.cmd(&q));
            if q[0] == "HGETALL" || q[0] == "SMEMBERS" {
                assert_eq!(x.len(), y.len(), "{q:?}");
            } else {
                assert_eq!(x, y, "{q:?}");
            }
        }
        let ttl = b.cmd(&["PTTL", "s"]);
        assert!(ttl.starts_with(":9") || ttl.starts_with(":100000"), "{ttl}");
    }
}

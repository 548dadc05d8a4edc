//! Keyspace notifications (`notify-keyspace-events`) and the change log they come from.
//!
//! The keyspace records what a command changed ([`ChangeLog`]: keys written, keys deleted,
//! keys created, keys expired or evicted) while recording is on (notifications configured or
//! a client tracking keys). After each command, [`dispatch`] turns the log into Redis's
//! events (`__keyspace@0__:<key>` / `__keyevent@0__:<event>`), named as Redis names them for
//! the command that ran, and hands the changed keys to client-side caching
//! ([`crate::tracking`]). On a mesh the publication is local, as in Redis Cluster.

use crate::cmd::table::Command;
use crate::db::Db;
use crate::shared::Shared;
use crate::value::Bytes;

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 12;
pub const NEW: u32 = 1 << 13;
/// The `A` alias (every class but key-miss and new).
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Parses a `notify-keyspace-events` value; `None` for an unknown class character.
pub fn parse_flags(s: &[u8]) -> Option<u32> {
    let mut f = 0;
    for c in s {
        f |= match c {
            b'A' => ALL,
            b'g' => GENERIC,
            b'$' => STRING,
            b'l' => LIST,
            b's' => SET,
            b'h' => HASH,
            b'z' => ZSET,
            b'x' => EXPIRED,
            b'e' => EVICTED,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b't' => STREAM,
            b'm' => KEY_MISS,
            b'd' => MODULE,
            b'n' => NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// Formats flags as `CONFIG GET` shows them (Redis's `keyspaceEventsFlagsToString`).
pub fn format_flags(f: u32) -> String {
    let mut s = String::new();
    if f & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if f & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// One change the keyspace saw during a command.
#[derive(Debug, Clone)]
pub enum Change {
    /// A key was written (created, replaced, modified, its TTL changed).
    Written(Bytes),
    /// A key was deleted by the command (explicitly or because it became empty).
    Deleted(Bytes),
    /// A key was created (the `new` event).
    Created(Bytes),
    /// A key expired (lazily or actively).
    Expired(Bytes),
    /// A key was evicted under `maxmemory`.
    Evicted(Bytes),
    /// An explicit event a command raised itself (stream consumer groups).
    Event(u32, &'static str, Bytes),
    /// Every key was deleted (FLUSHALL/FLUSHDB).
    Flushed,
}

/// What the keyspace records for notifications and tracking.
#[derive(Debug, Default)]
pub struct ChangeLog {
    /// Whether to record (notifications configured or keys tracked): off, a write costs
    /// nothing more.
    pub enabled: bool,
    /// The configured classes (`notify-keyspace-events`).
    pub flags: u32,
    /// Changes of the running command, in order.
    pub changes: Vec<Change>,
    /// BCAST clients have keys to be told about at the end of the command.
    pub bcast_pending: bool,
}

impl ChangeLog {
    /// Records a change if recording is on.
    #[inline]
    pub fn record(&mut self, change: impl FnOnce() -> Change) {
        if self.enabled {
            self.changes.push(change());
        }
    }

    /// Raises an explicit event (a command whose effect the keyspace cannot see).
    #[inline]
    pub fn event(&mut self, class: u32, name: &'static str, key: &[u8]) {
        if self.enabled {
            self.changes.push(Change::Event(class, name, key.into()));
        }
    }
}

/// The event class of a command family (`COMMAND DOCS` group).
fn class_of(cmd: &Command) -> u32 {
    match cmd.group {
        "string" | "bitmap" | "hyperloglog" => STRING,
        "list" => LIST,
        "set" => SET,
        "sorted_set" | "sorted-set" | "geo" => ZSET,
        "hash" => HASH,
        "stream" => STREAM,
        _ => GENERIC,
    }
}

fn has_arg(args: &[&[u8]], from: usize, words: &[&str]) -> bool {
    args.iter()
        .skip(from)
        .any(|a| words.iter().any(|w| a.eq_ignore_ascii_case(w.as_bytes())))
}

/// The events Redis raises when `cmd` writes `key` (argument `pos`, or 0 when unknown).
fn write_events(cmd: &Command, args: &[&[u8]], key: &[u8]) -> Vec<(u32, &'static str)> {
    let is = |i: usize| args.get(i).is_some_and(|a| *a == key);
    let pop_side = |i: usize| {
        if args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(b"left")) {
            "lpop"
        } else {
            "rpop"
        }
    };
    let push_side = |i: usize| {
        if args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(b"left")) {
            "lpush"
        } else {
            "rpush"
        }
    };
    let one = |c: u32, e: &'static str| vec![(c, e)];
    match cmd.name {
        "set" => {
            let mut v = one(STRING, "set");
            if has_arg(args, 3, &["EX", "PX", "EXAT", "PXAT"]) {
                v.push((GENERIC, "expire"));
            }
            v
        }
        "setex" | "psetex" => vec![(STRING, "set"), (GENERIC, "expire")],
        "setnx" | "getset" | "mset" | "msetnx" => one(STRING, "set"),
        "incr" | "incrby" => one(STRING, "incrby"),
        "decr" | "decrby" => one(STRING, "decrby"),
        "getex" => {
            if has_arg(args, 2, &["PERSIST"]) {
                one(GENERIC, "persist")
            } else {
                one(GENERIC, "expire")
            }
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => one(GENERIC, "expire"),
        "hmset" | "hsetnx" => one(HASH, "hset"),
        "lpushx" => one(LIST, "lpush"),
        "rpushx" => one(LIST, "rpush"),
        "blpop" => one(LIST, "lpop"),
        "brpop" => one(LIST, "rpop"),
        "rpoplpush" | "brpoplpush" => {
            if is(1) {
                one(LIST, "rpop")
            } else {
                one(LIST, "lpush")
            }
        }
        "lmove" | "blmove" => {
            if is(1) {
                one(LIST, pop_side(3))
            } else {
                one(LIST, push_side(4))
            }
        }
        "lmpop" | "blmpop" => {
            let at = if cmd.name == "lmpop" { 1 } else { 2 };
            let n = args
                .get(at)
                .and_then(|a| crate::resp::parse_i64(a))
                .unwrap_or(0)
                .max(0) as usize;
            one(LIST, pop_side(at + 1 + n))
        }
        "smove" => {
            if is(1) {
                one(SET, "srem")
            } else {
                one(SET, "sadd")
            }
        }
        "zincrby" => one(ZSET, "zincr"),
        "zadd" if has_arg(args, 2, &["INCR"]) => one(ZSET, "zincr"),
        "zremrangebyscore" => one(ZSET, "zrembyscore"),
        "zremrangebyrank" => one(ZSET, "zrembyrank"),
        "zremrangebylex" => one(ZSET, "zrembylex"),
        "bzpopmin" => one(ZSET, "zpopmin"),
        "bzpopmax" => one(ZSET, "zpopmax"),
        "zmpop" | "bzmpop" => {
            if has_arg(args, 2, &["MAX"]) {
                one(ZSET, "zpopmax")
            } else {
                one(ZSET, "zpopmin")
            }
        }
        "rename" | "renamenx" => {
            if is(1) {
                one(GENERIC, "rename_from")
            } else {
                one(GENERIC, "rename_to")
            }
        }
        "copy" => one(GENERIC, "copy_to"),
        "sort" => one(LIST, "sortstore"),
        "geoadd" => one(ZSET, "geoadd"),
        "georadius" | "georadiusbymember" | "geosearchstore" => one(ZSET, "georadiusstore"),
        "setbit" | "bitfield" => one(STRING, "setbit"),
        "bitop" => one(STRING, "set"),
        "pfadd" | "pfmerge" | "pfcount" => one(STRING, "pfadd"),
        "restore" => one(GENERIC, "restore"),
        "xreadgroup" | "xclaim" | "xautoclaim" | "xgroup" | "xack" => Vec::new(),
        "del" | "unlink" | "getdel" => Vec::new(),
        name => match name.split_once('|') {
            Some(_) => Vec::new(),
            None => one(class_of(cmd), name),
        },
    }
}

/// Whether a command's reply says it changed nothing (a count of 0, LINSERT's -1).
fn unchanged(cmd: &Command, reply: &[u8]) -> bool {
    let zero = reply == b":0\r\n";
    match cmd.name {
        "srem" | "sadd" | "zrem" | "zremrangebyscore" | "zremrangebyrank" | "zremrangebylex"
        | "hdel" | "lrem" | "hsetnx" | "setnx" | "msetnx" | "renamenx" | "smove" | "xdel"
        | "expire" | "pexpire" | "expireat" | "pexpireat" | "persist" | "pfadd" => zero,
        "linsert" => zero || reply == b":-1\r\n",
        "lpushx" | "rpushx" => zero,
        _ => false,
    }
}

/// Publishes one event on both channels as the flags allow.
fn publish(shared: &Shared, flags: u32, class: u32, event: &str, key: &[u8]) {
    if flags & class == 0 {
        return;
    }
    let ps = shared.pubsub.lock();
    if flags & KEYSPACE != 0 {
        let mut ch = b"__keyspace@0__:".to_vec();
        ch.extend_from_slice(key);
        ps.publish(&ch, event.as_bytes());
    }
    if flags & KEYEVENT != 0 {
        let mut ch = b"__keyevent@0__:".to_vec();
        ch.extend_from_slice(event.as_bytes());
        ps.publish(&ch, key);
    }
}

/// A command that ran: its table entry, its arguments and its reply.
pub type Ran<'a> = (&'a Command, &'a [&'a [u8]], &'a [u8]);

/// Turns the changes recorded while `cmd` ran (or, with `None`, in background expiry) into
/// notifications and invalidations. `client` is who ran it (0: the server).
pub fn dispatch(shared: &Shared, db: &mut Db, cmd: Option<Ran<'_>>, client: u64) {
    if db.log.changes.is_empty() {
        return;
    }
    let mut changes = std::mem::take(&mut db.log.changes);
    // A command that answers that it changed nothing raises no event, even if it touched
    // its key (SREM of a missing member).
    if let Some((c, _, reply)) = cmd
        && unchanged(c, reply)
    {
        changes.retain(|ch| !matches!(ch, Change::Written(_)));
    }
    let cmd = cmd.map(|(c, a, _)| (c, a));
    let flags = db.log.flags;
    let mut invalid: Vec<Bytes> = Vec::new();
    let mut flushed = false;
    // A key written several times by one command raises its events once, at its first write.
    let mut written: Vec<&[u8]> = Vec::new();
    for ch in &changes {
        match ch {
            Change::Written(k) => {
                invalid.push(k.clone());
                if written.contains(&&k[..]) {
                    continue;
                }
                written.push(k);
                if flags != 0
                    && let Some((c, args)) = cmd
                {
                    for (class, ev) in write_events(c, args, k) {
                        publish(shared, flags, class, ev, k);
                    }
                }
            }
            Change::Deleted(k) => {
                invalid.push(k.clone());
                if flags != 0
                    && let Some((c, args)) = cmd
                {
                    // A collection emptied by the command had its event at its write; a
                    // key the command deleted outright gets the command's event first,
                    // unless deleting is all the command does (DEL, an EXPIRE in the past).
                    if !written.contains(&&k[..]) {
                        written.push(k);
                        if !matches!(
                            c.name,
                            "del"
                                | "unlink"
                                | "getdel"
                                | "expire"
                                | "pexpire"
                                | "expireat"
                                | "pexpireat"
                                | "getex"
                        ) {
                            for (class, ev) in write_events(c, args, k) {
                                publish(shared, flags, class, ev, k);
                            }
                        }
                    }
                    // A renamed key moved rather than being deleted.
                    if !matches!(c.name, "rename" | "renamenx" | "restore") {
                        publish(shared, flags, GENERIC, "del", k);
                    }
                }
            }
            Change::Created(k) => publish(shared, flags, NEW, "new", k),
            Change::Expired(k) => {
                invalid.push(k.clone());
                publish(shared, flags, EXPIRED, "expired", k);
            }
            Change::Evicted(k) => {
                invalid.push(k.clone());
                publish(shared, flags, EVICTED, "evicted", k);
            }
            Change::Event(class, ev, k) => publish(shared, flags, *class, ev, k),
            Change::Flushed => flushed = true,
        }
    }
    if crate::tracking::invalidate(shared, &invalid, flushed, client) {
        db.log.bcast_pending = true;
    }
    // Background expiry has no command to end: broadcast now.
    if cmd.is_none() && std::mem::take(&mut db.log.bcast_pending) {
        crate::tracking::broadcast(shared);
    }
    // Keep the buffer's capacity for the next command.
    changes.clear();
    if db.log.changes.is_empty() {
        db.log.changes = changes;
    }
}

/// Turns recording on or off after the flags or the tracking clients changed.
pub fn refresh(shared: &Shared, db: &mut Db) {
    db.log.enabled = db.log.flags != 0 || crate::tracking::active(shared);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::PubMsg;
    use crate::session::Session;

    /// (channel, payload) of each message.
    fn msgs(s: &mut Session) -> Vec<(String, String)> {
        s.messages()
            .into_iter()
            .map(|m: PubMsg| {
                (
                    String::from_utf8_lossy(&m.channel).into_owned(),
                    String::from_utf8_lossy(&m.payload).into_owned(),
                )
            })
            .collect()
    }

    fn pair(c: &str, p: &str) -> (String, String) {
        (c.to_owned(), p.to_owned())
    }

    #[test]
    fn commands_raise_redis_events_on_both_channels() {
        let mut w = Session::new();
        let mut sub = Session::on(w.shared().clone());
        assert_eq!(
            w.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
            "+OK\r\n"
        );
        sub.cmd(&["PSUBSCRIBE", "*"]);
        w.cmd(&["SET", "foo", "bar"]);
        assert_eq!(
            msgs(&mut sub),
            [
                pair("__keyspace@0__:foo", "set"),
                pair("__keyevent@0__:set", "foo")
            ]
        );
        // HMSET is an hset; an emptied collection also raises del.
        w.cmd(&["HMSET", "h", "a", "1"]);
        w.cmd(&["HDEL", "h", "a"]);
        let ev: Vec<String> = msgs(&mut sub).into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            ev,
            [
                "__keyspace@0__:h",
                "__keyevent@0__:hset",
                "__keyspace@0__:h",
                "__keyevent@0__:hdel",
                "__keyspace@0__:h",
                "__keyevent@0__:del"
            ]
        );
        // Nothing changed, nothing raised.
        w.cmd(&["SADD", "s", "a"]);
        msgs(&mut sub);
        w.cmd(&["SREM", "s", "missing"]);
        w.cmd(&["SADD", "s", "a"]);
        assert!(msgs(&mut sub).is_empty());
        // An EXPIRE in the past deletes: only del.
        w.cmd(&["EXPIRE", "foo", "-1"]);
        assert_eq!(
            msgs(&mut sub),
            [
                pair("__keyspace@0__:foo", "del"),
                pair("__keyevent@0__:del", "foo")
            ]
        );
        // RENAME raises rename_from and rename_to.
        w.cmd(&["RENAME", "s", "t"]);
        assert_eq!(
            msgs(&mut sub),
            [
                pair("__keyspace@0__:s", "rename_from"),
                pair("__keyevent@0__:rename_from", "s"),
                pair("__keyspace@0__:t", "rename_to"),
                pair("__keyevent@0__:rename_to", "t")
            ]
        );
    }

    #[test]
    fn classes_mask_events_and_new_keys_and_expiry_are_reported() {
        let mut w = Session::new();
        let mut sub = Session::on(w.shared().clone());
        w.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Elxn"]);
        sub.cmd(&["PSUBSCRIBE", "*"]);
        w.cmd(&["SET", "foo", "bar"]);
        w.cmd(&["LPUSH", "l", "a"]);
        w.cmd(&["LPUSH", "l", "b"]);
        assert_eq!(
            msgs(&mut sub),
            [
                pair("__keyevent@0__:new", "foo"),
                pair("__keyevent@0__:new", "l"),
                pair("__keyevent@0__:lpush", "l"),
                pair("__keyevent@0__:lpush", "l")
            ]
        );
        // A key found expired raises expired.
        w.cmd(&["PSETEX", "gone", "1", "x"]);
        msgs(&mut sub);
        let now = crate::session::now_ms();
        let mut db = w.shared().db.lock();
        assert!(db.get(b"gone", now + 10).is_none());
        dispatch(w.shared(), &mut db, None, 0);
        drop(db);
        assert_eq!(msgs(&mut sub), [pair("__keyevent@0__:expired", "gone")]);
        assert!(
            w.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEw"])
                .starts_with("-ERR CONFIG SET failed")
        );
        assert_eq!(
            w.cmd(&["CONFIG", "GET", "notify-keyspace-events"]),
            "*2\r\n$22\r\nnotify-keyspace-events\r\n$4\r\nlxnE\r\n"
        );
    }

    #[test]
    fn flags_round_trip_as_redis_shows_them() {
        let f = |s: &str| format_flags(parse_flags(s.as_bytes()).unwrap());
        assert_eq!(f("gKE"), "gKE");
        assert_eq!(f("$lshzxeKE"), "$lshzxeKE");
        assert_eq!(f("KA"), "AK");
        assert_eq!(f("EA"), "AE");
        assert_eq!(f("En"), "nE");
        assert!(parse_flags(b"KEw").is_none());
    }
}

//! Client-side caching (`CLIENT TRACKING`): which clients read which keys, and the
//! invalidation messages they get when those keys change for any reason (a write, expiry,
//! eviction, FLUSHALL, a peer's replicated state applied through the keyspace).
//!
//! As Redis does, the default mode remembers the keys a client read (read-only commands) and
//! forgets them once invalidated; BCAST mode remembers nothing and is told about every changed
//! key under its prefixes. A client gets the message itself (RESP3 `invalidate` push) or
//! through the client it redirects to (RESP2: a message on `__redis__:invalidate`).

use std::sync::atomic::Ordering;

use hashbrown::{HashMap, HashSet};

use crate::cmd::table::Command;
use crate::cmd::{CmdError, CmdResult, Ctx, SYNTAX, eq_ic};
use crate::pubsub::{MsgKind, PubMsg, Subscriber};
use crate::shared::Shared;
use crate::value::Bytes;

/// Longest prefix list one `CLIENT TRACKING` may name (bounds the work of overlap checks).
const MAX_PREFIXES: usize = 10_000;

/// A client's tracking mode, as its connection keeps it.
#[derive(Debug, Clone, Default)]
pub struct ClientTracking {
    /// Client the invalidations go to (0: this one).
    pub redirect: u64,
    /// BCAST mode.
    pub bcast: bool,
    /// OPTIN mode: only reads after `CLIENT CACHING YES` are remembered.
    pub optin: bool,
    /// OPTOUT mode: reads after `CLIENT CACHING NO` are not remembered.
    pub optout: bool,
    /// NOLOOP: no invalidation for keys this client changed itself.
    pub noloop: bool,
    /// BCAST prefixes (none: every key).
    pub prefixes: Vec<Bytes>,
    /// `CLIENT CACHING yes|no` for the next command.
    pub caching: Option<bool>,
    /// The script running now called a read-only command: once it returns, its declared keys
    /// are remembered (Redis remembers the keys of the script caller's command).
    pub script_read: bool,
}

#[derive(Debug)]
struct Target {
    sub: Subscriber,
    redirect: u64,
    noloop: bool,
    bcast: bool,
    prefixes: Vec<Bytes>,
}

/// The server's tracking state.
#[derive(Debug)]
pub struct Table {
    clients: HashMap<u64, Target>,
    keys: HashMap<Bytes, HashSet<u64>>,
    /// Keys changed since the last broadcast, with who changed them: BCAST clients get them
    /// together, one message per prefix, after the command (a transaction: after EXEC).
    bcast_pending: Vec<(Bytes, u64)>,
    /// `tracking-table-max-keys` (0: no limit).
    max_keys: usize,
}

/// The default `tracking-table-max-keys`.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

impl Default for Table {
    fn default() -> Self {
        Self {
            clients: HashMap::new(),
            keys: HashMap::new(),
            bcast_pending: Vec::new(),
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

/// Figures for `INFO`: (tracking clients, remembered (key, client) items, keys, prefixes).
pub fn stats(shared: &Shared) -> (usize, usize, usize, usize) {
    let t = shared.tracking.lock();
    let items = t.keys.values().map(HashSet::len).sum();
    let mut prefixes: Vec<&Bytes> = t
        .clients
        .values()
        .filter(|c| c.bcast)
        .flat_map(|c| c.prefixes.iter())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    (t.clients.len(), items, t.keys.len(), prefixes.len())
}

/// Sets `tracking-table-max-keys` and forgets keys over it.
pub fn set_max_keys(shared: &Shared, max: usize) {
    shared.tracking.lock().max_keys = max;
    limit(shared);
}

/// Keeps the remembered keys within `tracking-table-max-keys`: the clients of each key
/// forgotten are told to invalidate it, as if it had changed (Redis's
/// `trackingLimitUsedSlots`).
fn limit(shared: &Shared) {
    let mut t = shared.tracking.lock();
    if t.max_keys == 0 || t.keys.len() <= t.max_keys {
        return;
    }
    let excess = t.keys.len() - t.max_keys;
    let victims: Vec<Bytes> = t.keys.keys().take(excess).cloned().collect();
    for k in victims {
        let Some(ids) = t.keys.remove(&k) else {
            continue;
        };
        for id in ids {
            if let Some(c) = t.clients.get(&id) {
                deliver(shared, c, Some(vec![k.clone()]));
            }
        }
    }
}

/// Whether any client tracks keys (the keyspace then records its changes).
pub fn active(shared: &Shared) -> bool {
    !shared.tracking.lock().clients.is_empty()
}

/// Number of keys remembered (`INFO`'s `tracking_total_keys`).
pub fn total_keys(shared: &Shared) -> usize {
    shared.tracking.lock().keys.len()
}

fn deliver(shared: &Shared, t: &Target, keys: Option<Vec<Bytes>>) {
    let (sub, kind) = if t.redirect == 0 {
        (t.sub.clone(), MsgKind::Invalidate(keys))
    } else {
        let target = shared.clients.lock().get(&t.redirect).cloned();
        match target {
            Some(info) => (info.queue.clone(), MsgKind::Invalidate(keys)),
            // The client it redirected to is gone: a RESP3 client learns so (Redis's
            // `tracking-redir-broken`).
            None => (t.sub.clone(), MsgKind::RedirBroken(t.redirect)),
        }
    };
    let msg = PubMsg {
        pattern: None,
        channel: bytes::Bytes::from_static(b"__redis__:invalidate"),
        payload: bytes::Bytes::new(),
        shard: false,
        kind,
    };
    if sub.tx.try_send(msg).is_err() {
        sub.kill.cancel();
    }
}

/// Sends invalidations for `keys` changed by `writer` (0: the server), or for everything
/// after a flush; returns whether BCAST clients have keys waiting for [`broadcast`].
pub fn invalidate(shared: &Shared, keys: &[Bytes], flushed: bool, writer: u64) -> bool {
    let mut t = shared.tracking.lock();
    if t.clients.is_empty() {
        return false;
    }
    if flushed {
        t.keys.clear();
        for c in t.clients.values() {
            deliver(shared, c, None);
        }
    }
    let mut per_client: HashMap<u64, Vec<Bytes>> = HashMap::new();
    for k in keys {
        if let Some(ids) = t.keys.remove(k) {
            for id in ids {
                per_client.entry(id).or_default().push(k.clone());
            }
        }
    }
    let bcast = t.clients.values().any(|c| {
        c.bcast
            && keys
                .iter()
                .any(|k| c.prefixes.iter().any(|p| k.starts_with(p)))
    });
    if bcast {
        t.bcast_pending
            .extend(keys.iter().map(|k| (k.clone(), writer)));
    }
    for (id, mut ks) in per_client {
        let Some(c) = t.clients.get(&id) else {
            continue;
        };
        if c.noloop && id == writer {
            continue;
        }
        let mut seen = HashSet::new();
        ks.retain(|k| seen.insert(k.clone()));
        // One message per key, as Redis's `sendTrackingMessage` (BCAST batches per prefix).
        for k in ks {
            deliver(shared, c, Some(vec![k]));
        }
    }
    bcast
}

/// Sends the BCAST clients the keys changed since the last call: one message per prefix
/// (Redis's `trackingBroadcastInvalidationMessages`), without the client's own changes under
/// NOLOOP.
pub fn broadcast(shared: &Shared) {
    let mut t = shared.tracking.lock();
    if t.bcast_pending.is_empty() {
        return;
    }
    let pending = std::mem::take(&mut t.bcast_pending);
    for (id, c) in &t.clients {
        if !c.bcast {
            continue;
        }
        for p in &c.prefixes {
            let mut keys: Vec<Bytes> = Vec::new();
            for (k, writer) in &pending {
                if k.starts_with(p) && !(c.noloop && writer == id) && !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            if !keys.is_empty() {
                deliver(shared, c, Some(keys));
            }
        }
    }
}

/// After a command: remembers the keys a tracking client read, and ends a `CLIENT CACHING`
/// that applied to this command.
pub fn after_command(ctx: &mut Ctx<'_>, cmd: &Command, args: &[&[u8]]) {
    let Some(tr) = ctx.conn.tracking.as_mut() else {
        return;
    };
    if ctx.in_script {
        if cmd.flags.contains(&"readonly") {
            tr.script_read = true;
        }
        return;
    }
    let script_read = std::mem::take(&mut tr.script_read);
    let caching = tr.caching;
    if cmd.name != "client" && ctx.conn.multi.is_none() && cmd.name != "exec" {
        tr.caching = None;
    }
    if tr.bcast || !(cmd.flags.contains(&"readonly") || script_read) {
        return;
    }
    if (tr.optin && caching != Some(true)) || (tr.optout && caching == Some(false)) {
        return;
    }
    let Some(keys) = crate::cmd::table::keys_of(cmd, args) else {
        return;
    };
    let id = ctx.conn.id;
    let mut t = ctx.shared.tracking.lock();
    for k in keys {
        t.keys.entry(Bytes::from(k)).or_default().insert(id);
    }
    let over = t.max_keys != 0 && t.keys.len() > t.max_keys;
    drop(t);
    if over {
        limit(ctx.shared);
    }
}

/// Forgets a client that turned tracking off or disconnected.
pub fn forget(shared: &Shared, id: u64) {
    let empty = {
        let mut t = shared.tracking.lock();
        if t.clients.remove(&id).is_none() {
            return;
        }
        // Its remembered keys go lazily: an invalidation for a client that no longer tracks
        // is dropped when it is found.
        t.keys.retain(|_, ids| {
            ids.remove(&id);
            !ids.is_empty()
        });
        t.clients.is_empty()
    };
    if empty {
        let mut db = shared.db.lock();
        crate::notify::refresh(shared, &mut db);
    }
}

fn overlap(a: &[u8], b: &[u8]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN] [OPTOUT] [NOLOOP]
pub fn client_tracking(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let on = if eq_ic(args[2], "on") {
        true
    } else if eq_ic(args[2], "off") {
        false
    } else {
        return Err(SYNTAX.into());
    };
    let mut opt = ClientTracking::default();
    let mut redirect = None;
    let mut i = 3;
    while i < args.len() {
        let a = args[i];
        if eq_ic(a, "redirect") && i + 1 < args.len() {
            if redirect.is_some() {
                return Err("ERR A client can only redirect to a single other client".into());
            }
            let id =
                crate::resp::parse_i64(args[i + 1]).ok_or(CmdError::Static(crate::cmd::NOT_INT))?;
            redirect = Some(id);
            i += 2;
        } else if eq_ic(a, "bcast") {
            opt.bcast = true;
            i += 1;
        } else if eq_ic(a, "optin") {
            opt.optin = true;
            i += 1;
        } else if eq_ic(a, "optout") {
            opt.optout = true;
            i += 1;
        } else if eq_ic(a, "noloop") {
            opt.noloop = true;
            i += 1;
        } else if eq_ic(a, "prefix") && i + 1 < args.len() {
            if opt.prefixes.len() >= MAX_PREFIXES {
                return Err("ERR too many prefixes".into());
            }
            opt.prefixes.push(args[i + 1].into());
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let id = ctx.conn.id;
    if !on {
        ctx.conn.tracking = None;
        forget(ctx.shared, id);
        ctx.out.ok();
        return Ok(());
    }
    let current = ctx.conn.tracking.clone();
    if !opt.prefixes.is_empty() && !opt.bcast {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    if let Some(cur) = &current
        && cur.bcast != opt.bcast
    {
        return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if opt.bcast && (opt.optin || opt.optout) {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if opt.optin && opt.optout {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if let Some(cur) = &current
        && ((opt.optin && cur.optout) || (opt.optout && cur.optin))
    {
        return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if let Some(r) = redirect {
        if r != id as i64 && (r <= 0 || !ctx.shared.clients.lock().contains_key(&(r as u64))) {
            return Err("ERR The client ID you want redirect to does not exist".into());
        }
        opt.redirect = r as u64;
    }
    // Prefixes accumulate over calls and must not overlap (a key would be reported twice).
    let mut prefixes = current
        .as_ref()
        .map(|c| c.prefixes.clone())
        .unwrap_or_default();
    if opt.bcast {
        for (i, p) in opt.prefixes.iter().enumerate() {
            if let Some(q) = prefixes.iter().find(|q| overlap(p, q)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(q)
                )
                .into());
            }
            if let Some(q) = opt.prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(q)
                )
                .into());
            }
        }
        if opt.prefixes.is_empty() {
            // No prefix: every key (Redis registers the empty prefix).
            opt.prefixes.push(Bytes::default());
        }
    }
    for p in opt.prefixes.drain(..) {
        if !prefixes.contains(&p) {
            prefixes.push(p);
        }
    }
    opt.prefixes = prefixes;
    let first = {
        let mut t = ctx.shared.tracking.lock();
        let first = t.clients.is_empty();
        t.clients.insert(
            id,
            Target {
                sub: ctx.conn.sub.clone(),
                redirect: opt.redirect,
                noloop: opt.noloop,
                bcast: opt.bcast,
                prefixes: opt.prefixes.clone(),
            },
        );
        first
    };
    ctx.conn.tracking = Some(opt);
    if first {
        let shared = ctx.shared;
        crate::notify::refresh(shared, ctx.db());
    }
    ctx.out.ok();
    Ok(())
}

/// CLIENT CACHING YES|NO
pub fn client_caching(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let Some(tr) = ctx.conn.tracking.as_mut().filter(|t| t.optin || t.optout) else {
        return Err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled".into());
    };
    if eq_ic(args[2], "yes") {
        if !tr.optin {
            return Err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
                    .into(),
            );
        }
        tr.caching = Some(true);
    } else if eq_ic(args[2], "no") {
        if !tr.optout {
            return Err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
                    .into(),
            );
        }
        tr.caching = Some(false);
    } else {
        return Err(SYNTAX.into());
    }
    ctx.out.ok();
    Ok(())
}

/// CLIENT GETREDIR
pub fn client_getredir(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let r = ctx.conn.tracking.as_ref().map_or(-1, |t| t.redirect as i64);
    ctx.out.int(r);
    Ok(())
}

/// CLIENT TRACKINGINFO
pub fn client_trackinginfo(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let tr = ctx.conn.tracking.clone();
    ctx.out.map(3);
    ctx.out.bulk(b"flags");
    match &tr {
        None => {
            ctx.out.set(1);
            ctx.out.bulk(b"off");
        }
        Some(t) => {
            let broken = t.redirect != 0 && !ctx.shared.clients.lock().contains_key(&t.redirect);
            let mut flags: Vec<&[u8]> = vec![b"on"];
            if t.bcast {
                flags.push(b"bcast");
            }
            if t.optin {
                flags.push(b"optin");
                if t.caching == Some(true) {
                    flags.push(b"caching-yes");
                }
            }
            if t.optout {
                flags.push(b"optout");
                if t.caching == Some(false) {
                    flags.push(b"caching-no");
                }
            }
            if t.noloop {
                flags.push(b"noloop");
            }
            if broken {
                flags.push(b"broken_redirect");
            }
            ctx.out.set(flags.len());
            for f in flags {
                ctx.out.bulk(f);
            }
        }
    }
    ctx.out.bulk(b"redirect");
    ctx.out.int(tr.as_ref().map_or(-1, |t| t.redirect as i64));
    ctx.out.bulk(b"prefixes");
    let prefixes = tr.map(|t| t.prefixes).unwrap_or_default();
    ctx.out.array(prefixes.len());
    for p in &prefixes {
        ctx.out.bulk(p);
    }
    Ok(())
}

/// Whether the connection must listen to its queue (tracking, or RESP3 where a redirected
/// invalidation may arrive without a subscription).
pub fn listens(conn: &crate::client::ConnState) -> bool {
    conn.tracking.is_some() || conn.info.resp3.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use crate::pubsub::MsgKind;
    use crate::session::Session;

    /// The keys of each invalidation queued for `s` (`None`: a flush).
    fn invalidations(s: &mut Session) -> Vec<Option<Vec<String>>> {
        s.messages()
            .into_iter()
            .filter_map(|m| match m.kind {
                MsgKind::Invalidate(keys) => Some(keys.map(|ks| {
                    ks.iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect()
                })),
                _ => None,
            })
            .collect()
    }

    fn keys(ks: &[&str]) -> Option<Vec<String>> {
        Some(ks.iter().map(|k| (*k).to_owned()).collect())
    }

    #[test]
    fn keys_read_are_invalidated_once_when_changed() {
        let mut r = Session::new();
        let mut w = Session::on(r.shared().clone());
        assert_eq!(r.cmd(&["CLIENT", "TRACKING", "on"]), "+OK\r\n");
        w.cmd(&["SET", "a", "1"]);
        r.cmd(&["GET", "a"]);
        r.cmd(&["GET", "unread-b"]);
        w.cmd(&["INCR", "a"]);
        w.cmd(&["INCR", "a"]);
        w.cmd(&["SET", "c", "1"]);
        assert_eq!(invalidations(&mut r), [keys(&["a"])]);
        // Expiry and FLUSHALL invalidate too.
        r.cmd(&["GET", "a"]);
        w.cmd(&["PEXPIRE", "a", "1"]);
        assert_eq!(invalidations(&mut r), [keys(&["a"])]);
        w.cmd(&["FLUSHALL"]);
        assert_eq!(invalidations(&mut r), [None]);
        assert_eq!(r.cmd(&["CLIENT", "GETREDIR"]), ":0\r\n");
        r.cmd(&["CLIENT", "TRACKING", "off"]);
        assert_eq!(r.cmd(&["CLIENT", "GETREDIR"]), ":-1\r\n");
    }

    #[test]
    fn a_script_that_reads_tracks_its_declared_keys() {
        let mut r = Session::new();
        let mut w = Session::on(r.shared().clone());
        assert_eq!(r.cmd(&["CLIENT", "TRACKING", "on"]), "+OK\r\n");
        // No read inside: nothing is remembered.
        r.cmd(&["EVAL", "redis.call('set', 'k3', 'bar')", "2", "k1", "k2"]);
        w.cmd(&["MSET", "k2", "2", "k1", "2"]);
        assert!(invalidations(&mut r).is_empty());
        // A read inside: the declared keys are, not the key read.
        r.cmd(&["EVAL", "redis.call('get', 'k3')", "2", "k1", "k2"]);
        w.cmd(&["MSET", "k2", "2", "k1", "2", "k3", "x"]);
        assert_eq!(invalidations(&mut r), [keys(&["k2"]), keys(&["k1"])]);
    }

    #[test]
    fn bcast_batches_a_transaction_per_prefix_and_noloop_skips_own_writes() {
        let mut r = Session::new();
        let mut w = Session::on(r.shared().clone());
        assert_eq!(
            r.cmd(&[
                "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a:", "PREFIX", "b:", "NOLOOP"
            ]),
            "+OK\r\n"
        );
        w.cmd(&["MULTI"]);
        for k in ["a:1", "a:2", "b:1", "c:1"] {
            w.cmd(&["INCR", k]);
        }
        w.cmd(&["EXEC"]);
        assert_eq!(
            invalidations(&mut r),
            [keys(&["a:1", "a:2"]), keys(&["b:1"])]
        );
        r.cmd(&["SET", "a:3", "x"]);
        assert!(invalidations(&mut r).is_empty());
        assert!(
            r.cmd(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a"])
                .starts_with("-ERR Prefix 'a' overlaps with an existing prefix 'a:'")
        );
    }

    #[test]
    fn a_replicated_key_state_invalidates_and_notifies() {
        // The owner writes; its key state reaches a replica through the cluster's apply path.
        let mut owner = Session::new();
        owner.cmd(&["SET", "k", "new"]);
        let mut ops = bytes::BytesMut::new();
        {
            let db = owner.shared().db.lock();
            crate::cluster::dump::dump_key(&db, b"k", crate::session::now_ms(), &mut ops);
        }
        let mut r = Session::new();
        let shared = r.shared().clone();
        let mut sub = Session::on(shared.clone());
        r.cmd(&["SET", "k", "old"]);
        r.cmd(&["CLIENT", "TRACKING", "on"]);
        r.cmd(&["GET", "k"]);
        r.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"]);
        sub.cmd(&["SUBSCRIBE", "__keyspace@0__:k"]);
        let state = crate::cluster::proto::KeyState {
            key: bytes::Bytes::from_static(b"k"),
            ver: 1,
            ops: ops.freeze(),
        };
        let (mut conn, _rx) = crate::client::ConnState::detached(&shared);
        let mut out = crate::reply::Reply::new();
        let applied = crate::cluster::apply::apply_state(&shared, &mut conn, &mut out, &state);
        assert_eq!(applied, Some(true));
        assert_eq!(r.cmd(&["GET", "k"]), "$3\r\nnew\r\n");
        assert_eq!(invalidations(&mut r), [keys(&["k"])]);
        assert!(!sub.messages().is_empty());
    }

    #[test]
    fn option_errors_and_caching_modes() {
        let mut r = Session::new();
        let mut w = Session::on(r.shared().clone());
        assert_eq!(
            r.cmd(&["CLIENT", "TRACKING", "on", "PREFIX", "x"]),
            "-ERR PREFIX option requires BCAST mode to be enabled\r\n"
        );
        assert_eq!(
            r.cmd(&["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]),
            "-ERR You can't specify both OPTIN mode and OPTOUT mode\r\n"
        );
        assert_eq!(
            r.cmd(&["CLIENT", "TRACKING", "on", "REDIRECT", "999999"]),
            "-ERR The client ID you want redirect to does not exist\r\n"
        );
        assert!(
            r.cmd(&["CLIENT", "CACHING", "yes"])
                .starts_with("-ERR CLIENT CACHING can be called only")
        );
        r.cmd(&["CLIENT", "TRACKING", "on", "OPTIN"]);
        w.cmd(&["MSET", "k1", "1", "k2", "2"]);
        r.cmd(&["GET", "k1"]);
        assert_eq!(r.cmd(&["CLIENT", "CACHING", "yes"]), "+OK\r\n");
        r.cmd(&["GET", "k2"]);
        w.cmd(&["MSET", "k1", "3", "k2", "4"]);
        assert_eq!(invalidations(&mut r), [keys(&["k2"])]);
        assert!(r.cmd(&["CLIENT", "CACHING", "no"]).starts_with(
            "-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
        ));
        r.cmd(&["HELLO", "3"]);
        r.cmd(&["CLIENT", "CACHING", "yes"]);
        let info = r.cmd(&["CLIENT", "TRACKINGINFO"]);
        assert!(
            info.contains("$2\r\non\r\n$5\r\noptin\r\n$11\r\ncaching-yes"),
            "{info}"
        );
    }
}

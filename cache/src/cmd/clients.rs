//! Commands about the connected clients: CLIENT LIST/INFO/KILL/REPLY/NO-EVICT, MONITOR, and
//! SHUTDOWN (refused: a node is stopped by its operator, not by a client).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::{CmdError, CmdResult, Ctx, SYNTAX, eq_ic};
use crate::shared::ClientInfo;

/// Lines a slow `MONITOR` client may have waiting before it loses some.
const MONITOR_QUEUE: usize = 4096;

/// The size of a request as RESP (what `qbuf` shows for the client running it).
fn request_len(args: &[&[u8]]) -> usize {
    let mut n = format!("*{}\r\n", args.len()).len();
    for a in args {
        n += format!("${}\r\n", a.len()).len() + a.len() + 2;
    }
    n
}

/// What the calling client knows of itself that others only see through atomics.
struct Me<'a> {
    id: u64,
    cmd: &'static str,
    qbuf: usize,
    subs: (usize, usize, usize),
    multi: i64,
    flags: &'a str,
}

fn flags_of(c: &ClientInfo, multi: bool) -> String {
    let a = &c.activity;
    let mut f = String::new();
    if a.monitor.load(Ordering::Relaxed) {
        f.push('O');
    }
    if c.subs.load(Ordering::Relaxed) > 0 {
        f.push('P');
    }
    if multi {
        f.push('x');
    }
    if a.blocked.load(Ordering::Relaxed) {
        f.push('b');
    }
    if a.no_evict.load(Ordering::Relaxed) {
        f.push('e');
    }
    if f.is_empty() {
        f.push('N');
    }
    f
}

/// One `CLIENT LIST` line, as Redis 7.0 writes it.
fn client_line(t: &mut String, c: &ClientInfo, me: Option<&Me<'_>>, now: u64) {
    let a = &c.activity;
    let last = a.last_active.load(Ordering::Relaxed);
    let age = c.created.elapsed().as_secs();
    let idle = if last == 0 {
        age
    } else {
        now.saturating_sub(last) / 1000
    };
    let others_subs = (c.subs.load(Ordering::Relaxed), 0, 0);
    let (sub, psub, ssub) = me.map_or(others_subs, |m| m.subs);
    let flags = me.map_or_else(|| flags_of(c, false), |m| m.flags.to_owned());
    let cmd = me.map_or_else(|| *a.last_cmd.lock(), |m| m.cmd);
    let (qbuf, qfree) = match me {
        Some(m) => (m.qbuf, a.qbuf_free.load(Ordering::Relaxed)),
        None => (
            a.qbuf.load(Ordering::Relaxed),
            a.qbuf_free.load(Ordering::Relaxed),
        ),
    };
    let _ = writeln!(
        t,
        "id={} addr={} laddr={} fd=0 name={} age={age} idle={idle} flags={flags} db=0 sub={sub} psub={psub} ssub={ssub} multi={} qbuf={qbuf} qbuf-free={qfree} argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem={} events=r cmd={cmd} user={} redir=-1 resp={}",
        c.id,
        c.addr,
        c.laddr,
        c.name.lock(),
        me.map_or(-1, |m| m.multi),
        qbuf + qfree,
        String::from_utf8_lossy(&c.user.lock()),
        if c.resp3.load(Ordering::Relaxed) {
            3
        } else {
            2
        },
    );
}

fn me<'a>(ctx: &Ctx<'_>, args: &[&[u8]], name: &'static str, flags: &'a str) -> Me<'a> {
    Me {
        id: ctx.conn.id,
        cmd: name,
        qbuf: request_len(args),
        subs: (
            ctx.conn.channels.len(),
            ctx.conn.patterns.len(),
            ctx.conn.shard_channels.len(),
        ),
        multi: ctx.conn.multi.as_ref().map_or(-1, |q| q.len() as i64),
        flags,
    }
}

fn client_type_ok(t: &[u8]) -> Result<(), CmdError> {
    if ["normal", "master", "replica", "slave", "pubsub"]
        .iter()
        .any(|k| eq_ic(t, k))
    {
        Ok(())
    } else {
        Err(format!("ERR Unknown client type '{}'", String::from_utf8_lossy(t)).into())
    }
}

/// Whether `c` is of `CLIENT LIST/KILL TYPE t` (no replicas or masters on a cache node).
fn is_type(c: &ClientInfo, t: &[u8]) -> bool {
    let pubsub = c.subs.load(Ordering::Relaxed) > 0;
    if eq_ic(t, "pubsub") {
        pubsub
    } else if eq_ic(t, "normal") {
        !pubsub
    } else {
        false
    }
}

/// CLIENT INFO | LIST | KILL | REPLY | UNBLOCK | PAUSE | UNPAUSE | NO-EVICT (dispatched from
/// `connection::client`).
pub fn client(ctx: &mut Ctx<'_>, args: &[&[u8]], sub: &'static str) -> CmdResult {
    match sub {
        "client|info" => {
            let flags = flags_of(&ctx.conn.info, ctx.conn.multi.is_some());
            let m = me(ctx, args, sub, &flags);
            let mut t = String::new();
            client_line(&mut t, &ctx.conn.info, Some(&m), ctx.now);
            ctx.out.verbatim(t.as_bytes());
        }
        "client|list" => list(ctx, args)?,
        "client|kill" => kill(ctx, args)?,
        "client|reply" => {
            let r = &mut ctx.conn.replies;
            if eq_ic(args[2], "ON") {
                r.off = false;
                r.skip = false;
                r.skip_next = false;
                ctx.out.ok();
            } else if eq_ic(args[2], "OFF") {
                r.off = true;
            } else if eq_ic(args[2], "SKIP") {
                if !r.off {
                    r.skip_next = true;
                }
            } else {
                return Err(SYNTAX.into());
            }
        }
        "client|unblock" => {
            let id = crate::resp::parse_i64(args[2])
                .filter(|&i| i >= 0)
                .ok_or(CmdError::Static(super::NOT_INT))?;
            let how = match args.get(3) {
                None => crate::introspect::UNBLOCK_TIMEOUT,
                Some(a) if eq_ic(a, "TIMEOUT") => crate::introspect::UNBLOCK_TIMEOUT,
                Some(a) if eq_ic(a, "ERROR") => crate::introspect::UNBLOCK_ERROR,
                Some(_) => {
                    return Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into());
                }
            };
            let target = ctx.shared.clients.lock().get(&(id as u64)).cloned();
            let done = match target {
                Some(c) if c.activity.blocked.load(Ordering::Relaxed) => {
                    c.activity.unblock.store(how, Ordering::Relaxed);
                    c.activity.waiter.notify_one();
                    true
                }
                _ => false,
            };
            ctx.out.int(i64::from(done));
        }
        "client|pause" => {
            let ms = crate::resp::parse_i64(args[2]).ok_or(CmdError::Static(
                "ERR timeout is not an integer or out of range",
            ))?;
            if ms < 0 {
                return Err(super::TIMEOUT_NEG.into());
            }
            let all = match args.get(3) {
                None => true,
                Some(a) if eq_ic(a, "ALL") => true,
                Some(a) if eq_ic(a, "WRITE") => false,
                Some(_) => return Err(SYNTAX.into()),
            };
            if args.len() > 4 {
                return Err(SYNTAX.into());
            }
            let until = ctx.now.saturating_add(ms as u64);
            ctx.shared.intro.pause(until, all);
            let db = ctx.db();
            db.expiry_paused_until = db.expiry_paused_until.max(until);
            ctx.out.ok();
        }
        "client|unpause" => {
            ctx.shared.intro.unpause();
            ctx.db().expiry_paused_until = 0;
            ctx.out.ok();
        }
        "client|no-evict" => {
            let on = if eq_ic(args[2], "ON") {
                true
            } else if eq_ic(args[2], "OFF") {
                false
            } else {
                return Err(SYNTAX.into());
            };
            ctx.conn.info.activity.no_evict.store(on, Ordering::Relaxed);
            ctx.out.ok();
        }
        _ => return Err(SYNTAX.into()),
    }
    Ok(())
}

/// CLIENT LIST [TYPE type] [ID id ...]
fn list(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut kind: Option<&[u8]> = None;
    let mut ids: Option<Vec<u64>> = None;
    if args.len() >= 4 && eq_ic(args[2], "TYPE") && args.len() == 4 {
        client_type_ok(args[3])?;
        kind = Some(args[3]);
    } else if args.len() >= 4 && eq_ic(args[2], "ID") {
        let mut v = Vec::with_capacity(args.len() - 3);
        for a in &args[3..] {
            match crate::resp::parse_i64(a) {
                Some(id) if id > 0 => v.push(id as u64),
                _ => return Err("ERR Invalid client ID".into()),
            }
        }
        ids = Some(v);
    } else if args.len() != 2 {
        return Err(SYNTAX.into());
    }
    let clients: Vec<_> = ctx.shared.clients.lock().values().cloned().collect();
    let my_flags = flags_of(&ctx.conn.info, ctx.conn.multi.is_some());
    let m = me(ctx, args, "client|list", &my_flags);
    let mut t = String::new();
    for c in clients {
        if kind.is_some_and(|k| !is_type(&c, k)) || ids.as_ref().is_some_and(|v| !v.contains(&c.id))
        {
            continue;
        }
        let mine = (c.id == m.id).then_some(&m);
        client_line(&mut t, &c, mine, ctx.now);
    }
    ctx.out.verbatim(t.as_bytes());
    Ok(())
}

/// CLIENT KILL addr | CLIENT KILL [ID id] [TYPE type] [USER user] [ADDR addr] [LADDR addr]
/// [SKIPME yes|no] [MAXAGE secs]
fn kill(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let clients: Vec<_> = ctx.shared.clients.lock().values().cloned().collect();
    if args.len() == 3 {
        // The old form: one address, an error if nobody is there.
        let addr = String::from_utf8_lossy(args[2]);
        return match clients.iter().find(|c| c.addr.to_string() == addr) {
            Some(c) => {
                c.kill.cancel();
                ctx.out.ok();
                Ok(())
            }
            None => Err("ERR No such client".into()),
        };
    }
    let mut id = None;
    let mut kind: Option<&[u8]> = None;
    let mut addr = None;
    let mut laddr = None;
    let mut user: Option<Vec<u8>> = None;
    let mut skipme = true;
    let mut maxage: Option<u64> = None;
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(SYNTAX.into());
        }
        let (opt, v) = (args[i], args[i + 1]);
        if eq_ic(opt, "ID") {
            match crate::resp::parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Err("ERR client-id should be greater than 0".into()),
            }
        } else if eq_ic(opt, "TYPE") {
            client_type_ok(v)?;
            kind = Some(v);
        } else if eq_ic(opt, "ADDR") {
            addr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq_ic(opt, "LADDR") {
            laddr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq_ic(opt, "USER") {
            if ctx.shared.acl.read().user(v).is_none() {
                return Err(format!("ERR No such user '{}'", String::from_utf8_lossy(v)).into());
            }
            user = Some(v.to_vec());
        } else if eq_ic(opt, "SKIPME") {
            skipme = if eq_ic(v, "yes") {
                true
            } else if eq_ic(v, "no") {
                false
            } else {
                return Err(SYNTAX.into());
            };
        } else if eq_ic(opt, "MAXAGE") {
            match crate::resp::parse_i64(v) {
                Some(n) if n >= 0 => maxage = Some(n as u64),
                _ => return Err(SYNTAX.into()),
            }
        } else {
            return Err(SYNTAX.into());
        }
        i += 2;
    }
    let me = ctx.conn.id;
    let mut n = 0;
    for c in &clients {
        let hit = id.is_none_or(|i| i == c.id)
            && kind.is_none_or(|k| is_type(c, k))
            && addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
            && laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
            && user.as_ref().is_none_or(|u| *c.user.lock() == *u)
            && maxage.is_none_or(|m| c.created.elapsed().as_secs() >= m)
            && !(skipme && c.id == me);
        if hit {
            // The caller itself is closed once this reply is written.
            c.kill.cancel();
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

/// MONITOR: from now on the client receives every command the server runs.
pub fn monitor(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    if ctx.conn.replies.monitor.is_none() {
        let (tx, rx) = mpsc::channel(MONITOR_QUEUE);
        ctx.conn.replies.monitor = Some(rx);
        ctx.conn
            .info
            .activity
            .monitor
            .store(true, Ordering::Relaxed);
        ctx.shared.intro.add_monitor(ctx.conn.id, tx);
    }
    ctx.out.ok();
    Ok(())
}

/// Ends `MONITOR` for the client (RESET).
pub fn stop_monitor(ctx: &mut Ctx<'_>) {
    if ctx.conn.replies.monitor.take().is_some() {
        ctx.shared.intro.remove_monitor(ctx.conn.id);
        ctx.conn
            .info
            .activity
            .monitor
            .store(false, Ordering::Relaxed);
    }
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: a cache node is part of a larger process
/// (DNS, CDN) and is stopped by its operator; a client cannot stop it.
pub fn shutdown(_ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    Err("ERR Errors trying to SHUTDOWN. Check logs.".into())
}

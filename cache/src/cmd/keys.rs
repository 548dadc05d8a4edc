//! Keyspace commands: DEL, EXISTS, expiry, TYPE, RENAME, COPY, KEYS, SCAN, OBJECT, FLUSH.

use super::{CmdError, CmdResult, Ctx, NO_KEY, SYNTAX, eq_ic, int_arg};
use crate::db::Entry;
use crate::glob::glob_match;
use crate::value::Value;

/// DEL / UNLINK key [key ...]
pub fn del(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let mut n = 0;
    for k in &args[1..] {
        if db.peek(k, now).is_some() {
            db.remove(k);
            n += 1;
        }
    }
    out.int(n);
    Ok(())
}

/// EXISTS / TOUCH key [key ...] (a key named twice counts twice, as in Redis)
pub fn exists(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let touch = eq_ic(args[0], "touch");
    let (db, out, now) = ctx.split();
    let mut n = 0;
    for k in &args[1..] {
        let found = if touch {
            db.get_mut(k, now).is_some()
        } else {
            db.peek(k, now).is_some()
        };
        if found {
            n += 1;
        }
    }
    out.int(n);
    Ok(())
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key amount [NX|XX|GT|LT]
pub fn expire(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let millis = name[0] == b'p';
    let absolute = name.ends_with(b"at");
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if eq_ic(a, "NX") {
            nx = true;
        } else if eq_ic(a, "XX") {
            xx = true;
        } else if eq_ic(a, "GT") {
            gt = true;
        } else if eq_ic(a, "LT") {
            lt = true;
        } else {
            return Err(format!("ERR Unsupported option {}", String::from_utf8_lossy(a)).into());
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let v = int_arg(args[2])?;
    let invalid = || {
        CmdError::Owned(format!(
            "ERR invalid expire time in '{}' command",
            String::from_utf8_lossy(&name)
        ))
    };
    let (db, out, now) = ctx.split();
    let ms = if millis {
        v
    } else {
        v.checked_mul(1000).ok_or_else(invalid)?
    };
    let at: i64 = if absolute {
        ms
    } else {
        ms.checked_add(now as i64).ok_or_else(invalid)?
    };
    let Some(e) = db.peek(args[1], now) else {
        out.int(0);
        return Ok(());
    };
    let cur = e.expire_at;
    // No TTL counts as an infinite TTL for GT/LT.
    let ok = if nx {
        cur == 0
    } else if xx && cur == 0 {
        false
    } else if gt {
        cur != 0 && at > cur as i64
    } else if lt {
        cur == 0 || at < cur as i64
    } else {
        true
    };
    if !ok {
        out.int(0);
        return Ok(());
    }
    if at <= now as i64 {
        db.remove(args[1]);
    } else {
        db.set_expire(args[1], at as u64);
    }
    out.int(1);
    Ok(())
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME key
pub fn ttl(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let (db, out, now) = ctx.split();
    let Some(e) = db.peek(args[1], now) else {
        out.int(-2);
        return Ok(());
    };
    if e.expire_at == 0 {
        out.int(-1);
        return Ok(());
    }
    let at = e.expire_at as i64;
    let left = (at - now as i64).max(0);
    out.int(match name.as_slice() {
        b"ttl" => (left + 500) / 1000,
        b"pttl" => left,
        b"expiretime" => at / 1000,
        _ => at,
    });
    Ok(())
}

/// PERSIST key
pub fn persist(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    match db.peek(args[1], now) {
        Some(e) if e.expire_at != 0 => {
            db.set_expire(args[1], 0);
            out.int(1);
        }
        _ => out.int(0),
    }
    Ok(())
}

/// TYPE key
pub fn type_(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    match db.peek(args[1], now) {
        Some(e) => out.simple(e.value.type_name()),
        None => out.simple("none"),
    }
    Ok(())
}

/// RENAME / RENAMENX src dst
pub fn rename(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let nx = eq_ic(args[0], "renamenx");
    let (db, out, now) = ctx.split();
    if db.peek(args[1], now).is_none() {
        return Err(NO_KEY.into());
    }
    if args[1] == args[2] {
        if nx {
            out.int(0);
        } else {
            out.ok();
        }
        return Ok(());
    }
    if nx && db.peek(args[2], now).is_some() {
        out.int(0);
        return Ok(());
    }
    let Some(Entry {
        value, expire_at, ..
    }) = db.remove(args[1])
    else {
        return Err(NO_KEY.into());
    };
    db.insert(args[2], value, expire_at, now);
    if nx {
        out.int(1);
    } else {
        out.ok();
    }
    Ok(())
}

/// COPY src dst [DB n] [REPLACE]
pub fn copy(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if eq_ic(args[i], "REPLACE") {
            replace = true;
        } else if eq_ic(args[i], "DB") && i + 1 < args.len() {
            if int_arg(args[i + 1])? != 0 {
                return Err("ERR DB index is out of range".into());
            }
            i += 1;
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    let (db, out, now) = ctx.split();
    if args[1] == args[2] {
        return Err("ERR source and destination objects are the same".into());
    }
    let Some(src) = db.peek(args[1], now) else {
        out.int(0);
        return Ok(());
    };
    let (value, at) = (src.value.clone(), src.expire_at);
    if db.peek(args[2], now).is_some() && !replace {
        out.int(0);
        return Ok(());
    }
    db.insert(args[2], value, at, now);
    out.int(1);
    Ok(())
}

/// KEYS pattern
pub fn keys(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let mut found: Vec<Box<[u8]>> = Vec::new();
    let pat = args[1];
    let all = pat == b"*";
    db.for_each_key(now, |k| {
        if all || glob_match(pat, k, false) {
            found.push(k.into());
        }
    });
    out.array(found.len());
    for k in &found {
        out.bulk(k);
    }
    Ok(())
}

/// Parsed `SCAN`-family options.
pub struct ScanOpts<'a> {
    /// The cursor.
    pub cursor: u64,
    /// MATCH pattern.
    pub pattern: Option<&'a [u8]>,
    /// COUNT hint.
    pub count: usize,
    /// TYPE filter (SCAN only).
    pub type_: Option<String>,
    /// NOVALUES (HSCAN).
    pub novalues: bool,
}

/// Parses `cursor [MATCH p] [COUNT n] [TYPE t]` starting at `args[at]` (the cursor).
pub fn scan_opts<'a>(
    args: &[&'a [u8]],
    at: usize,
    allow_type: bool,
) -> Result<ScanOpts<'a>, CmdError> {
    let cursor = std::str::from_utf8(args[at])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CmdError::Static("ERR invalid cursor"))?;
    let mut o = ScanOpts {
        cursor,
        pattern: None,
        count: 10,
        type_: None,
        novalues: false,
    };
    let mut i = at + 1;
    while i < args.len() {
        let has = i + 1 < args.len();
        if eq_ic(args[i], "MATCH") && has {
            o.pattern = Some(args[i + 1]);
            i += 2;
        } else if eq_ic(args[i], "COUNT") && has {
            let n = int_arg(args[i + 1])?;
            if n < 1 {
                return Err(SYNTAX.into());
            }
            o.count = n as usize;
            i += 2;
        } else if eq_ic(args[i], "TYPE") && has && allow_type {
            o.type_ = Some(String::from_utf8_lossy(args[i + 1]).to_ascii_lowercase());
            i += 2;
        } else if eq_ic(args[i], "NOVALUES") && !allow_type {
            o.novalues = true;
            i += 1;
        } else {
            return Err(SYNTAX.into());
        }
    }
    Ok(o)
}

/// SCAN cursor [MATCH p] [COUNT n] [TYPE t]
pub fn scan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let o = scan_opts(args, 1, true)?;
    let (db, out, now) = ctx.split();
    let mut found: Vec<Box<[u8]>> = Vec::new();
    let next = db.scan(o.cursor, o.count, now, |k, e| {
        if o.pattern.is_some_and(|p| !glob_match(p, k, false)) {
            return;
        }
        if o.type_.as_deref().is_some_and(|t| t != e.value.type_name()) {
            return;
        }
        found.push(k.into());
    });
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(found.len());
    for k in &found {
        out.bulk(k);
    }
    Ok(())
}

/// RANDOMKEY
pub fn randomkey(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let k = db.random_key(now);
    out.opt_bulk(k.as_deref());
    Ok(())
}

/// DBSIZE
pub fn dbsize(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let (db, out, _) = ctx.split();
    out.int(db.len() as i64);
    Ok(())
}

/// FLUSHDB / FLUSHALL [ASYNC|SYNC]
pub fn flush(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    match args.len() {
        1 => {}
        2 if eq_ic(args[1], "ASYNC") || eq_ic(args[1], "SYNC") => {}
        _ => return Err(SYNTAX.into()),
    }
    let (db, out, _) = ctx.split();
    db.flush();
    out.ok();
    Ok(())
}

fn encoding(v: &Value) -> &'static str {
    match v {
        Value::Str(s) => {
            if s.len() <= 20 && crate::resp::parse_i64(s).is_some() {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Value::Hash(h) if h.map.len() <= 128 => "listpack",
        Value::Hash(_) => "hashtable",
        Value::List(l) if l.items.len() <= 128 => "listpack",
        Value::List(_) => "quicklist",
        Value::Set(s) if s.set.len() <= 128 => "listpack",
        Value::Set(_) => "hashtable",
        Value::ZSet(z) if z.len() <= 128 => "listpack",
        Value::ZSet(_) => "skiplist",
        Value::Stream(_) => "stream",
    }
}

/// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT|HELP key
pub fn object(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = String::from_utf8_lossy(args[1]).to_ascii_lowercase();
    if sub == "help" && args.len() == 2 {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "FREQ <key>",
            "IDLETIME <key>",
            "REFCOUNT <key>",
            "HELP",
        ];
        ctx.out.array(lines.len());
        for l in lines {
            ctx.out.simple(l);
        }
        return Ok(());
    }
    if !matches!(sub.as_str(), "encoding" | "freq" | "idletime" | "refcount") {
        return Err(format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(args[1])
        )
        .into());
    }
    if args.len() != 3 {
        return Err(super::arity_error(&format!("object|{sub}")));
    }
    let (db, out, now) = ctx.split();
    let Some(e) = db.peek(args[2], now) else {
        out.null();
        return Ok(());
    };
    match sub.as_str() {
        "encoding" => out.bulk(encoding(&e.value).as_bytes()),
        "freq" => out.int(i64::from(e.freq())),
        "idletime" => return Err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into()),
        _ => out.int(1),
    }
    Ok(())
}

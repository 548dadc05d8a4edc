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
            db.touch(k, now)
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

/// The compact-encoding limits `OBJECT ENCODING` names encodings by (Redis's config).
struct Limits {
    hash_entries: usize,
    hash_value: usize,
    zset_entries: usize,
    zset_value: usize,
    intset_entries: usize,
}

impl Limits {
    fn of(ctx: &Ctx<'_>) -> Self {
        let p = ctx.shared.params.read();
        let get = |name: &str, dflt: usize| {
            p.get(name)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(dflt)
        };
        Limits {
            hash_entries: get("hash-max-listpack-entries", 128),
            hash_value: get("hash-max-listpack-value", 64),
            zset_entries: get("zset-max-listpack-entries", 128),
            zset_value: get("zset-max-listpack-value", 64),
            intset_entries: get("set-max-intset-entries", 512),
        }
    }
}

/// The encoding Redis 7.0 would use for a value of this size and content (values here have
/// one representation; Redis converts at the same thresholds, though it never converts back).
fn encoding(v: &Value, lim: &Limits) -> &'static str {
    #[allow(unreachable_patterns)] // value types added later (streams) report their own.
    match v {
        Value::Str(s) => {
            if crate::rdb::strict_int(s).is_some() {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Value::Hash(h)
            if h.map.len() <= lim.hash_entries
                && h.map
                    .iter()
                    .all(|(f, v)| f.len() <= lim.hash_value && v.len() <= lim.hash_value) =>
        {
            "listpack"
        }
        Value::Hash(_) => "hashtable",
        // Redis 7.0 keeps every list in a quicklist.
        Value::List(_) => "quicklist",
        Value::Set(s)
            if s.set.len() <= lim.intset_entries
                && s.set.iter().all(|m| crate::rdb::strict_int(m).is_some()) =>
        {
            "intset"
        }
        Value::Set(_) => "hashtable",
        Value::ZSet(z)
            if z.len() <= lim.zset_entries && z.dict.keys().all(|m| m.len() <= lim.zset_value) =>
        {
            "listpack"
        }
        Value::ZSet(_) => "skiplist",
        Value::Stream(_) => "stream",
    }
}

/// Whether the configured `maxmemory-policy` is an LFU one (Redis then tracks frequency, not
/// idle time, and `OBJECT` answers only the one it tracks).
fn lfu_policy(ctx: &Ctx<'_>) -> bool {
    ctx.shared
        .params
        .read()
        .get("maxmemory-policy")
        .is_some_and(|p| p.ends_with("lfu"))
}

/// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT|HELP key
pub fn object(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = String::from_utf8_lossy(args[1]).to_ascii_lowercase();
    if sub == "help" && args.len() == 2 {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Print this help.",
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
    let lim = Limits::of(ctx);
    let lfu = lfu_policy(ctx);
    let (db, out, now) = ctx.split();
    let Some(e) = db.peek(args[2], now) else {
        out.null();
        return Ok(());
    };
    match sub.as_str() {
        "encoding" => out.bulk(encoding(&e.value, &lim).as_bytes()),
        "freq" if !lfu => return Err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into()),
        "freq" => out.int(i64::from(e.freq())),
        // The access time is kept under every policy (Redis, which keeps one or the other,
        // refuses IDLETIME under LFU).
        "idletime" => out.int((e.idle_ms(now) / 1000) as i64),
        // Values are never shared between keys here.
        _ => out.int(1),
    }
    Ok(())
}

/// DUMP key
pub fn dump(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let Some(e) = db.get(args[1], now) else {
        out.null();
        return Ok(());
    };
    let payload = crate::rdb::dump(&e.value)?;
    out.bulk(&payload);
    Ok(())
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
pub fn restore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    // Options first, in Redis's order of checks.
    let mut j = 4;
    while j < args.len() {
        let more = j + 1 < args.len();
        if eq_ic(args[j], "REPLACE") {
            replace = true;
        } else if eq_ic(args[j], "ABSTTL") {
            absttl = true;
        } else if eq_ic(args[j], "IDLETIME") && more && freq.is_none() {
            let v = int_arg(args[j + 1])?;
            if v < 0 {
                return Err("ERR Invalid IDLETIME value, must be >= 0".into());
            }
            idle = Some(v);
            j += 1;
        } else if eq_ic(args[j], "FREQ") && more && idle.is_none() {
            let v = int_arg(args[j + 1])?;
            if !(0..=255).contains(&v) {
                return Err("ERR Invalid FREQ value, must be >= 0 and <= 255".into());
            }
            freq = Some(v);
            j += 1;
        } else {
            return Err(SYNTAX.into());
        }
        j += 1;
    }
    let (db, out, now) = ctx.split();
    let key = args[1];
    let exists = db.peek(key, now).is_some();
    if !replace && exists {
        return Err("BUSYKEY Target key name already exists.".into());
    }
    let ttl = int_arg(args[2])?;
    if ttl < 0 {
        return Err("ERR Invalid TTL value, must be >= 0".into());
    }
    let body = crate::rdb::verify(args[3])?;
    let value = crate::rdb::load(body).map_err(|e| {
        // Redis reports every undecodable payload as a bad format; ours name streams and
        // module values, which this server does not take.
        CmdError::Owned(if e.starts_with("ERR ") {
            e.to_owned()
        } else {
            format!("ERR {e}")
        })
    })?;
    let expire_at = match (ttl, absttl) {
        (0, _) => 0,
        (t, true) => t as u64,
        (t, false) => now.saturating_add(t as u64),
    };
    if exists {
        // REPLACE: the old key goes, with its access history (the new one starts fresh).
        db.remove(key);
    }
    if expire_at != 0 && expire_at <= now {
        // Already expired: the key ends up absent.
        out.ok();
        return Ok(());
    }
    db.insert(key, value, expire_at, now);
    if let Some(f) = freq {
        db.set_freq(key, f as u8, now);
    }
    if let Some(i) = idle {
        db.set_idle(key, (i as u64).saturating_mul(1000), now);
    }
    out.ok();
    Ok(())
}

/// The position of a member in the order HSCAN / SSCAN / ZSCAN walk a large collection: a
/// fixed hash (FNV-1a with a final mix), the same for the life of the value whatever is added
/// or removed around it.
fn member_hash(m: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in m {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer spreads FNV's weak high bits over the whole range.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// HSCAN / SSCAN / ZSCAN key cursor [MATCH p] [COUNT n]
///
/// A value small enough for Redis's compact encodings is returned whole with cursor 0, as Redis
/// does. A larger one is walked in member-hash order: the cursor is the hash where the next
/// step starts, and a step takes the members whose hash falls in a span sized to hold about
/// COUNT of them. A member present for the whole iteration is therefore returned exactly
/// once, however the collection changes in between (Redis guarantees at least once). Each
/// step hashes every member: O(n) per call, where Redis's table walk is O(COUNT); the value
/// types' tables expose no stable bucket order to walk.
pub fn collection_scan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let o = scan_opts(args, 2, false)?;
    let kind = args[0].to_ascii_lowercase();
    if o.novalues && kind != b"hscan" {
        return Err(SYNTAX.into());
    }
    let lim = Limits::of(ctx);
    let (db, out, now) = ctx.split();
    let Some(e) = db.get(args[1], now) else {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
        return Ok(());
    };
    // Every member with its value (hash) or score (zset), as the reply wants them.
    let mut tmp = [0u8; 32];
    let mut members: Vec<(&[u8], Option<Vec<u8>>)> = match (&e.value, kind.as_slice()) {
        (Value::Hash(h), b"hscan") => h
            .map
            .iter()
            .map(|(f, v)| (&**f, (!o.novalues).then(|| v.to_vec())))
            .collect(),
        (Value::Set(s), b"sscan") => s.set.iter().map(|m| (&**m, None)).collect(),
        (Value::ZSet(z), b"zscan") => z
            .dict
            .iter()
            .map(|(m, s)| {
                let score = crate::reply::fmt_double(*s, &mut tmp).to_vec();
                (&**m, Some(score))
            })
            .collect(),
        _ => return Err(super::WRONGTYPE.into()),
    };
    let compact = matches!(encoding(&e.value, &lim), "listpack" | "intset");
    let next = if compact {
        0
    } else {
        let n = members.len() as u64;
        let span = (u64::MAX / n.max(1)).saturating_mul(o.count as u64).max(1);
        let start = o.cursor;
        let end = start.saturating_add(span);
        members.retain(|(m, _)| {
            let h = member_hash(m);
            h >= start && (end == u64::MAX || h < end)
        });
        // Hash order within the step, so a reply is deterministic for a given state.
        members.sort_by_key(|(m, _)| member_hash(m));
        if end == u64::MAX { 0 } else { end }
    };
    if let Some(p) = o.pattern {
        members.retain(|(m, _)| glob_match(p, m, false));
    }
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    let per = if members.first().is_some_and(|(_, v)| v.is_some()) {
        2
    } else {
        1
    };
    out.array(members.len() * per);
    for (m, v) in members {
        out.bulk(m);
        if let Some(v) = v {
            out.bulk(&v);
        }
    }
    Ok(())
}

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
        _ => "stream",
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
        "idletime" if lfu => return Err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into()),
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

/// The value `SORT ... BY` / `GET` finds for `elem` through `pattern` (Redis's
/// `lookupKeyByPattern`): `#` is the element itself, the first `*` is replaced by the element,
/// and `key->field` reads a hash field. `None` when there is no `*`, no such key, or the key has
/// another type.
fn sort_lookup(db: &mut crate::db::Db, pattern: &[u8], elem: &[u8], now: u64) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(elem.to_vec());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < after.len());
    let (rest, field) = match arrow {
        Some(i) => (&after[..i], Some(&after[i + 2..])),
        None => (after, None),
    };
    let key = [&pattern[..star], elem, rest].concat();
    let e = db.get(&key, now)?;
    match (&e.value, field) {
        (Value::Str(s), None) => Some(s.to_vec()),
        (Value::Hash(h), Some(f)) => h.map.get(f).map(|v| v.to_vec()),
        _ => None,
    }
}

/// A sort weight as Redis's `strtod` check accepts it: the whole text must be a number (an
/// empty text counts as 0); out of range or NaN is an error.
fn sort_score(v: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(v).ok()?.trim_start();
    if t.is_empty() {
        return Some(0.0);
    }
    let f = super::parse_float(t.as_bytes())?;
    let literal_inf = t
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf");
    (!f.is_infinite() || literal_inf).then_some(f)
}

/// SORT / SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination]
pub fn sort(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let readonly = eq_ic(args[0], "sort_ro");
    let cluster = ctx.shared.cluster.get().is_some();
    let (mut desc, mut alpha, mut dontsort) = (false, false, false);
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let (mut by, mut store): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    let mut gets: Vec<&[u8]> = Vec::new();
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = args[j];
        if eq_ic(a, "ASC") {
            desc = false;
        } else if eq_ic(a, "DESC") {
            desc = true;
        } else if eq_ic(a, "ALPHA") {
            alpha = true;
        } else if eq_ic(a, "LIMIT") && left >= 2 {
            limit_start = int_arg(args[j + 1])?;
            limit_count = int_arg(args[j + 2])?;
            j += 2;
        } else if !readonly && eq_ic(a, "STORE") && left >= 1 {
            store = Some(args[j + 1]);
            j += 1;
        } else if eq_ic(a, "BY") && left >= 1 {
            by = Some(args[j + 1]);
            // A pattern without `*` names no key: nothing to sort by.
            if !args[j + 1].contains(&b'*') {
                dontsort = true;
            } else if cluster {
                return Err("ERR BY option of SORT denied in Cluster mode.".into());
            }
            j += 1;
        } else if eq_ic(a, "GET") && left >= 1 {
            if cluster {
                return Err("ERR GET option of SORT denied in Cluster mode.".into());
            }
            gets.push(args[j + 1]);
            j += 1;
        } else {
            return Err(SYNTAX.into());
        }
        j += 1;
    }
    let (db, out, now) = ctx.split();
    // The elements in the value's own order (a sorted set's is by score, then member).
    let (mut elems, is_set): (Vec<Vec<u8>>, bool) = match db.get(args[1], now).map(|e| &e.value) {
        None => (Vec::new(), false),
        Some(Value::List(l)) => (l.items.iter().map(|v| v.to_vec()).collect(), false),
        Some(Value::Set(s)) => (s.set.iter().map(|v| v.to_vec()).collect(), true),
        Some(Value::ZSet(z)) => {
            let mut items: Vec<(&crate::value::Bytes, f64)> =
                z.dict.iter().map(|(m, s)| (m, *s)).collect();
            items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
            (items.into_iter().map(|(m, _)| m.to_vec()).collect(), false)
        }
        Some(_) => return Err(super::WRONGTYPE.into()),
    };
    // A set has no order of its own: stored results are made deterministic by sorting.
    if dontsort && is_set && store.is_some() {
        dontsort = false;
        alpha = true;
        by = None;
    }
    let len = elems.len() as i64;
    let mut start = limit_start.max(0).min(len);
    let count = limit_count.max(-1).min(len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let mut conversion_error = false;
    if dontsort {
        if desc {
            elems.reverse();
        }
    } else {
        // Each element with its weight: a number, or (ALPHA BY) the text it sorts by.
        let mut keyed: Vec<(Vec<u8>, f64, Option<Vec<u8>>)> = Vec::with_capacity(elems.len());
        for e in elems {
            let by_val = match by {
                Some(p) => sort_lookup(db, p, &e, now),
                None => Some(e.clone()),
            };
            let (mut score, mut cmp) = (0.0, None);
            if let Some(v) = by_val {
                if alpha {
                    if by.is_some() {
                        cmp = Some(v);
                    }
                } else {
                    match sort_score(&v) {
                        Some(f) => score = f,
                        None => conversion_error = true,
                    }
                }
            }
            keyed.push((e, score, cmp));
        }
        keyed.sort_by(|a, b| {
            let ord = if !alpha {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            } else if by.is_some() {
                // Elements whose BY key is missing sort first.
                a.2.cmp(&b.2)
            } else {
                a.0.cmp(&b.0)
            };
            if desc { ord.reverse() } else { ord }
        });
        elems = keyed.into_iter().map(|k| k.0).collect();
    }
    if conversion_error {
        return Err("ERR One or more scores can't be converted into double".into());
    }
    let picked: &[Vec<u8>] = if end >= start {
        &elems[start as usize..=end as usize]
    } else {
        &[]
    };
    let per = gets.len().max(1);
    match store {
        None => {
            out.array(picked.len() * per);
            for e in picked {
                if gets.is_empty() {
                    out.bulk(e);
                }
                for g in &gets {
                    let v = sort_lookup(db, g, e, now);
                    out.opt_bulk(v.as_deref());
                }
            }
        }
        Some(dest) => {
            let mut list = crate::value::ListObj::default();
            for e in picked {
                if gets.is_empty() {
                    list.push(e, false);
                }
                for g in &gets {
                    let v = sort_lookup(db, g, e, now).unwrap_or_default();
                    list.push(&v, false);
                }
            }
            let n = list.items.len();
            if n > 0 {
                db.insert(dest, Value::List(Box::new(list)), 0, now);
            } else {
                db.remove(dest);
            }
            out.int(n as i64);
        }
    }
    Ok(())
}

//! String commands: GET/SET and their variants, counters, ranges.

use super::{
    CmdError, CmdResult, Ctx, NOT_FLOAT, NOT_INT, OVERFLOW, SYNTAX, WRONGTYPE, arity_error, eq_ic,
    int_arg, parse_float,
};
use crate::db::{Db, Entry};
use crate::resp::parse_i64;
use crate::value::Value;

/// The string bytes of an entry, or WRONGTYPE.
#[inline]
pub fn as_str(e: &Entry) -> Result<&[u8], CmdError> {
    match &e.value {
        Value::Str(s) => Ok(s),
        _ => Err(WRONGTYPE.into()),
    }
}

fn invalid_expire(cmd: &[u8]) -> CmdError {
    CmdError::Owned(format!(
        "ERR invalid expire time in '{}' command",
        String::from_utf8_lossy(cmd).to_lowercase()
    ))
}

/// An absolute expiry (Unix ms) from a relative or absolute amount in seconds or ms, with
/// Redis's overflow and sign checks.
pub fn expire_at(
    cmd: &[u8],
    amount: &[u8],
    millis: bool,
    absolute: bool,
    now: u64,
) -> Result<u64, CmdError> {
    let v = int_arg(amount)?;
    if v <= 0 {
        return Err(invalid_expire(cmd));
    }
    let ms = if millis {
        v
    } else {
        v.checked_mul(1000).ok_or_else(|| invalid_expire(cmd))?
    };
    let at = if absolute {
        ms
    } else {
        ms.checked_add(now as i64)
            .ok_or_else(|| invalid_expire(cmd))?
    };
    Ok(at as u64)
}

/// GET key
pub fn get(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    match db.get(args[1], now) {
        None => out.null(),
        Some(e) => out.bulk(as_str(e)?),
    }
    Ok(())
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
pub fn set(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let (key, val) = (args[1], args[2]);
    if args.len() == 3 {
        // The common case: no options.
        db.insert(key, Value::Str(val.into()), 0, now);
        out.ok();
        return Ok(());
    }
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expire: Option<u64> = None;
    let mut i = 3;
    while i < args.len() {
        let a = args[i];
        let has_next = i + 1 < args.len();
        if eq_ic(a, "NX") && !xx {
            nx = true;
        } else if eq_ic(a, "XX") && !nx {
            xx = true;
        } else if eq_ic(a, "GET") {
            get = true;
        } else if eq_ic(a, "KEEPTTL") && expire.is_none() {
            keepttl = true;
        } else if (eq_ic(a, "EX") || eq_ic(a, "PX") || eq_ic(a, "EXAT") || eq_ic(a, "PXAT"))
            && !keepttl
            && expire.is_none()
            && has_next
        {
            let millis = a[0].eq_ignore_ascii_case(&b'p');
            let absolute = a.len() == 4;
            expire = Some(expire_at(b"set", args[i + 1], millis, absolute, now)?);
            i += 1;
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    let existing = db.peek(key, now);
    let old: Option<Option<Box<[u8]>>> = if get {
        match existing {
            None => Some(None),
            Some(e) => Some(Some(as_str(e)?.into())),
        }
    } else {
        None
    };
    let exists = existing.is_some();
    let keep = if keepttl {
        existing.map(|e| e.expire_at).unwrap_or(0)
    } else {
        0
    };
    let proceed = !(nx && exists || xx && !exists);
    if proceed {
        db.insert(key, Value::Str(val.into()), expire.unwrap_or(keep), now);
    }
    match old {
        Some(v) => out.opt_bulk(v.as_deref()),
        None if proceed => out.ok(),
        None => out.null(),
    }
    Ok(())
}

/// SETNX key value
pub fn setnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    if db.peek(args[1], now).is_some() {
        out.int(0);
    } else {
        db.insert(args[1], Value::Str(args[2].into()), 0, now);
        out.int(1);
    }
    Ok(())
}

/// SETEX key seconds value / PSETEX key ms value
pub fn setex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let millis = args[0][0].eq_ignore_ascii_case(&b'p');
    let at = expire_at(args[0], args[2], millis, false, now)?;
    db.insert(args[1], Value::Str(args[3].into()), at, now);
    out.ok();
    Ok(())
}

/// GETSET key value
pub fn getset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let old: Option<Box<[u8]>> = match db.get(args[1], now) {
        None => None,
        Some(e) => Some(as_str(e)?.into()),
    };
    db.insert(args[1], Value::Str(args[2].into()), 0, now);
    out.opt_bulk(old.as_deref());
    Ok(())
}

/// GETDEL key
pub fn getdel(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    match db.get(args[1], now) {
        None => out.null(),
        Some(e) => {
            out.bulk(as_str(e)?);
            db.remove(args[1]);
        }
    }
    Ok(())
}

/// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
pub fn getex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let mut new_expire: Option<u64> = None;
    match args.len() {
        2 => {}
        3 if eq_ic(args[2], "PERSIST") => new_expire = Some(0),
        4 if ["EX", "PX", "EXAT", "PXAT"]
            .iter()
            .any(|k| eq_ic(args[2], k)) =>
        {
            let a = args[2];
            let millis = a[0].eq_ignore_ascii_case(&b'p');
            new_expire = Some(expire_at(b"getex", args[3], millis, a.len() == 4, now)?);
        }
        _ => return Err(SYNTAX.into()),
    }
    match db.get(args[1], now) {
        None => out.null(),
        Some(e) => {
            out.bulk(as_str(e)?);
            if let Some(at) = new_expire {
                if at != 0 && at <= now {
                    db.remove(args[1]);
                } else {
                    db.set_expire(args[1], at);
                }
            }
        }
    }
    Ok(())
}

/// MGET key [key ...]
pub fn mget(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    out.array(args.len() - 1);
    for k in &args[1..] {
        match db.get(k, now) {
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => out.bulk(s),
            _ => out.null(),
        }
    }
    Ok(())
}

/// MSET key value [key value ...]
pub fn mset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(arity_error("mset"));
    }
    let (db, out, now) = ctx.split();
    for kv in args[1..].chunks_exact(2) {
        db.insert(kv[0], Value::Str(kv[1].into()), 0, now);
    }
    out.ok();
    Ok(())
}

/// MSETNX key value [key value ...]
pub fn msetnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(arity_error("msetnx"));
    }
    let (db, out, now) = ctx.split();
    if args[1..]
        .chunks_exact(2)
        .any(|kv| db.peek(kv[0], now).is_some())
    {
        out.int(0);
        return Ok(());
    }
    for kv in args[1..].chunks_exact(2) {
        db.insert(kv[0], Value::Str(kv[1].into()), 0, now);
    }
    out.int(1);
    Ok(())
}

fn max_len(ctx: &Ctx<'_>) -> usize {
    ctx.shared.limits().max_bulk
}

const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// APPEND key value
pub fn append(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = max_len(ctx);
    let (db, out, now) = ctx.split();
    let new_len = match db.get_mut(args[1], now) {
        None => {
            db.insert(args[1], Value::Str(args[2].into()), 0, now);
            args[2].len()
        }
        Some(e) => {
            let Value::Str(s) = &mut e.value else {
                return Err(WRONGTYPE.into());
            };
            if s.len() + args[2].len() > max {
                return Err(TOO_BIG.into());
            }
            s.extend_from_slice(args[2]);
            let n = s.len();
            db.modified(args[1]);
            n
        }
    };
    out.int(new_len as i64);
    Ok(())
}

/// STRLEN key
pub fn strlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let n = match db.get(args[1], now) {
        None => 0,
        Some(e) => as_str(e)?.len(),
    };
    out.int(n as i64);
    Ok(())
}

/// GETRANGE key start end
pub fn getrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let start = int_arg(args[2])?;
    let end = int_arg(args[3])?;
    let (db, out, now) = ctx.split();
    let s: &[u8] = match db.get(args[1], now) {
        None => b"",
        Some(e) => as_str(e)?,
    };
    // Redis: a negative start past the beginning clamps to 0, but start > end after
    // normalization (or both negative and start > end) yields "".
    if start < 0 && end < 0 && start > end {
        out.bulk(b"");
        return Ok(());
    }
    match super::norm_range(start, end, s.len()) {
        Some((a, b)) => out.bulk(&s[a..=b]),
        None => out.bulk(b""),
    }
    Ok(())
}

/// SETRANGE key offset value
pub fn setrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let offset = int_arg(args[2])?;
    if offset < 0 {
        return Err("ERR offset is out of range".into());
    }
    let offset = offset as usize;
    let max = max_len(ctx);
    let val = args[3];
    let (db, out, now) = ctx.split();
    let existing = match db.get_mut(args[1], now) {
        None => None,
        Some(e) => match &mut e.value {
            Value::Str(s) => Some(std::mem::take(s).into_vec()),
            _ => return Err(WRONGTYPE.into()),
        },
    };
    let mut v = match existing {
        None if val.is_empty() => {
            out.int(0);
            return Ok(());
        }
        None => Vec::new(),
        Some(v) => v,
    };
    if !val.is_empty() {
        if offset + val.len() > max {
            // Put the value back untouched.
            if let Some(Entry {
                value: Value::Str(s),
                ..
            }) = db.get_mut(args[1], now)
            {
                *s = v.into();
            }
            return Err(TOO_BIG.into());
        }
        if v.len() < offset + val.len() {
            v.resize(offset + val.len(), 0);
        }
        v[offset..offset + val.len()].copy_from_slice(val);
    }
    let n = v.len();
    write_back(db, args[1], v, now);
    out.int(n as i64);
    Ok(())
}

/// Stores `v` at `key`, keeping the TTL if the key exists.
fn write_back(db: &mut Db, key: &[u8], v: Vec<u8>, now: u64) {
    match db.get_mut(key, now) {
        Some(e) => {
            e.value = Value::Str(v.into());
            db.modified(key);
        }
        None => db.insert(key, Value::Str(v.into()), 0, now),
    }
}

/// INCR / DECR / INCRBY / DECRBY
pub fn incr(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = args[0];
    let by: i64 = match name.len() {
        4 => {
            if eq_ic(name, "INCR") {
                1
            } else {
                -1
            }
        }
        _ => {
            let v = int_arg(args[2])?;
            if eq_ic(name, "DECRBY") {
                if v == i64::MIN {
                    return Err("ERR decrement would overflow".into());
                }
                -v
            } else {
                v
            }
        }
    };
    let (db, out, now) = ctx.split();
    let n = match db.get_mut(args[1], now) {
        None => {
            let mut b = itoa::Buffer::new();
            db.insert(args[1], Value::Str(b.format(by).as_bytes().into()), 0, now);
            by
        }
        Some(e) => {
            let Value::Str(s) = &mut e.value else {
                return Err(WRONGTYPE.into());
            };
            let cur = parse_i64(s).ok_or(CmdError::Static(NOT_INT))?;
            let n = cur.checked_add(by).ok_or(CmdError::Static(OVERFLOW))?;
            let mut b = itoa::Buffer::new();
            let digits = b.format(n).as_bytes();
            if digits.len() == s.len() {
                s.copy_from_slice(digits);
            } else {
                *s = digits.into();
            }
            db.modified(args[1]);
            n
        }
    };
    out.int(n);
    Ok(())
}

/// Formats a float as `INCRBYFLOAT` replies (plain decimal, no exponent).
pub fn fmt_incr_float(v: f64) -> String {
    let s = format!("{v}");
    if s == "-0" { "0".to_owned() } else { s }
}

/// INCRBYFLOAT key increment
pub fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    // Redis checks the stored value before the increment.
    let cur = match db.get(args[1], now) {
        None => 0.0,
        Some(e) => parse_float(as_str(e)?).ok_or(CmdError::Static(NOT_FLOAT))?,
    };
    let by = parse_float(args[2]).ok_or(CmdError::Static(NOT_FLOAT))?;
    let n = cur + by;
    if !n.is_finite() {
        return Err("ERR increment would produce NaN or Infinity".into());
    }
    let s = fmt_incr_float(n);
    write_back(db, args[1], s.clone().into_bytes(), now);
    out.bulk(s.as_bytes());
    Ok(())
}

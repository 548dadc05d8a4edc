//! Hash commands.

use super::{
    CmdError, CmdResult, Ctx, NOT_FLOAT, OVERFLOW, WRONGTYPE, arity_error, int_arg, parse_float,
};
use crate::db::Db;
use crate::resp::parse_i64;
use crate::value::{HashObj, Value};

/// The hash at `key` for reading.
pub fn read<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d HashObj>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(WRONGTYPE.into()),
        },
    }
}

/// The hash at `key` for writing, created if missing. Call `db.modified(key)` afterwards.
pub fn write<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<&'d mut HashObj, CmdError> {
    if db.peek(key, now).is_none() {
        db.insert(key, Value::Hash(Box::default()), 0, now);
    }
    match db.get_mut(key, now).map(|e| &mut e.value) {
        Some(Value::Hash(h)) => Ok(h),
        _ => Err(WRONGTYPE.into()),
    }
}

fn existing_mut<'d>(
    db: &'d mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d mut HashObj>, CmdError> {
    match db.get_mut(key, now).map(|e| &mut e.value) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(WRONGTYPE.into()),
    }
}

/// HSET / HMSET key field value [field value ...]
pub fn hset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(arity_error(
            &String::from_utf8_lossy(args[0]).to_ascii_lowercase(),
        ));
    }
    let hmset = args[0].len() == 5;
    let (db, out, now) = ctx.split();
    let h = write(db, args[1], now)?;
    let mut added = 0;
    for fv in args[2..].chunks_exact(2) {
        if h.insert(fv[0], fv[1]) {
            added += 1;
        }
    }
    db.modified(args[1]);
    if hmset {
        out.ok();
    } else {
        out.int(added);
    }
    Ok(())
}

/// HSETNX key field value
pub fn hsetnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let h = write(db, args[1], now)?;
    let added = if h.map.contains_key(args[2]) {
        false
    } else {
        h.insert(args[2], args[3])
    };
    db.modified(args[1]);
    out.int(i64::from(added));
    Ok(())
}

/// HGET key field
pub fn hget(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let v = read(db, args[1], now)?.and_then(|h| h.map.get(args[2]));
    out.opt_bulk(v.map(|v| &**v));
    Ok(())
}

/// HMGET key field [field ...]
pub fn hmget(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let h = read(db, args[1], now)?;
    out.array(args.len() - 2);
    for f in &args[2..] {
        out.opt_bulk(h.and_then(|h| h.map.get(*f)).map(|v| &**v));
    }
    Ok(())
}

/// HDEL key field [field ...]
pub fn hdel(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let Some(h) = existing_mut(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let n = args[2..].iter().filter(|f| h.remove(f)).count();
    db.modified(args[1]);
    out.int(n as i64);
    Ok(())
}

/// HLEN key
pub fn hlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    out.int(read(db, args[1], now)?.map_or(0, |h| h.map.len()) as i64);
    Ok(())
}

/// HSTRLEN key field
pub fn hstrlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let n = read(db, args[1], now)?
        .and_then(|h| h.map.get(args[2]))
        .map_or(0, |v| v.len());
    out.int(n as i64);
    Ok(())
}

/// HEXISTS key field
pub fn hexists(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let e = read(db, args[1], now)?.is_some_and(|h| h.map.contains_key(args[2]));
    out.int(i64::from(e));
    Ok(())
}

/// HGETALL / HKEYS / HVALS key
pub fn hgetall(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let which = args[0].to_ascii_lowercase();
    let (db, out, now) = ctx.split();
    let Some(h) = read(db, args[1], now)? else {
        if which == b"hgetall" {
            out.map(0);
        } else {
            out.array(0);
        }
        return Ok(());
    };
    match which.as_slice() {
        b"hgetall" => {
            out.map(h.map.len());
            for (f, v) in &h.map {
                out.bulk(f);
                out.bulk(v);
            }
        }
        b"hkeys" => {
            out.array(h.map.len());
            for f in h.map.keys() {
                out.bulk(f);
            }
        }
        _ => {
            out.array(h.map.len());
            for v in h.map.values() {
                out.bulk(v);
            }
        }
    }
    Ok(())
}

/// HINCRBY key field increment
pub fn hincrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let by = int_arg(args[3])?;
    let (db, out, now) = ctx.split();
    let h = write(db, args[1], now)?;
    let cur = match h.map.get(args[2]) {
        None => 0,
        Some(v) => parse_i64(v).ok_or(CmdError::Static("ERR hash value is not an integer"))?,
    };
    let n = cur.checked_add(by).ok_or(CmdError::Static(OVERFLOW))?;
    let mut b = itoa::Buffer::new();
    h.insert(args[2], b.format(n).as_bytes());
    db.modified(args[1]);
    out.int(n);
    Ok(())
}

/// HINCRBYFLOAT key field increment
pub fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let by = parse_float(args[3]).ok_or(CmdError::Static(NOT_FLOAT))?;
    if by.is_infinite() {
        return Err("ERR value is NaN or Infinity".into());
    }
    let (db, out, now) = ctx.split();
    let h = write(db, args[1], now)?;
    let cur = match h.map.get(args[2]) {
        None => 0.0,
        Some(v) => parse_float(v).ok_or(CmdError::Static("ERR hash value is not a float"))?,
    };
    let n = cur + by;
    if !n.is_finite() {
        db.modified(args[1]);
        return Err("ERR increment would produce NaN or Infinity".into());
    }
    let s = super::strings::fmt_incr_float(n);
    h.insert(args[2], s.as_bytes());
    db.modified(args[1]);
    out.bulk(s.as_bytes());
    Ok(())
}

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let count = match args.get(2) {
        Some(c) => Some(rand_count_arg(c)?),
        None => None,
    };
    let withvalues = match args.len() {
        2 | 3 => false,
        4 if super::eq_ic(args[3], "WITHVALUES") => true,
        _ => return Err(super::SYNTAX.into()),
    };
    // Redis refuses counts whose field-and-value reply length would overflow a long.
    if withvalues && count.is_some_and(|c| c.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Err("ERR value is out of range".into());
    }
    let (db, out, now) = ctx.split();
    let h = read(db, args[1], now)?;
    let entries: Vec<(&[u8], &[u8])> = h
        .map(|h| h.map.iter().map(|(f, v)| (&**f, &**v)).collect())
        .unwrap_or_default();
    let Some(count) = count else {
        if entries.is_empty() {
            out.null();
        } else {
            out.bulk(entries[fastrand::usize(..entries.len())].0);
        }
        return Ok(());
    };
    let picks = pick_indices(entries.len(), count);
    if withvalues && out.resp3 {
        out.array(picks.len());
        for i in picks {
            out.array(2);
            out.bulk(entries[i].0);
            out.bulk(entries[i].1);
        }
    } else {
        out.array(picks.len() * if withvalues { 2 } else { 1 });
        for i in picks {
            out.bulk(entries[i].0);
            if withvalues {
                out.bulk(entries[i].1);
            }
        }
    }
    Ok(())
}

/// Random indices for the `count` argument of HRANDFIELD/SRANDMEMBER/ZRANDMEMBER: positive
/// means distinct (at most `len`), negative means `|count|` picks with repetition.
/// Parses the count of SRANDMEMBER / HRANDFIELD: any long but `LONG_MIN`, whose negation (the
/// number of picks with repetition) does not exist.
pub fn rand_count_arg(a: &[u8]) -> Result<i64, CmdError> {
    let c = int_arg(a)?;
    if c == i64::MIN {
        return Err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
                .into(),
        );
    }
    Ok(c)
}

pub fn pick_indices(len: usize, count: i64) -> Vec<usize> {
    if len == 0 || count == 0 {
        return Vec::new();
    }
    if count < 0 {
        let n = count.unsigned_abs().min(10_000_000) as usize;
        return (0..n).map(|_| fastrand::usize(..len)).collect();
    }
    let n = (count as usize).min(len);
    let mut idx: Vec<usize> = (0..len).collect();
    fastrand::shuffle(&mut idx);
    idx.truncate(n);
    idx
}

/// HSCAN key cursor [MATCH p] [COUNT n] [NOVALUES]
pub fn hscan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    super::keys::collection_scan(ctx, args)
}

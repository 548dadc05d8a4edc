//! Set commands.

use hashbrown::HashSet;

use super::hash::pick_indices;
use super::{CmdError, CmdResult, Ctx, NOT_POSITIVE, SYNTAX, WRONGTYPE, eq_ic, int_arg};
use crate::db::Db;
use crate::value::{Bytes, SetObj, Value};

fn read<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d SetObj>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(WRONGTYPE.into()),
        },
    }
}

fn existing_mut<'d>(
    db: &'d mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d mut SetObj>, CmdError> {
    match db.get_mut(key, now).map(|e| &mut e.value) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(WRONGTYPE.into()),
    }
}

/// SADD key member [member ...]
pub fn sadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    if db.peek(args[1], now).is_none() {
        db.insert(args[1], Value::Set(Box::default()), 0, now);
    }
    let s = existing_mut(db, args[1], now)?.ok_or(CmdError::Static(WRONGTYPE))?;
    let n = args[2..].iter().filter(|m| s.insert(m)).count();
    db.modified(args[1]);
    out.int(n as i64);
    Ok(())
}

/// SREM key member [member ...]
pub fn srem(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let Some(s) = existing_mut(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let n = args[2..].iter().filter(|m| s.remove(m)).count();
    db.modified(args[1]);
    out.int(n as i64);
    Ok(())
}

/// SMEMBERS key
pub fn smembers(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let intset_max = ctx
        .shared
        .params
        .read()
        .get("set-max-intset-entries")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(512);
    let (db, out, now) = ctx.split();
    match read(db, args[1], now)? {
        None => out.set(0),
        Some(s) => {
            out.set(s.set.len());
            // A small set of integers is an intset in Redis, which lists its members in
            // ascending order (clients and Redis's tests see that order, e.g. after RESTORE).
            if s.set.len() <= intset_max {
                let ints: Option<Vec<(i64, &[u8])>> = s
                    .set
                    .iter()
                    .map(|m| crate::rdb::strict_int(m).map(|i| (i, m.as_ref())))
                    .collect();
                if let Some(mut ints) = ints {
                    ints.sort_unstable_by_key(|(i, _)| *i);
                    for (_, m) in ints {
                        out.bulk(m);
                    }
                    return Ok(());
                }
            }
            for m in &s.set {
                out.bulk(m);
            }
        }
    }
    Ok(())
}

/// SISMEMBER key member
pub fn sismember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let is = read(db, args[1], now)?.is_some_and(|s| s.set.contains(args[2]));
    out.int(i64::from(is));
    Ok(())
}

/// SMISMEMBER key member [member ...]
pub fn smismember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let s = read(db, args[1], now)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        out.int(i64::from(s.is_some_and(|s| s.set.contains(*m))));
    }
    Ok(())
}

/// SCARD key
pub fn scard(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    out.int(read(db, args[1], now)?.map_or(0, |s| s.set.len()) as i64);
    Ok(())
}

/// SPOP key [count]
pub fn spop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(SYNTAX.into());
    }
    let count = match args.get(2) {
        Some(c) => {
            let n = int_arg(c).map_err(|_| CmdError::Static(NOT_POSITIVE))?;
            if n < 0 {
                return Err(NOT_POSITIVE.into());
            }
            Some(n as usize)
        }
        None => None,
    };
    let (db, out, now) = ctx.split();
    let Some(s) = existing_mut(db, args[1], now)? else {
        match count {
            Some(_) => out.set(0),
            None => out.null(),
        }
        return Ok(());
    };
    let members: Vec<Bytes> = s.set.iter().cloned().collect();
    let picks = pick_indices(members.len(), count.unwrap_or(1) as i64);
    for &i in &picks {
        s.remove(&members[i]);
    }
    db.modified(args[1]);
    match count {
        None => out.opt_bulk(picks.first().map(|&i| &*members[i])),
        Some(_) => {
            out.set(picks.len());
            for i in picks {
                out.bulk(&members[i]);
            }
        }
    }
    Ok(())
}

/// SRANDMEMBER key [count]
pub fn srandmember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(SYNTAX.into());
    }
    let count = match args.get(2) {
        Some(c) => Some(super::hash::rand_count_arg(c)?),
        None => None,
    };
    let (db, out, now) = ctx.split();
    let members: Vec<&[u8]> = read(db, args[1], now)?
        .map(|s| s.set.iter().map(|m| &**m).collect())
        .unwrap_or_default();
    match count {
        None => {
            if members.is_empty() {
                out.null();
            } else {
                out.bulk(members[fastrand::usize(..members.len())]);
            }
        }
        Some(c) => {
            let picks = pick_indices(members.len(), c);
            out.array(picks.len());
            for i in picks {
                out.bulk(members[i]);
            }
        }
    }
    Ok(())
}

/// SMOVE source destination member
pub fn smove(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    // Redis's order: a missing source answers 0, then the source's type, then the
    // destination's.
    let src_type_ok = match db.peek(args[1], now).map(|e| &e.value) {
        None => {
            out.int(0);
            return Ok(());
        }
        Some(v) => matches!(v, Value::Set(_)),
    };
    if !src_type_ok
        || !matches!(
            db.peek(args[2], now).map(|e| &e.value),
            None | Some(Value::Set(_))
        )
    {
        return Err(WRONGTYPE.into());
    }
    let Some(s) = existing_mut(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    if args[1] == args[2] {
        // Same set: a no-op that changes nothing (WATCH stays intact).
        out.int(i64::from(s.set.contains(args[3])));
        return Ok(());
    }
    if !s.remove(args[3]) {
        out.int(0);
        return Ok(());
    }
    db.modified(args[1]);
    if db.peek(args[2], now).is_none() {
        db.insert(args[2], Value::Set(Box::default()), 0, now);
    }
    // The destination changes (and its WATCHes fire) only if the member was not there.
    if let Some(d) = existing_mut(db, args[2], now)?
        && d.insert(args[3])
    {
        db.modified(args[2]);
    }
    out.int(1);
    Ok(())
}

/// Computes SINTER/SUNION/SDIFF over `keys`.
fn compute(db: &mut Db, op: &str, keys: &[&[u8]], now: u64) -> Result<Vec<Bytes>, CmdError> {
    // Check every type first (Redis answers WRONGTYPE even if an earlier set is empty).
    for k in keys {
        match db.peek(k, now).map(|e| &e.value) {
            None | Some(Value::Set(_)) => {}
            Some(_) => return Err(WRONGTYPE.into()),
        }
    }
    let db: &Db = db;
    let get = |k: &[u8]| -> Option<&SetObj> { db_lookup(db, k, now) };
    let result: Vec<Bytes> = match op {
        "inter" => {
            let mut all: Vec<&SetObj> = Vec::new();
            for k in keys {
                match get(k) {
                    Some(s) => all.push(s),
                    None => return Ok(Vec::new()),
                }
            }
            all.sort_by_key(|s| s.set.len());
            let (first, rest) = all.split_first().ok_or(CmdError::Static(SYNTAX))?;
            first
                .set
                .iter()
                .filter(|m| rest.iter().all(|s| s.set.contains(*m)))
                .cloned()
                .collect()
        }
        "union" => {
            let mut u: HashSet<&Bytes> = HashSet::new();
            for k in keys {
                if let Some(s) = get(k) {
                    u.extend(s.set.iter());
                }
            }
            u.into_iter().cloned().collect()
        }
        _ => {
            let Some(first) = get(keys[0]) else {
                return Ok(Vec::new());
            };
            let others: Vec<&SetObj> = keys[1..].iter().filter_map(|k| get(k)).collect();
            first
                .set
                .iter()
                .filter(|m| !others.iter().any(|s| s.set.contains(*m)))
                .cloned()
                .collect()
        }
    };
    Ok(result)
}

fn db_lookup<'d>(db: &'d Db, key: &[u8], now: u64) -> Option<&'d SetObj> {
    match db.peek_ref(key, now).map(|e| &e.value) {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    }
}

/// SINTER / SUNION / SDIFF and their STORE forms
pub fn setop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
    let store = name.ends_with("store");
    let op = &name[1..name.len() - if store { 5 } else { 0 }];
    let (db, out, now) = ctx.split();
    if store {
        let members = compute(db, op, &args[2..], now)?;
        let n = members.len();
        if members.is_empty() {
            db.remove(args[1]);
        } else {
            let s = SetObj::from_members(members.iter().map(|m| &**m));
            db.insert(args[1], Value::Set(Box::new(s)), 0, now);
        }
        out.int(n as i64);
    } else {
        let members = compute(db, op, &args[1..], now)?;
        out.set(members.len());
        for m in &members {
            out.bulk(m);
        }
    }
    Ok(())
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let numkeys =
        int_arg(args[1]).map_err(|_| CmdError::Static("ERR numkeys should be greater than 0"))?;
    if numkeys <= 0 {
        return Err("ERR numkeys should be greater than 0".into());
    }
    let numkeys = numkeys as usize;
    if 2 + numkeys > args.len() {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    let mut limit = 0usize;
    let rest = &args[2 + numkeys..];
    match rest.len() {
        0 => {}
        2 if eq_ic(rest[0], "LIMIT") => {
            let l =
                int_arg(rest[1]).map_err(|_| CmdError::Static("ERR LIMIT can't be negative"))?;
            if l < 0 {
                return Err("ERR LIMIT can't be negative".into());
            }
            limit = l as usize;
        }
        _ => return Err(SYNTAX.into()),
    }
    let (db, out, now) = ctx.split();
    let members = compute(db, "inter", &args[2..2 + numkeys], now)?;
    let n = if limit > 0 {
        members.len().min(limit)
    } else {
        members.len()
    };
    out.int(n as i64);
    Ok(())
}

/// SSCAN key cursor [MATCH p] [COUNT n]
pub fn sscan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    super::keys::collection_scan(ctx, args)
}

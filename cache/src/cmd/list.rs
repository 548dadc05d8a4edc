//! List commands, including the blocking pops.

use super::{
    CmdError, CmdResult, Ctx, NO_KEY, NOT_POSITIVE, OUT_OF_RANGE, SYNTAX, TIMEOUT_INVALID,
    TIMEOUT_NEG, WRONGTYPE, eq_ic, int_arg, norm_range, owned, parse_float,
};
use crate::db::Db;
use crate::value::{Bytes, ListObj, Value};

fn read<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d ListObj>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(WRONGTYPE.into()),
        },
    }
}

fn existing_mut<'d>(
    db: &'d mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d mut ListObj>, CmdError> {
    match db.get_mut(key, now).map(|e| &mut e.value) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(WRONGTYPE.into()),
    }
}

/// Whether `key` is missing or a list.
fn check_list(db: &mut Db, key: &[u8], now: u64) -> Result<(), CmdError> {
    match db.peek(key, now).map(|e| &e.value) {
        None | Some(Value::List(_)) => Ok(()),
        Some(_) => Err(WRONGTYPE.into()),
    }
}

fn push_values(
    db: &mut Db,
    key: &[u8],
    now: u64,
    vals: &[&[u8]],
    left: bool,
) -> Result<usize, CmdError> {
    if db.peek(key, now).is_none() {
        db.insert(key, Value::List(Box::default()), 0, now);
    }
    let Some(l) = existing_mut(db, key, now)? else {
        return Ok(0);
    };
    for v in vals {
        l.push(v, left);
    }
    let n = l.items.len();
    db.modified(key);
    Ok(n)
}

/// LPUSH / RPUSH / LPUSHX / RPUSHX key element [element ...]
pub fn push(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let left = args[0][0].eq_ignore_ascii_case(&b'l');
    let only_existing = args[0].len() == 6;
    let (db, out, now) = ctx.split();
    if only_existing {
        check_list(db, args[1], now)?;
        if db.peek(args[1], now).is_none() {
            out.int(0);
            return Ok(());
        }
    }
    let n = push_values(db, args[1], now, &args[2..], left)?;
    out.int(n as i64);
    Ok(())
}

/// LPOP / RPOP key [count]
pub fn pop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let left = args[0][0].eq_ignore_ascii_case(&b'l');
    if args.len() > 3 {
        return Err(super::arity_error(
            &String::from_utf8_lossy(args[0]).to_ascii_lowercase(),
        ));
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
    let Some(l) = existing_mut(db, args[1], now)? else {
        if count.is_some() {
            out.null_array();
        } else {
            out.null();
        }
        return Ok(());
    };
    match count {
        None => {
            let v = l.pop(left);
            out.opt_bulk(v.as_deref());
        }
        Some(n) => {
            let n = n.min(l.items.len());
            out.array(n);
            for _ in 0..n {
                if let Some(v) = l.pop(left) {
                    out.bulk(&v);
                }
            }
        }
    }
    db.modified(args[1]);
    Ok(())
}

/// LLEN key
pub fn llen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    out.int(read(db, args[1], now)?.map_or(0, |l| l.items.len()) as i64);
    Ok(())
}

/// LRANGE key start stop
pub fn lrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (start, stop) = (int_arg(args[2])?, int_arg(args[3])?);
    let (db, out, now) = ctx.split();
    let Some(l) = read(db, args[1], now)? else {
        out.array(0);
        return Ok(());
    };
    match norm_range(start, stop, l.items.len()) {
        None => out.array(0),
        Some((a, b)) => {
            out.array(b - a + 1);
            for v in l.items.range(a..=b) {
                out.bulk(v);
            }
        }
    }
    Ok(())
}

fn index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    if i < 0 || i >= len as i64 {
        None
    } else {
        Some(i as usize)
    }
}

/// LINDEX key index
pub fn lindex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let i = int_arg(args[2])?;
    let (db, out, now) = ctx.split();
    let v = read(db, args[1], now)?.and_then(|l| index(i, l.items.len()).map(|i| &l.items[i]));
    out.opt_bulk(v.map(|v| &**v));
    Ok(())
}

/// LSET key index element
pub fn lset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let i = int_arg(args[2])?;
    let (db, out, now) = ctx.split();
    let l = existing_mut(db, args[1], now)?.ok_or(CmdError::Static(NO_KEY))?;
    let i = index(i, l.items.len()).ok_or(CmdError::Static(OUT_OF_RANGE))?;
    l.items[i] = args[3].into();
    l.recount();
    db.modified(args[1]);
    out.ok();
    Ok(())
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let after = if eq_ic(args[2], "AFTER") {
        true
    } else if eq_ic(args[2], "BEFORE") {
        false
    } else {
        return Err(SYNTAX.into());
    };
    let (db, out, now) = ctx.split();
    let Some(l) = existing_mut(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let Some(pos) = l.items.iter().position(|v| &**v == args[3]) else {
        out.int(-1);
        return Ok(());
    };
    l.items
        .insert(if after { pos + 1 } else { pos }, args[4].into());
    l.recount();
    let n = l.items.len();
    db.modified(args[1]);
    out.int(n as i64);
    Ok(())
}

/// LREM key count element
pub fn lrem(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let count = int_arg(args[2])?;
    let (db, out, now) = ctx.split();
    let Some(l) = existing_mut(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut removed = 0;
    if count >= 0 {
        let mut i = 0;
        while i < l.items.len() && removed < limit {
            if &*l.items[i] == args[3] {
                l.items.remove(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
    } else {
        let mut i = l.items.len();
        while i > 0 && removed < limit {
            i -= 1;
            if &*l.items[i] == args[3] {
                l.items.remove(i);
                removed += 1;
            }
        }
    }
    l.recount();
    db.modified(args[1]);
    out.int(removed as i64);
    Ok(())
}

/// LTRIM key start stop
pub fn ltrim(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (start, stop) = (int_arg(args[2])?, int_arg(args[3])?);
    let (db, out, now) = ctx.split();
    if let Some(l) = existing_mut(db, args[1], now)? {
        match norm_range(start, stop, l.items.len()) {
            None => l.items.clear(),
            Some((a, b)) => {
                l.items.truncate(b + 1);
                l.items.drain(..a);
            }
        }
        l.recount();
        db.modified(args[1]);
    }
    out.ok();
    Ok(())
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len]
pub fn lpos(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        // The option name is checked before its value is parsed, as Redis does.
        if i + 1 >= args.len()
            || !["RANK", "COUNT", "MAXLEN"]
                .iter()
                .any(|o| eq_ic(args[i], o))
        {
            return Err(SYNTAX.into());
        }
        let v = int_arg(args[i + 1])?;
        if eq_ic(args[i], "RANK") {
            if v == 0 {
                return Err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list".into());
            }
            if v == i64::MIN {
                return Err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807".into());
            }
            rank = v;
        } else if eq_ic(args[i], "COUNT") {
            if v < 0 {
                return Err("ERR COUNT can't be negative".into());
            }
            count = Some(v as usize);
        } else if eq_ic(args[i], "MAXLEN") {
            if v < 0 {
                return Err("ERR MAXLEN can't be negative".into());
            }
            maxlen = v as usize;
        } else {
            return Err(SYNTAX.into());
        }
        i += 2;
    }
    let (db, out, now) = ctx.split();
    let mut found = Vec::new();
    if let Some(l) = read(db, args[1], now)? {
        let want = match count {
            Some(0) => usize::MAX,
            Some(c) => c,
            None => 1,
        };
        let mut skip = rank.unsigned_abs() as usize - 1;
        let len = l.items.len();
        let limit = if maxlen == 0 { len } else { maxlen.min(len) };
        for step in 0..limit {
            let idx = if rank > 0 { step } else { len - 1 - step };
            if &*l.items[idx] == args[2] {
                if skip > 0 {
                    skip -= 1;
                } else {
                    found.push(idx);
                    if found.len() >= want {
                        break;
                    }
                }
            }
        }
    }
    match count {
        None => match found.first() {
            Some(&i) => out.int(i as i64),
            None => out.null(),
        },
        Some(_) => {
            out.array(found.len());
            for i in found {
                out.int(i as i64);
            }
        }
    }
    Ok(())
}

fn side(a: &[u8]) -> Result<bool, CmdError> {
    if eq_ic(a, "LEFT") {
        Ok(true)
    } else if eq_ic(a, "RIGHT") {
        Ok(false)
    } else {
        Err(SYNTAX.into())
    }
}

/// Parses a blocking timeout in seconds into milliseconds (0 = forever).
pub fn timeout_ms(a: &[u8]) -> Result<u64, CmdError> {
    let t = parse_float(a).ok_or(CmdError::Static(TIMEOUT_INVALID))?;
    if t < 0.0 {
        return Err(TIMEOUT_NEG.into());
    }
    if !t.is_finite() || t > 1e13 {
        return Err("ERR timeout is out of range".into());
    }
    Ok((t * 1000.0).ceil() as u64)
}

/// Moves one element from `src` to `dst`; `None` if `src` is empty.
fn move_one(
    db: &mut Db,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
    now: u64,
) -> Result<Option<Bytes>, CmdError> {
    // Redis looks at the source first: a missing source answers nil whatever the destination.
    if existing_mut(db, src, now)?.is_none() {
        return Ok(None);
    }
    check_list(db, dst, now)?;
    let Some(l) = existing_mut(db, src, now)? else {
        return Ok(None);
    };
    let Some(v) = l.pop(from_left) else {
        return Ok(None);
    };
    db.modified(src);
    push_values(db, dst, now, &[&v], to_left)?;
    Ok(Some(v))
}

/// LMOVE / RPOPLPUSH / BLMOVE / BRPOPLPUSH
pub fn lmove(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let (from_left, to_left, timeout) = match name.as_slice() {
        b"lmove" => (side(args[3])?, side(args[4])?, None),
        b"blmove" => (side(args[3])?, side(args[4])?, Some(timeout_ms(args[5])?)),
        b"rpoplpush" => (false, true, None),
        _ => (false, true, Some(timeout_ms(args[3])?)),
    };
    let retry = ctx.conn.retry_deadline.is_some();
    let (db, out, now) = ctx.split();
    let moved = if retry
        && !matches!(
            db.peek(args[1], now).map(|e| &e.value),
            None | Some(Value::List(_))
        ) {
        // Woken, but the source is no longer a list: Redis keeps such a client blocked.
        Ok(None)
    } else {
        move_one(db, args[1], args[2], from_left, to_left, now)
    };
    match moved {
        Err(e) => Err(e),
        Ok(Some(v)) => {
            out.bulk(&v);
            Ok(())
        }
        Ok(None) => {
            match timeout {
                None => ctx.out.null(),
                Some(t) => {
                    if !ctx.block(args, vec![args[1].into()], t) {
                        ctx.out.null_array();
                    }
                }
            }
            Ok(())
        }
    }
}

/// The list at `key` for a blocking pop: a woken client (`retry`) treats a key that is no
/// longer a list as empty and keeps waiting, as Redis does; a first call answers WRONGTYPE.
fn blocking_source<'d>(
    db: &'d mut Db,
    key: &[u8],
    now: u64,
    retry: bool,
) -> Result<Option<&'d mut ListObj>, CmdError> {
    match existing_mut(db, key, now) {
        Err(_) if retry => Ok(None),
        r => r,
    }
}

/// BLPOP / BRPOP key [key ...] timeout
pub fn bpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let left = args[0][1].eq_ignore_ascii_case(&b'l');
    let timeout = timeout_ms(args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    let retry = ctx.conn.retry_deadline.is_some();
    bpop_run(ctx, args, keys, left, timeout, retry)
}

fn bpop_run(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    keys: &[&[u8]],
    left: bool,
    timeout: u64,
    retry: bool,
) -> CmdResult {
    let (db, out, now) = ctx.split();
    for k in keys {
        if let Some(l) = blocking_source(db, k, now, retry)?
            && let Some(v) = l.pop(left)
        {
            db.modified(k);
            out.array(2);
            out.bulk(k);
            out.bulk(&v);
            return Ok(());
        }
    }
    if !ctx.block(args, owned(keys), timeout) {
        ctx.out.null_array();
    }
    Ok(())
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT n] / BLMPOP timeout numkeys ...
pub fn lmpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let blocking = args[0][0].eq_ignore_ascii_case(&b'b');
    let base = if blocking { 2 } else { 1 };
    let timeout = if blocking {
        Some(timeout_ms(args[1])?)
    } else {
        None
    };
    let numkeys = int_arg(args[base])
        .map_err(|_| CmdError::Static("ERR numkeys should be greater than 0"))?;
    if numkeys <= 0 {
        return Err("ERR numkeys should be greater than 0".into());
    }
    let numkeys = numkeys as usize;
    if base + 1 + numkeys > args.len() - 1 {
        return Err(SYNTAX.into());
    }
    let keys = &args[base + 1..base + 1 + numkeys];
    let mut i = base + 1 + numkeys;
    let left = side(args[i])?;
    i += 1;
    let mut count = 1usize;
    if i < args.len() {
        if eq_ic(args[i], "COUNT") && i + 2 == args.len() {
            let c = int_arg(args[i + 1])
                .map_err(|_| CmdError::Static("ERR count should be greater than 0"))?;
            if c <= 0 {
                return Err("ERR count should be greater than 0".into());
            }
            count = c as usize;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let retry = ctx.conn.retry_deadline.is_some();
    lmpop_run(ctx, args, keys, left, count, timeout, retry)
}

fn lmpop_run(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    keys: &[&[u8]],
    left: bool,
    count: usize,
    timeout: Option<u64>,
    retry: bool,
) -> CmdResult {
    let (db, out, now) = ctx.split();
    for k in keys {
        if let Some(l) = blocking_source(db, k, now, retry)?
            && !l.items.is_empty()
        {
            let n = count.min(l.items.len());
            out.array(2);
            out.bulk(k);
            out.array(n);
            for _ in 0..n {
                if let Some(v) = l.pop(left) {
                    out.bulk(&v);
                }
            }
            db.modified(k);
            return Ok(());
        }
    }
    match timeout {
        Some(t) if ctx.block(args, owned(keys), t) => {}
        _ => ctx.out.null_array(),
    }
    Ok(())
}

//! Sorted set commands.

use super::hash::pick_indices;
use super::keys::scan_opts;
use super::list::timeout_ms;
use super::{
    CmdError, CmdResult, Ctx, NOT_FLOAT, NOT_POSITIVE, SYNTAX, WRONGTYPE, eq_ic, int_arg,
    norm_range, owned, parse_float,
};
use crate::db::Db;
use crate::glob::glob_match;
use crate::reply::Reply;
use crate::value::{Bytes, Value};
use crate::zset::{Pos, ZSet};

fn read<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d ZSet>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(WRONGTYPE.into()),
        },
    }
}

fn existing_mut<'d>(
    db: &'d mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d mut ZSet>, CmdError> {
    match db.get_mut(key, now).map(|e| &mut e.value) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(WRONGTYPE.into()),
    }
}

fn create<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<&'d mut ZSet, CmdError> {
    if db.peek(key, now).is_none() {
        db.insert(key, Value::ZSet(Box::default()), 0, now);
    }
    existing_mut(db, key, now)?.ok_or(CmdError::Static(WRONGTYPE))
}

/// Writes a member with its score: `[m, s]` pair in RESP3, flat in RESP2.
fn member_score(out: &mut Reply, m: &[u8], s: f64, pairs: bool) {
    if pairs && out.resp3 {
        out.array(2);
    }
    out.bulk(m);
    out.double(s);
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = args[i];
        if eq_ic(a, "NX") {
            nx = true;
        } else if eq_ic(a, "XX") {
            xx = true;
        } else if eq_ic(a, "GT") {
            gt = true;
        } else if eq_ic(a, "LT") {
            lt = true;
        } else if eq_ic(a, "CH") {
            ch = true;
        } else if eq_ic(a, "INCR") {
            incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(SYNTAX.into());
    }
    if nx && xx {
        return Err("ERR XX and NX options at the same time are not compatible".into());
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible".into());
    }
    if incr && pairs.len() > 2 {
        return Err("ERR INCR option supports a single increment-element pair".into());
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for p in pairs.chunks_exact(2) {
        scores.push(parse_float(p[0]).ok_or(CmdError::Static(NOT_FLOAT))?);
    }
    let (db, out, now) = ctx.split();
    if xx && db.peek(args[1], now).is_none() {
        // Nothing to update and nothing may be created.
        if incr {
            out.null();
        } else {
            out.int(0);
        }
        return Ok(());
    }
    let z = create(db, args[1], now)?;
    let (mut added, mut changed) = (0, 0);
    let mut incr_result = None;
    for (p, &score) in pairs.chunks_exact(2).zip(&scores) {
        let m = p[1];
        let cur = z.dict.get(m).copied();
        match cur {
            None => {
                if xx {
                    continue;
                }
                z.insert(m, score);
                added += 1;
                incr_result = Some(score);
            }
            Some(old) => {
                if nx {
                    continue;
                }
                let new = if incr { old + score } else { score };
                if new.is_nan() {
                    // Only INCR (one pair, on an existing member) gets here: nothing changed.
                    return Err("ERR resulting score is not a number (NaN)".into());
                }
                if (gt && new <= old) || (lt && new >= old) {
                    continue;
                }
                if new != old {
                    z.insert(m, new);
                    changed += 1;
                }
                incr_result = Some(new);
            }
        }
    }
    // Only a change is a write (WATCH, blocked poppers), as Redis signals it.
    if added + changed > 0 {
        db.modified(args[1]);
    }
    if incr {
        match incr_result {
            Some(s) => out.double(s),
            None => out.null(),
        }
    } else {
        out.int(if ch { added + changed } else { added });
    }
    Ok(())
}

/// ZINCRBY key increment member
pub fn zincrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let by = parse_float(args[2]).ok_or(CmdError::Static(NOT_FLOAT))?;
    let (db, out, now) = ctx.split();
    let z = create(db, args[1], now)?;
    let new = z.dict.get(args[3]).copied().unwrap_or(0.0) + by;
    if new.is_nan() {
        // Only an existing member (`inf` plus `-inf`) gets here: nothing changed.
        return Err("ERR resulting score is not a number (NaN)".into());
    }
    if z.insert(args[3], new) != Some(new) {
        db.modified(args[1]);
    }
    out.double(new);
    Ok(())
}

/// ZSCORE key member
pub fn zscore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    match read(db, args[1], now)?.and_then(|z| z.dict.get(args[2])) {
        Some(&s) => out.double(s),
        None => out.null(),
    }
    Ok(())
}

/// ZMSCORE key member [member ...]
pub fn zmscore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let z = read(db, args[1], now)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        match z.and_then(|z| z.dict.get(*m)) {
            Some(&s) => out.double(s),
            None => out.null(),
        }
    }
    Ok(())
}

/// ZREM key member [member ...]
pub fn zrem(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let Some(z) = existing_mut(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let n = args[2..].iter().filter(|m| z.remove(m)).count();
    if n > 0 {
        db.modified(args[1]);
    }
    out.int(n as i64);
    Ok(())
}

/// ZCARD key
pub fn zcard(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    out.int(read(db, args[1], now)?.map_or(0, ZSet::len) as i64);
    Ok(())
}

/// A score interval.
#[derive(Debug, Clone, Copy)]
struct ScoreRange {
    min: f64,
    min_ex: bool,
    max: f64,
    max_ex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self, CmdError> {
        let one = |a: &[u8]| -> Option<(f64, bool)> {
            match a.strip_prefix(b"(") {
                Some(rest) => Some((parse_float(rest)?, true)),
                None => Some((parse_float(a)?, false)),
            }
        };
        let err = || CmdError::Static("ERR min or max is not a float");
        let (min, min_ex) = one(min).ok_or_else(err)?;
        let (max, max_ex) = one(max).ok_or_else(err)?;
        Ok(Self {
            min,
            min_ex,
            max,
            max_ex,
        })
    }

    fn above_min(&self, s: f64) -> bool {
        if self.min_ex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    fn below_max(&self, s: f64) -> bool {
        if self.max_ex {
            s < self.max
        } else {
            s <= self.max
        }
    }
}

/// One end of a lexicographic interval: `-`, `+`, `[x` or `(x`.
#[derive(Debug, Clone, Copy)]
enum Lex<'a> {
    Neg,
    Pos,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

/// A lexicographic interval.
#[derive(Debug, Clone, Copy)]
struct LexRange<'a> {
    min: Lex<'a>,
    max: Lex<'a>,
}

impl<'a> LexRange<'a> {
    fn parse(min: &'a [u8], max: &'a [u8]) -> Result<Self, CmdError> {
        fn one(a: &[u8]) -> Option<Lex<'_>> {
            match a.first()? {
                b'-' if a.len() == 1 => Some(Lex::Neg),
                b'+' if a.len() == 1 => Some(Lex::Pos),
                b'[' => Some(Lex::Incl(&a[1..])),
                b'(' => Some(Lex::Excl(&a[1..])),
                _ => None,
            }
        }
        let err = || CmdError::Static("ERR min or max not valid string range item");
        Ok(Self {
            min: one(min).ok_or_else(err)?,
            max: one(max).ok_or_else(err)?,
        })
    }
}

impl LexRange<'_> {
    fn gte_min(&self, m: &[u8]) -> bool {
        match self.min {
            Lex::Neg => true,
            Lex::Pos => false,
            Lex::Incl(x) => m >= x,
            Lex::Excl(x) => m > x,
        }
    }

    fn lte_max(&self, m: &[u8]) -> bool {
        match self.max {
            Lex::Pos => true,
            Lex::Neg => false,
            Lex::Incl(x) => m <= x,
            Lex::Excl(x) => m < x,
        }
    }
}

/// A range of the skiplist by score or by member: the first and last nodes inside it, found
/// in O(log n) each (Redis's `zslNthInRange`/`zslNthInLexRange` walk from these).
enum Span<'a> {
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

impl Span<'_> {
    fn lower(&self, s: f64, m: &[u8]) -> bool {
        match self {
            Span::Score(r) => r.above_min(s),
            Span::Lex(r) => r.gte_min(m),
        }
    }

    fn upper(&self, s: f64, m: &[u8]) -> bool {
        match self {
            Span::Score(r) => r.below_max(s),
            Span::Lex(r) => r.lte_max(m),
        }
    }

    /// First node inside the range (ascending), or the last one when `rev`.
    fn start(&self, z: &ZSet, rev: bool) -> Option<Pos> {
        if rev {
            let p = z.list.last_where(|s, m| self.upper(s, m))?;
            let (s, m) = z.list.get(p);
            self.lower(s, m).then_some(p)
        } else {
            let p = z.list.first_where(|s, m| self.lower(s, m))?;
            let (s, m) = z.list.get(p);
            self.upper(s, m).then_some(p)
        }
    }

    /// Members inside the range from its start, in the walk direction.
    fn walk<'z>(&'z self, z: &'z ZSet, rev: bool) -> impl Iterator<Item = (f64, &'z Bytes)> + 'z {
        z.list
            .walk(self.start(z, rev), rev)
            .take_while(move |(s, m)| {
                if rev {
                    self.lower(*s, m)
                } else {
                    self.upper(*s, m)
                }
            })
    }

    /// Number of members inside the range, from two rank lookups.
    fn count(&self, z: &ZSet) -> usize {
        let (Some(a), Some(b)) = (self.start(z, false), self.start(z, true)) else {
            return 0;
        };
        let rank = |p| {
            let (s, m) = z.list.get(p);
            z.list.rank(s, m).unwrap_or(0)
        };
        let (ra, rb) = (rank(a), rank(b));
        if rb >= ra { rb - ra + 1 } else { 0 }
    }
}

/// ZCOUNT key min max
pub fn zcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let r = Span::Score(ScoreRange::parse(args[2], args[3])?);
    let (db, out, now) = ctx.split();
    let n = read(db, args[1], now)?.map_or(0, |z| r.count(z));
    out.int(n as i64);
    Ok(())
}

/// ZLEXCOUNT key min max
pub fn zlexcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let r = Span::Lex(LexRange::parse(args[2], args[3])?);
    let (db, out, now) = ctx.split();
    let n = read(db, args[1], now)?.map_or(0, |z| r.count(z));
    out.int(n as i64);
    Ok(())
}

/// Members at ranks `start..=end` (already normalized), ascending or from the top when `rev`.
fn by_rank(z: &ZSet, start: usize, end: usize, rev: bool) -> impl Iterator<Item = (f64, &Bytes)> {
    let first = if rev {
        z.len()
            .checked_sub(1 + start)
            .and_then(|r| z.list.at_rank(r))
    } else {
        z.list.at_rank(start)
    };
    z.list.walk(first, rev).take(end + 1 - start)
}

#[derive(Clone, Copy, PartialEq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// ZRANGE and its variants, ZRANGESTORE.
pub fn zrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
    let store = name == "zrangestore";
    let (dst, src, at) = if store {
        (Some(args[1]), args[2], 3)
    } else {
        (None, args[1], 2)
    };
    let (mut kind, mut rev) = match name.as_str() {
        "zrevrange" => (Some(RangeKind::Rank), Some(true)),
        "zrangebyscore" => (Some(RangeKind::Score), Some(false)),
        "zrevrangebyscore" => (Some(RangeKind::Score), Some(true)),
        "zrangebylex" => (Some(RangeKind::Lex), Some(false)),
        "zrevrangebylex" => (Some(RangeKind::Lex), Some(true)),
        _ => (None, None),
    };
    let (mut withscores, mut limit) = (false, None::<(i64, i64)>);
    let mut i = at + 2;
    while i < args.len() {
        let o = args[i];
        let left = args.len() - i - 1;
        if !store && eq_ic(o, "WITHSCORES") {
            withscores = true;
        } else if eq_ic(o, "LIMIT") && left >= 2 {
            limit = Some((int_arg(args[i + 1])?, int_arg(args[i + 2])?));
            i += 2;
        } else if rev.is_none() && eq_ic(o, "REV") {
            rev = Some(true);
        } else if kind.is_none() && eq_ic(o, "BYLEX") {
            kind = Some(RangeKind::Lex);
        } else if kind.is_none() && eq_ic(o, "BYSCORE") {
            kind = Some(RangeKind::Score);
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    let kind = kind.unwrap_or(RangeKind::Rank);
    let rev = rev.unwrap_or(false);
    if limit.is_some() && kind == RangeKind::Rank {
        return Err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
                .into(),
        );
    }
    if withscores && kind == RangeKind::Lex {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX".into());
    }
    // For the REV forms of score and lex ranges the first bound is the maximum.
    let (lo, hi) = if rev && kind != RangeKind::Rank {
        (args[at + 1], args[at])
    } else {
        (args[at], args[at + 1])
    };
    let mut rank_range = (0, 0);
    let span = match kind {
        RangeKind::Rank => {
            rank_range = (int_arg(lo)?, int_arg(hi)?);
            None
        }
        RangeKind::Score => Some(Span::Score(ScoreRange::parse(lo, hi)?)),
        RangeKind::Lex => Some(Span::Lex(LexRange::parse(lo, hi)?)),
    };
    // A negative offset yields nothing; a negative count means "all the rest".
    let (off, cnt) = match limit {
        Some((o, _)) if o < 0 => (0, 0),
        Some((o, c)) => (o as usize, usize::try_from(c).unwrap_or(usize::MAX)),
        None => (0, usize::MAX),
    };
    let (db, out, now) = ctx.split();
    let z = if store {
        match db.peek(src, now).map(|e| &e.value) {
            None => None,
            Some(Value::ZSet(z)) => Some(&**z),
            Some(_) => return Err(WRONGTYPE.into()),
        }
    } else {
        read(db, src, now)?
    };
    let mut result: Vec<(Bytes, f64)> = Vec::new();
    if let Some(z) = z {
        match &span {
            None => {
                if let Some((s, e)) = norm_range(rank_range.0, rank_range.1, z.len()) {
                    result.extend(by_rank(z, s, e, rev).map(|(s, m)| (m.clone(), s)));
                }
            }
            Some(span) => {
                result.extend(
                    span.walk(z, rev)
                        .skip(off)
                        .take(cnt)
                        .map(|(s, m)| (m.clone(), s)),
                );
            }
        }
    }
    if let Some(dst) = dst {
        let n = result.len();
        if result.is_empty() {
            db.remove(dst);
            db.modified(dst);
        } else {
            db.insert(dst, Value::ZSet(Box::new(from_pairs(result))), 0, now);
        }
        out.int(n as i64);
        return Ok(());
    }
    reply_members(out, &result, withscores);
    Ok(())
}

/// A sorted set built from (member, score) pairs.
fn from_pairs(pairs: Vec<(Bytes, f64)>) -> ZSet {
    let mut z = ZSet::default();
    for (m, s) in pairs {
        z.insert(&m, s);
    }
    z
}

/// An array of members, with their scores (flat in RESP2, `[m, s]` pairs in RESP3).
fn reply_members(out: &mut Reply, items: &[(Bytes, f64)], withscores: bool) {
    out.array(if withscores && !out.resp3 {
        items.len() * 2
    } else {
        items.len()
    });
    for (m, s) in items {
        if withscores {
            member_score(out, m, *s, true);
        } else {
            out.bulk(m);
        }
    }
}

/// ZRANK / ZREVRANK key member
pub fn zrank(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let rev = args[0].len() == 8;
    let (db, out, now) = ctx.split();
    let found = read(db, args[1], now)?.and_then(|z| {
        let r = z.rank(args[2])?;
        Some(if rev { z.len() - 1 - r } else { r })
    });
    match found {
        None => out.null(),
        Some(r) => out.int(r as i64),
    }
    Ok(())
}

fn pop_n(z: &mut ZSet, max: bool, n: usize) -> Vec<(Bytes, f64)> {
    let mut res = Vec::with_capacity(n.min(z.len()));
    for _ in 0..n {
        let end = if max { z.list.last() } else { z.list.first() };
        let Some((s, m)) = end.map(|p| {
            let (s, m) = z.list.get(p);
            (s, m.clone())
        }) else {
            break;
        };
        z.remove(&m);
        res.push((m, s));
    }
    res
}

/// The first of `keys` holding a sorted set. A wrong type is an error when the command is
/// first run, as Redis checks each key until it finds one; a client woken from blocking skips
/// it and keeps waiting, as Redis serves blocked clients only from keys of the right type.
fn first_zset(
    db: &mut Db,
    keys: &[&[u8]],
    now: u64,
    woken: bool,
) -> Result<Option<usize>, CmdError> {
    for (i, k) in keys.iter().enumerate() {
        match db.peek(k, now).map(|e| &e.value) {
            None => continue,
            Some(Value::ZSet(z)) if z.is_empty() => continue,
            Some(Value::ZSet(_)) => return Ok(Some(i)),
            Some(_) if woken => continue,
            Some(_) => return Err(WRONGTYPE.into()),
        }
    }
    Ok(None)
}

/// ZPOPMIN / ZPOPMAX key [count]
pub fn zpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = eq_ic(args[0], "zpopmax");
    if args.len() > 3 {
        return Err(SYNTAX.into());
    }
    let count = match args.get(2) {
        Some(c) => {
            let n = int_arg(c)?;
            if n < 0 {
                return Err(NOT_POSITIVE.into());
            }
            Some(n as usize)
        }
        None => None,
    };
    let (db, out, now) = ctx.split();
    let popped = match existing_mut(db, args[1], now)? {
        None => Vec::new(),
        Some(z) => pop_n(z, max, count.unwrap_or(1)),
    };
    if !popped.is_empty() {
        db.modified(args[1]);
    }
    let nested = count.is_some() && out.resp3;
    out.array(if nested {
        popped.len()
    } else {
        popped.len() * 2
    });
    for (m, s) in &popped {
        member_score(out, m, *s, nested);
    }
    Ok(())
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout
pub fn bzpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = eq_ic(args[0], "bzpopmax");
    let timeout = timeout_ms(args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    let woken = ctx.conn.retry_deadline.is_some();
    let (db, out, now) = ctx.split();
    if let Some(i) = first_zset(db, keys, now, woken)?
        && let Some(z) = existing_mut(db, keys[i], now)?
        && let Some((m, s)) = pop_n(z, max, 1).pop()
    {
        db.modified(keys[i]);
        out.array(3);
        out.bulk(keys[i]);
        out.bulk(&m);
        out.double(s);
        return Ok(());
    }
    if !ctx.block(args, owned(keys), timeout) {
        ctx.out.null_array();
    }
    Ok(())
}

/// Parses an integer in `1..=i64::MAX`, any failure answered with `msg` (Redis's
/// `getRangeLongFromObjectOrReply` with a message).
fn positive_arg(a: &[u8], msg: &'static str) -> Result<usize, CmdError> {
    match int_arg(a) {
        Ok(n) if n >= 1 => Ok(n as usize),
        _ => Err(CmdError::Static(msg)),
    }
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count];
/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let blocking = args[0][0].eq_ignore_ascii_case(&b'b');
    let at = if blocking { 2 } else { 1 };
    let numkeys = positive_arg(args[at], "ERR numkeys should be greater than 0")?;
    // Bounded by the argument count before anything is sized from it.
    let where_at = match at.checked_add(numkeys).and_then(|n| n.checked_add(1)) {
        Some(w) if w < args.len() => w,
        _ => return Err(SYNTAX.into()),
    };
    let max = if eq_ic(args[where_at], "MAX") {
        true
    } else if eq_ic(args[where_at], "MIN") {
        false
    } else {
        return Err(SYNTAX.into());
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && eq_ic(args[j], "COUNT") && j + 1 < args.len() {
            count = Some(positive_arg(
                args[j + 1],
                "ERR count should be greater than 0",
            )?);
            j += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let count = count.unwrap_or(1);
    let timeout = if blocking {
        Some(timeout_ms(args[1])?)
    } else {
        None
    };
    let keys = &args[at + 1..where_at];
    let woken = blocking && ctx.conn.retry_deadline.is_some();
    let (db, out, now) = ctx.split();
    if let Some(i) = first_zset(db, keys, now, woken)?
        && let Some(z) = existing_mut(db, keys[i], now)?
    {
        let popped = pop_n(z, max, count);
        db.modified(keys[i]);
        out.array(2);
        out.bulk(keys[i]);
        out.array(popped.len());
        // ZMPOP nests [member, score] pairs in RESP2 too.
        for (m, s) in &popped {
            out.array(2);
            out.bulk(m);
            out.double(*s);
        }
        return Ok(());
    }
    match timeout {
        Some(t) if ctx.block(args, owned(keys), t) => {}
        _ => ctx.out.null_array(),
    }
    Ok(())
}

/// ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX key min max
pub fn zremrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
    // The range is validated before the key is looked at, as Redis does.
    let (span, ranks) = match name.as_str() {
        "zremrangebyscore" => (
            Some(Span::Score(ScoreRange::parse(args[2], args[3])?)),
            None,
        ),
        "zremrangebylex" => (Some(Span::Lex(LexRange::parse(args[2], args[3])?)), None),
        _ => (None, Some((int_arg(args[2])?, int_arg(args[3])?))),
    };
    let (db, out, now) = ctx.split();
    let Some(z) = read(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let victims: Vec<Bytes> = match (&span, ranks) {
        (Some(span), _) => span.walk(z, false).map(|(_, m)| m.clone()).collect(),
        (None, Some((s, e))) => match norm_range(s, e, z.len()) {
            Some((s, e)) => by_rank(z, s, e, false).map(|(_, m)| m.clone()).collect(),
            None => Vec::new(),
        },
        (None, None) => Vec::new(),
    };
    if !victims.is_empty()
        && let Some(z) = existing_mut(db, args[1], now)?
    {
        for m in &victims {
            z.remove(m);
        }
        db.modified(args[1]);
    }
    out.int(victims.len() as i64);
    Ok(())
}

/// Most picks ZRANDMEMBER answers for a negative count (Redis streams them until the client's
/// output limit; here the reply is built in memory first, so it is bounded).
const RANDMEMBER_MAX: u64 = 10_000_000;

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let count = match args.get(2) {
        Some(c) => {
            let n = int_arg(c)?;
            if n == i64::MIN {
                return Err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807".into());
            }
            Some(n)
        }
        None => None,
    };
    let withscores = match args.len() {
        2 | 3 => false,
        4 if eq_ic(args[3], "WITHSCORES") => true,
        _ => return Err(SYNTAX.into()),
    };
    if let Some(n) = count
        && withscores
        && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n)
    {
        return Err("ERR value is out of range".into());
    }
    let (db, out, now) = ctx.split();
    let Some(z) = read(db, args[1], now)? else {
        match count {
            None => out.null(),
            Some(_) => out.array(0),
        }
        return Ok(());
    };
    // A member at a random rank: O(log n) through the skiplist's spans.
    let at = |r: usize| {
        let p = z.list.at_rank(r).expect("rank below the length");
        let (s, m) = z.list.get(p);
        (m, s)
    };
    let Some(count) = count else {
        out.bulk(at(fastrand::usize(..z.len())).0);
        return Ok(());
    };
    let len = z.len();
    let items: Vec<(&Bytes, f64)> = if count < 0 {
        // With repetition: independent picks.
        let n = count.unsigned_abs().min(RANDMEMBER_MAX) as usize;
        (0..n).map(|_| at(fastrand::usize(..len))).collect()
    } else if count as u64 >= len as u64 {
        // Asking for at least the whole set returns it in order, as Redis does.
        z.list.iter().map(|(s, m)| (m, s)).collect()
    } else if (count as usize) * 3 > len {
        // Most of the set: shuffle all ranks and keep `count`.
        pick_indices(len, count).into_iter().map(at).collect()
    } else {
        // A few distinct members: draw ranks until `count` are distinct.
        let mut seen = hashbrown::HashSet::with_capacity(count as usize);
        let mut picks = Vec::with_capacity(count as usize);
        while picks.len() < count as usize {
            let r = fastrand::usize(..len);
            if seen.insert(r) {
                picks.push(at(r));
            }
        }
        picks
    };
    out.array(if withscores && !out.resp3 {
        items.len() * 2
    } else {
        items.len()
    });
    for (m, s) in items {
        if withscores {
            member_score(out, m, s, true);
        } else {
            out.bulk(m);
        }
    }
    Ok(())
}

/// ZSCAN key cursor [MATCH p] [COUNT n]
pub fn zscan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let o = scan_opts(args, 2, false)?;
    let (db, out, now) = ctx.split();
    let items: Vec<(&Bytes, f64)> = read(db, args[1], now)?
        .map(|z| {
            z.dict
                .iter()
                .filter(|(m, _)| o.pattern.is_none_or(|p| glob_match(p, m, false)))
                .map(|(m, s)| (m, *s))
                .collect()
        })
        .unwrap_or_default();
    // The whole set in one step (cursor 0), as Redis does for small sets.
    out.array(2);
    out.bulk(b"0");
    out.array(items.len() * 2);
    let mut tmp = [0u8; 32];
    for (m, s) in items {
        out.bulk(m);
        out.bulk(crate::reply::fmt_double(s, &mut tmp));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Redis's `zunionInterAggregate`: `inf + -inf` is 0, NaN never wins a MIN/MAX.
    fn apply(self, target: &mut f64, v: f64) {
        match self {
            Aggregate::Sum => {
                *target += v;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if v < *target {
                    *target = v;
                }
            }
            Aggregate::Max => {
                if v > *target {
                    *target = v;
                }
            }
        }
    }
}

/// One input of a set operation: a sorted set, a plain set (every score 1) or nothing.
enum Src<'a> {
    None,
    Z(&'a ZSet),
    S(&'a crate::value::SetObj),
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self {
            Src::None => 0,
            Src::Z(z) => z.len(),
            Src::S(s) => s.set.len(),
        }
    }

    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Src::None => None,
            Src::Z(z) => z.score(m),
            Src::S(s) => s.set.contains(m).then_some(1.0),
        }
    }

    fn items(&self) -> Box<dyn Iterator<Item = (&Bytes, f64)> + '_> {
        match self {
            Src::None => Box::new(std::iter::empty()),
            Src::Z(z) => Box::new(z.list.iter().map(|(s, m)| (m, s))),
            Src::S(s) => Box::new(s.set.iter().map(|m| (m, 1.0))),
        }
    }
}

/// ZUNION / ZINTER / ZDIFF / ZINTERCARD and their STORE forms (Redis's
/// `zunionInterDiffGenericCommand`).
pub fn zsetop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
    let (op, store, card) = match name.as_str() {
        "zunionstore" => (SetOp::Union, true, false),
        "zinterstore" => (SetOp::Inter, true, false),
        "zdiffstore" => (SetOp::Diff, true, false),
        "zunion" => (SetOp::Union, false, false),
        "zinter" => (SetOp::Inter, false, false),
        "zintercard" => (SetOp::Inter, false, true),
        _ => (SetOp::Diff, false, false),
    };
    let at = if store { 2 } else { 1 };
    let numkeys = int_arg(args[at])?;
    if numkeys < 1 {
        return Err(format!("ERR at least 1 input key is needed for '{name}' command").into());
    }
    // Bounded by the argument count before anything is sized from it.
    if numkeys as u64 > (args.len() - at - 1) as u64 {
        return Err(SYNTAX.into());
    }
    let numkeys = numkeys as usize;
    let keys = &args[at + 1..at + 1 + numkeys];
    let (db, out, now) = ctx.split();
    // Types are checked before the options are parsed, as Redis does.
    for k in keys {
        match db.peek(k, now).map(|e| &e.value) {
            None | Some(Value::ZSet(_)) | Some(Value::Set(_)) => {}
            Some(_) => return Err(WRONGTYPE.into()),
        }
    }
    let mut weights = vec![1.0; numkeys];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = at + 1 + numkeys;
    while j < args.len() {
        let remaining = args.len() - j;
        let o = args[j];
        if op != SetOp::Diff && !card && remaining > numkeys && eq_ic(o, "WEIGHTS") {
            for (w, a) in weights.iter_mut().zip(&args[j + 1..]) {
                *w = parse_float(a).ok_or(CmdError::Static("ERR weight value is not a float"))?;
            }
            j += 1 + numkeys;
        } else if op != SetOp::Diff && !card && remaining >= 2 && eq_ic(o, "AGGREGATE") {
            let a = args[j + 1];
            agg = if eq_ic(a, "SUM") {
                Aggregate::Sum
            } else if eq_ic(a, "MIN") {
                Aggregate::Min
            } else if eq_ic(a, "MAX") {
                Aggregate::Max
            } else {
                return Err(SYNTAX.into());
            };
            j += 2;
        } else if !store && !card && eq_ic(o, "WITHSCORES") {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && eq_ic(o, "LIMIT") {
            limit = match int_arg(args[j + 1]) {
                Ok(n) if n >= 0 => n as usize,
                _ => return Err("ERR LIMIT can't be negative".into()),
            };
            j += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let mut srcs: Vec<(Src<'_>, f64)> = Vec::with_capacity(numkeys);
    for (k, w) in keys.iter().zip(&weights) {
        let src = match db.peek_ref(k, now).map(|e| &e.value) {
            Some(Value::ZSet(z)) => Src::Z(z),
            Some(Value::Set(s)) => Src::S(s),
            _ => Src::None,
        };
        srcs.push((src, *w));
    }
    let mut result: Vec<(Bytes, f64)> = Vec::new();
    let mut cardinality = 0usize;
    match op {
        SetOp::Inter => {
            // Smallest input first: it bounds the work (a stable sort, like Redis's qsort on
            // cardinality up to ties).
            srcs.sort_by_key(|(s, _)| s.len());
            let (first, w0) = &srcs[0];
            for (m, s) in first.items() {
                let mut score = w0 * s;
                if score.is_nan() {
                    score = 0.0;
                }
                let mut all = true;
                for (src, w) in &srcs[1..] {
                    match src.score(m) {
                        Some(v) => agg.apply(&mut score, v * w),
                        None => {
                            all = false;
                            break;
                        }
                    }
                }
                if !all {
                    continue;
                }
                if card {
                    cardinality += 1;
                    if limit > 0 && cardinality >= limit {
                        break;
                    }
                } else {
                    result.push((m.clone(), score));
                }
            }
        }
        SetOp::Union => {
            let mut acc: hashbrown::HashMap<&Bytes, f64> = hashbrown::HashMap::new();
            for (src, w) in &srcs {
                for (m, s) in src.items() {
                    let mut score = w * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(cur) => agg.apply(cur, score),
                        None => {
                            acc.insert(m, score);
                        }
                    }
                }
            }
            result = acc.into_iter().map(|(m, s)| (m.clone(), s)).collect();
        }
        SetOp::Diff => {
            let (first, _) = &srcs[0];
            for (m, s) in first.items() {
                if srcs[1..].iter().all(|(src, _)| src.score(m).is_none()) {
                    result.push((m.clone(), s));
                }
            }
        }
    }
    if card {
        out.int(cardinality as i64);
        return Ok(());
    }
    let z = from_pairs(result);
    if store {
        let n = z.len();
        if n == 0 {
            db.remove(args[1]);
            db.modified(args[1]);
        } else {
            db.insert(args[1], Value::ZSet(Box::new(z)), 0, now);
        }
        out.int(n as i64);
        return Ok(());
    }
    let items: Vec<(Bytes, f64)> = z.list.iter().map(|(s, m)| (m.clone(), s)).collect();
    reply_members(out, &items, withscores);
    Ok(())
}

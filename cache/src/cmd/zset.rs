//! Sorted set commands.

use std::ops::Bound;

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
use crate::value::{Bytes, Score, Value, ZSet};

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
        match db.peek(args[1], now) {
            _ if incr => out.null(),
            _ => out.int(0),
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
                    db.modified(args[1]);
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
    db.modified(args[1]);
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
        db.modified(args[1]);
        return Err("ERR resulting score is not a number (NaN)".into());
    }
    z.insert(args[3], new);
    db.modified(args[1]);
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
    db.modified(args[1]);
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

    fn contains(&self, m: &[u8]) -> bool {
        let above = match self.min {
            Lex::Neg => true,
            Lex::Pos => false,
            Lex::Incl(x) => m >= x,
            Lex::Excl(x) => m > x,
        };
        let below = match self.max {
            Lex::Pos => true,
            Lex::Neg => false,
            Lex::Incl(x) => m <= x,
            Lex::Excl(x) => m < x,
        };
        above && below
    }
}

/// ZCOUNT key min max
pub fn zcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let r = ScoreRange::parse(args[2], args[3])?;
    let (db, out, now) = ctx.split();
    let n = read(db, args[1], now)?.map_or(0, |z| by_score(z, &r, false).count());
    out.int(n as i64);
    Ok(())
}

/// ZLEXCOUNT key min max
pub fn zlexcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let r = LexRange::parse(args[2], args[3])?;
    let (db, out, now) = ctx.split();
    let n =
        read(db, args[1], now)?.map_or(0, |z| z.tree.iter().filter(|(_, m)| r.contains(m)).count());
    out.int(n as i64);
    Ok(())
}

/// Members with scores in `r`, ascending or descending, using the ordered tree's bounds.
fn by_score<'z>(
    z: &'z ZSet,
    r: &ScoreRange,
    rev: bool,
) -> Box<dyn Iterator<Item = (f64, &'z Bytes)> + 'z> {
    let lo: Bound<(Score, Bytes)> = if r.min == f64::NEG_INFINITY && !r.min_ex {
        Bound::Unbounded
    } else {
        Bound::Included((Score(r.min), Bytes::default()))
    };
    let r = *r;
    if r.min > r.max {
        return Box::new(std::iter::empty());
    }
    let it = z
        .tree
        .range((lo, Bound::Unbounded))
        .skip_while(move |(s, _)| !r.above_min(s.0))
        .take_while(move |(s, _)| r.below_max(s.0))
        .map(|(s, m)| (s.0, m));
    if rev {
        let v: Vec<_> = it.collect();
        Box::new(v.into_iter().rev())
    } else {
        Box::new(it)
    }
}

enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// ZRANGE and its variants, ZRANGESTORE.
pub fn zrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
    let store = name == "zrangestore";
    #[allow(clippy::type_complexity)]
    let (dst, src, a, b, opts_at): (Option<&[u8]>, &[u8], &[u8], &[u8], usize) = if store {
        (Some(args[1]), args[2], args[3], args[4], 5)
    } else {
        (None, args[1], args[2], args[3], 4)
    };
    let (mut kind, mut rev) = match name.as_str() {
        "zrevrange" => (RangeKind::Rank, true),
        "zrangebyscore" => (RangeKind::Score, false),
        "zrevrangebyscore" => (RangeKind::Score, true),
        "zrangebylex" => (RangeKind::Lex, false),
        "zrevrangebylex" => (RangeKind::Lex, true),
        _ => (RangeKind::Rank, false),
    };
    let generic = name == "zrange" || store;
    let (mut withscores, mut limit): (bool, Option<(i64, i64)>) = (false, None);
    let mut i = opts_at;
    while i < args.len() {
        let o = args[i];
        if eq_ic(o, "WITHSCORES") && !store && !matches!(kind, RangeKind::Lex)
            || eq_ic(o, "WITHSCORES") && !store && generic
        {
            withscores = true;
        } else if eq_ic(o, "LIMIT") && i + 2 < args.len() {
            limit = Some((int_arg(args[i + 1])?, int_arg(args[i + 2])?));
            i += 2;
        } else if generic && eq_ic(o, "BYSCORE") {
            kind = RangeKind::Score;
        } else if generic && eq_ic(o, "BYLEX") {
            kind = RangeKind::Lex;
        } else if generic && eq_ic(o, "REV") {
            rev = true;
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    if limit.is_some() && matches!(kind, RangeKind::Rank) {
        return Err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
                .into(),
        );
    }
    if withscores && matches!(kind, RangeKind::Lex) {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX".into());
    }
    // For the REV forms the first bound is the maximum.
    let (lo, hi) = if rev && !matches!(kind, RangeKind::Rank) {
        (b, a)
    } else {
        (a, b)
    };
    let (off, cnt) = match limit {
        Some((o, c)) => (o, if c < 0 { usize::MAX } else { c as usize }),
        None => (0, usize::MAX),
    };
    let (db, out, now) = ctx.split();
    let mut result: Vec<(Bytes, f64)> = Vec::new();
    let z = if store {
        match db.peek(src, now).map(|e| &e.value) {
            None => None,
            Some(Value::ZSet(z)) => Some(&**z),
            Some(_) => return Err(WRONGTYPE.into()),
        }
    } else {
        read(db, src, now)?
    };
    let skip_take = |it: &mut dyn Iterator<Item = (f64, &Bytes)>,
                     result: &mut Vec<(Bytes, f64)>| {
        if off < 0 {
            return;
        }
        for (s, m) in it.skip(off as usize).take(cnt) {
            result.push((m.clone(), s));
        }
    };
    match kind {
        RangeKind::Rank => {
            let (start, stop) = (int_arg(lo)?, int_arg(hi)?);
            if let Some(z) = z
                && let Some((s, e)) = norm_range(start, stop, z.len())
            {
                let n = e - s + 1;
                if rev {
                    for (sc, m) in z.tree.iter().rev().skip(s).take(n) {
                        result.push((m.clone(), sc.0));
                    }
                } else {
                    for (sc, m) in z.tree.iter().skip(s).take(n) {
                        result.push((m.clone(), sc.0));
                    }
                }
            }
        }
        RangeKind::Score => {
            let r = ScoreRange::parse(lo, hi)?;
            if let Some(z) = z {
                skip_take(&mut by_score(z, &r, rev), &mut result);
            }
        }
        RangeKind::Lex => {
            let r = LexRange::parse(lo, hi)?;
            if let Some(z) = z {
                let mut it: Box<dyn Iterator<Item = (f64, &Bytes)>> = if rev {
                    Box::new(
                        z.tree
                            .iter()
                            .rev()
                            .filter(|(_, m)| r.contains(m))
                            .map(|(s, m)| (s.0, m)),
                    )
                } else {
                    Box::new(
                        z.tree
                            .iter()
                            .filter(|(_, m)| r.contains(m))
                            .map(|(s, m)| (s.0, m)),
                    )
                };
                skip_take(&mut it, &mut result);
            }
        }
    }
    if let Some(dst) = dst {
        let n = result.len();
        if result.is_empty() {
            db.remove(dst);
        } else {
            let mut nz = ZSet::default();
            for (m, s) in &result {
                nz.insert(m, *s);
            }
            db.insert(dst, Value::ZSet(Box::new(nz)), 0, now);
        }
        out.int(n as i64);
        return Ok(());
    }
    if withscores && !out.resp3 {
        out.array(result.len() * 2);
    } else {
        out.array(result.len());
    }
    for (m, s) in &result {
        if withscores {
            member_score(out, m, *s, true);
        } else {
            out.bulk(m);
        }
    }
    Ok(())
}

/// ZRANK / ZREVRANK key member [WITHSCORE]
pub fn zrank(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let rev = args[0].len() == 8;
    let withscore = match args.len() {
        3 => false,
        4 if eq_ic(args[3], "WITHSCORE") => true,
        4 => return Err(SYNTAX.into()),
        _ => return Err(super::arity_error(if rev { "zrevrank" } else { "zrank" })),
    };
    let (db, out, now) = ctx.split();
    let found = read(db, args[1], now)?.and_then(|z| {
        let r = z.rank(args[2])?;
        let r = if rev { z.len() - 1 - r } else { r };
        Some((r, z.dict[args[2]]))
    });
    match (found, withscore) {
        (None, false) => out.null(),
        (None, true) => out.null_array(),
        (Some((r, _)), false) => out.int(r as i64),
        (Some((r, s)), true) => {
            out.array(2);
            out.int(r as i64);
            out.double(s);
        }
    }
    Ok(())
}

fn pop_n(z: &mut ZSet, max: bool, n: usize) -> Vec<(Bytes, f64)> {
    let mut res = Vec::with_capacity(n.min(z.len()));
    for _ in 0..n {
        let first = if max {
            z.tree.iter().next_back()
        } else {
            z.tree.iter().next()
        };
        let Some((s, m)) = first.map(|(s, m)| (s.0, m.clone())) else {
            break;
        };
        z.remove(&m);
        res.push((m, s));
    }
    res
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
    db.modified(args[1]);
    let nested = count.is_some();
    if nested && out.resp3 {
        out.array(popped.len());
    } else {
        out.array(popped.len() * 2);
    }
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
    let (db, out, now) = ctx.split();
    for k in keys {
        if let Some(z) = existing_mut(db, k, now)?
            && let Some((m, s)) = pop_n(z, max, 1).pop()
        {
            db.modified(k);
            out.array(3);
            out.bulk(k);
            out.bulk(&m);
            out.double(s);
            return Ok(());
        }
    }
    if !ctx.block(args, owned(keys), timeout) {
        ctx.out.null_array();
    }
    Ok(())
}

/// ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX key min max
pub fn zremrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
    let (db, out, now) = ctx.split();
    let victims: Vec<Bytes> = {
        let z = match db.peek(args[1], now).map(|e| &e.value) {
            None => {
                // Still validate the range arguments, as Redis does.
                match name.as_str() {
                    "zremrangebyscore" => {
                        ScoreRange::parse(args[2], args[3])?;
                    }
                    "zremrangebylex" => {
                        LexRange::parse(args[2], args[3])?;
                    }
                    _ => {
                        int_arg(args[2])?;
                        int_arg(args[3])?;
                    }
                }
                out.int(0);
                return Ok(());
            }
            Some(Value::ZSet(z)) => z,
            Some(_) => return Err(WRONGTYPE.into()),
        };
        match name.as_str() {
            "zremrangebyscore" => {
                let r = ScoreRange::parse(args[2], args[3])?;
                by_score(z, &r, false).map(|(_, m)| m.clone()).collect()
            }
            "zremrangebylex" => {
                let r = LexRange::parse(args[2], args[3])?;
                z.tree
                    .iter()
                    .filter(|(_, m)| r.contains(m))
                    .map(|(_, m)| m.clone())
                    .collect()
            }
            _ => {
                let (s, e) = (int_arg(args[2])?, int_arg(args[3])?);
                match norm_range(s, e, z.len()) {
                    Some((s, e)) => z
                        .tree
                        .iter()
                        .skip(s)
                        .take(e - s + 1)
                        .map(|(_, m)| m.clone())
                        .collect(),
                    None => Vec::new(),
                }
            }
        }
    };
    if let Some(z) = existing_mut(db, args[1], now)? {
        for m in &victims {
            z.remove(m);
        }
    }
    db.modified(args[1]);
    out.int(victims.len() as i64);
    Ok(())
}

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let count = match args.get(2) {
        Some(c) => Some(int_arg(c)?),
        None => None,
    };
    let withscores = match args.len() {
        2 | 3 => false,
        4 if eq_ic(args[3], "WITHSCORES") => true,
        _ => return Err(SYNTAX.into()),
    };
    let (db, out, now) = ctx.split();
    let items: Vec<(&Bytes, f64)> = read(db, args[1], now)?
        .map(|z| z.dict.iter().map(|(m, s)| (m, *s)).collect())
        .unwrap_or_default();
    let Some(count) = count else {
        if items.is_empty() {
            out.null();
        } else {
            out.bulk(items[fastrand::usize(..items.len())].0);
        }
        return Ok(());
    };
    let picks = pick_indices(items.len(), count);
    if withscores && !out.resp3 {
        out.array(picks.len() * 2);
    } else {
        out.array(picks.len());
    }
    for i in picks {
        if withscores {
            member_score(out, items[i].0, items[i].1, true);
        } else {
            out.bulk(items[i].0);
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

/// ZUNIONSTORE / ZINTERSTORE dst numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
pub fn zstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let inter = eq_ic(args[0], "zinterstore");
    let numkeys = int_arg(args[2])?;
    if numkeys < 1 {
        return Err(format!(
            "ERR at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(args[0]).to_ascii_lowercase()
        )
        .into());
    }
    let numkeys = numkeys as usize;
    if 3 + numkeys > args.len() {
        return Err(SYNTAX.into());
    }
    let keys = &args[3..3 + numkeys];
    let mut weights = vec![1.0; numkeys];
    let mut agg = 0u8; // 0 sum, 1 min, 2 max
    let mut i = 3 + numkeys;
    while i < args.len() {
        if eq_ic(args[i], "WEIGHTS") && i + numkeys < args.len() {
            for (j, w) in weights.iter_mut().enumerate() {
                *w = parse_float(args[i + 1 + j])
                    .ok_or(CmdError::Static("ERR weight value is not a float"))?;
            }
            i += 1 + numkeys;
        } else if eq_ic(args[i], "AGGREGATE") && i + 1 < args.len() {
            agg = if eq_ic(args[i + 1], "SUM") {
                0
            } else if eq_ic(args[i + 1], "MIN") {
                1
            } else if eq_ic(args[i + 1], "MAX") {
                2
            } else {
                return Err(SYNTAX.into());
            };
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let (db, out, now) = ctx.split();
    let mut inputs: Vec<Vec<(Bytes, f64)>> = Vec::with_capacity(numkeys);
    for k in keys {
        let items = match db.peek(k, now).map(|e| &e.value) {
            None => Vec::new(),
            Some(Value::ZSet(z)) => z.dict.iter().map(|(m, s)| (m.clone(), *s)).collect(),
            Some(Value::Set(s)) => s.set.iter().map(|m| (m.clone(), 1.0)).collect(),
            Some(_) => return Err(WRONGTYPE.into()),
        };
        inputs.push(items);
    }
    let combine = |a: f64, b: f64| -> f64 {
        match agg {
            1 => a.min(b),
            2 => a.max(b),
            _ => {
                let s = a + b;
                if s.is_nan() { 0.0 } else { s }
            }
        }
    };
    let mut acc: hashbrown::HashMap<Bytes, (f64, usize)> = hashbrown::HashMap::new();
    for (idx, items) in inputs.iter().enumerate() {
        for (m, s) in items {
            let v = s * weights[idx];
            let v = if v.is_nan() { 0.0 } else { v };
            acc.entry(m.clone())
                .and_modify(|(cur, n)| {
                    *cur = combine(*cur, v);
                    *n += 1;
                })
                .or_insert((v, 1));
        }
    }
    let mut nz = ZSet::default();
    for (m, (s, n)) in acc {
        if !inter || n == numkeys {
            nz.insert(&m, s);
        }
    }
    let n = nz.len();
    if n == 0 {
        db.remove(args[1]);
    } else {
        db.insert(args[1], Value::ZSet(Box::new(nz)), 0, now);
    }
    out.int(n as i64);
    Ok(())
}

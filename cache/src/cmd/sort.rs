//! SORT and SORT_RO over lists, sets and sorted sets, as Redis 7.0's `sort.c`: BY patterns
//! (`*` replaced by the element, `->field` reads a hash field; a pattern without `*` skips
//! sorting), GET patterns (`#` is the element itself), LIMIT, ASC/DESC, ALPHA and STORE.

use std::cmp::Ordering;

use super::geo::zs;
use super::{CmdError, CmdResult, Ctx, SYNTAX, WRONGTYPE, eq_ic, int_arg};
use crate::db::Db;
use crate::value::{Bytes, ListObj, Value};

/// Resolves a BY/GET pattern for `elem`: the string at the key the pattern names, or the field
/// of the hash it names (`key*->field`); `None` when missing or of another type.
fn lookup_pattern(db: &mut Db, pattern: &[u8], elem: &[u8], now: u64) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(elem.into());
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    // `->` after the star with a non-empty field name selects a hash field.
    let (post, field) = match after.windows(2).position(|w| w == b"->") {
        Some(f) if f + 2 < after.len() => (&after[..f], Some(&after[f + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(star + elem.len() + post.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(post);
    let e = db.get(&key, now)?;
    match (&e.value, field) {
        (Value::Hash(h), Some(f)) => h.map.get(f).cloned(),
        (Value::Str(s), None) => Some(s.as_slice().into()),
        _ => None,
    }
}

/// `strtod` on the whole string: an empty string is 0, trailing garbage or NaN is an error.
fn strtod(s: &[u8]) -> Option<f64> {
    if s.is_empty() {
        return Some(0.0);
    }
    let t = std::str::from_utf8(s).ok()?;
    let t = t.trim_start();
    let v = match t.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => t.parse::<f64>().ok()?,
    };
    if v.is_nan() { None } else { Some(v) }
}

struct Item {
    elem: Bytes,
    score: f64,
    cmp: Option<Bytes>,
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination]
pub fn sort(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    generic(ctx, args, false)
}

/// SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
pub fn sort_ro(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    generic(ctx, args, true)
}

/// Whether `option` (`BY` or `GET`) may use a pattern: patterns name keys of any slot, which a
/// cluster of several members refuses (as Redis Cluster does), and keys outside the user's own
/// patterns, which need read access to every key (as Redis's ACL requires).
fn patterns_allowed(ctx: &Ctx<'_>, cluster: bool, option: &str) -> Result<(), CmdError> {
    if cluster {
        return Err(CmdError::Owned(format!(
            "ERR {option} option of SORT denied in Cluster mode."
        )));
    }
    if !crate::acl::reads_every_key(ctx) {
        return Err(CmdError::Owned(format!(
            "ERR {option} option of SORT denied due to insufficient ACL permissions."
        )));
    }
    Ok(())
}

fn generic(ctx: &mut Ctx<'_>, args: &[&[u8]], readonly: bool) -> CmdResult {
    // Patterns may name keys of any slot: refused in a cluster, as Redis Cluster does, unless
    // this node holds every slot alone.
    let cluster = ctx.shared.placement.get().is_some_and(|p| !p.alone());
    let (mut desc, mut alpha, mut dontsort) = (false, false, false);
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let mut sortby: Option<&[u8]> = None;
    let mut store: Option<&[u8]> = None;
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
            sortby = Some(args[j + 1]);
            if !args[j + 1].contains(&b'*') {
                dontsort = true;
            } else {
                patterns_allowed(ctx, cluster, "BY")?;
            }
            j += 1;
        } else if eq_ic(a, "GET") && left >= 1 {
            patterns_allowed(ctx, cluster, "GET")?;
            gets.push(args[j + 1]);
            j += 1;
        } else {
            return Err(SYNTAX.into());
        }
        j += 1;
    }
    let (db, out, now) = ctx.split();
    #[derive(PartialEq)]
    enum Kind {
        List,
        Set,
        ZSet,
    }
    // The elements, owned (patterns read other keys while they are in use).
    let (kind, mut elems): (Kind, Vec<Bytes>) = match db.get(args[1], now) {
        None => (Kind::List, Vec::new()),
        Some(e) => match &e.value {
            Value::List(l) => (Kind::List, l.items.iter().cloned().collect()),
            Value::Set(s) => (Kind::Set, s.set.iter().cloned().collect()),
            Value::ZSet(z) => (Kind::ZSet, zs::iter(z).map(|(m, _)| m.into()).collect()),
            _ => return Err(WRONGTYPE.into()),
        },
    };
    // A set has no meaningful order: when storing, sort it so the result is deterministic.
    if dontsort && kind == Kind::Set && store.is_some() {
        dontsort = false;
        alpha = true;
        sortby = None;
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
    if dontsort && kind != Kind::Set {
        // Lists and sorted sets keep their order; DESC reads it backwards.
        if desc {
            elems.reverse();
        }
    }
    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            cmp: None,
        })
        .collect();
    if !dontsort {
        let mut conv_error = false;
        for it in &mut items {
            let byval = match sortby {
                Some(p) => match lookup_pattern(db, p, &it.elem, now) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.elem.clone(),
            };
            if alpha {
                if sortby.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match strtod(&byval) {
                    Some(v) => it.score = v,
                    None => conv_error = true,
                }
            }
        }
        if conv_error {
            return Err("ERR One or more scores can't be converted into double".into());
        }
        let by = sortby.is_some();
        items.sort_by(|a, b| {
            let c = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.elem.cmp(&b.elem))
            } else if by {
                match (&a.cmp, &b.cmp) {
                    (None, None) => Ordering::Equal,
                    (None, _) => Ordering::Less,
                    (_, None) => Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.elem.cmp(&b.elem)
            };
            if desc { c.reverse() } else { c }
        });
    }
    let range: &[Item] = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &[]
    };
    match store {
        None => {
            let n = if gets.is_empty() {
                range.len()
            } else {
                gets.len() * range.len()
            };
            out.array(n);
            for it in range {
                if gets.is_empty() {
                    out.bulk(&it.elem);
                }
                for g in &gets {
                    let v = lookup_pattern(db, g, &it.elem, now);
                    out.opt_bulk(v.as_deref());
                }
            }
        }
        Some(dest) => {
            let mut list = ListObj::default();
            for it in range {
                if gets.is_empty() {
                    list.push(&it.elem, false);
                }
                for g in &gets {
                    let v = lookup_pattern(db, g, &it.elem, now).unwrap_or_default();
                    list.push_owned(v, false);
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

//! HyperLogLog commands (PFADD, PFCOUNT, PFMERGE) over string values in Redis 7.0's exact byte
//! format (`hyperloglog.c`), so a value DUMPed from Redis means the same here:
//!
//! - a 16-byte header: `HYLL`, the encoding (0 dense, 1 sparse), three zero bytes, and the
//!   cached cardinality (8 bytes little endian; the top bit set means "stale");
//! - dense: 16384 registers of 6 bits, packed from the least significant bit of each byte;
//! - sparse: run-length opcodes `00xxxxxx` (ZERO, 1-64 registers), `01xxxxxx yyyyyyyy` (XZERO,
//!   up to 16384) and `1vvvvvxx` (VAL, value 1-32 repeated 1-4 times), promoted to dense when a
//!   value exceeds 32 or the string would grow past `hll-sparse-max-bytes`.
//!
//! Every read of untrusted bytes is bounds-checked: a corrupted value yields Redis's
//! `INVALIDOBJ` error, never a panic.

use super::{CmdError, CmdResult, Ctx, WRONGTYPE};
use crate::db::Db;
use crate::value::Value;

const P: u32 = 14;
const Q: u32 = 64 - P;
const REGISTERS: usize = 1 << P;
const P_MASK: u64 = (REGISTERS - 1) as u64;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
const HDR: usize = 16;
const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
// 0.5 / ln(2), Redis's HLL_ALPHA_INF.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

const INVALID: &str = "INVALIDOBJ Corrupted HLL object detected";
const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";

/// Default `hll-sparse-max-bytes`.
pub const DEFAULT_SPARSE_MAX: usize = 3000;

/// MurmurHash64A as Redis uses it (little-endian reads on every platform).
fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4a7935bd1e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate().rev() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Register index and run length ("000...1" pattern length) of an element.
fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, 0xadc83b19);
    let index = (hash & P_MASK) as usize;
    let h = (hash >> P) | (1u64 << Q);
    (index, (h.trailing_zeros() + 1) as u8)
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = u32::from(regs.get(byte).copied().unwrap_or(0));
    let b1 = u32::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u32::from(REGISTER_MAX)) as u8
}

fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = u32::from(v);
    let m = u32::from(REGISTER_MAX);
    regs[byte] = ((u32::from(regs[byte]) & !(m << fb)) | (v << fb)) as u8;
    if let Some(b) = regs.get_mut(byte + 1) {
        *b = ((u32::from(*b) & !(m >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

/// Sets a dense register if `count` is larger; true if it changed.
fn dense_update(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set(regs, i, count);
        true
    } else {
        false
    }
}

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}
fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}
fn zero_len(b: u8) -> usize {
    usize::from(b & 0x3f) + 1
}
fn xzero_len(b: u8, b2: u8) -> usize {
    ((usize::from(b & 0x3f) << 8) | usize::from(b2)) + 1
}
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
fn val_len(b: u8) -> usize {
    usize::from(b & 0x3) + 1
}
fn val_op(v: u8, len: usize) -> u8 {
    ((v - 1) << 2) | (len as u8 - 1) | 0x80
}
fn zero_op(len: usize) -> u8 {
    (len - 1) as u8
}
fn xzero_op(len: usize) -> [u8; 2] {
    let l = len - 1;
    [((l >> 8) as u8) | 0x40, (l & 0xff) as u8]
}

/// Decodes the sparse opcodes into (register value, run length) pairs; `None` if the runs do
/// not cover exactly 16384 registers or an opcode is cut.
fn sparse_runs(ops: &[u8]) -> Option<Vec<(u8, usize)>> {
    let mut runs = Vec::new();
    let mut idx = 0usize;
    let mut p = 0;
    while p < ops.len() {
        let b = ops[p];
        if is_zero(b) {
            runs.push((0, zero_len(b)));
            idx += zero_len(b);
            p += 1;
        } else if is_xzero(b) {
            let b2 = *ops.get(p + 1)?;
            runs.push((0, xzero_len(b, b2)));
            idx += xzero_len(b, b2);
            p += 2;
        } else {
            if idx + val_len(b) > REGISTERS {
                return None;
            }
            runs.push((val_value(b), val_len(b)));
            idx += val_len(b);
            p += 1;
        }
    }
    (idx == REGISTERS).then_some(runs)
}

/// A new, empty HLL (sparse: one XZERO opcode per 16384 registers).
fn create() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    v.extend_from_slice(&xzero_op(XZERO_MAX_LEN));
    v
}

/// Redis's `isHLLObjectOrReply`: magic, encoding and dense length.
fn check(s: &[u8]) -> Result<(), CmdError> {
    if s.len() < HDR
        || &s[..4] != b"HYLL"
        || s[4] > SPARSE
        || (s[4] == DENSE && s.len() != DENSE_SIZE)
    {
        return Err(NOT_HLL.into());
    }
    Ok(())
}

fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

/// Converts a sparse HLL to dense in place (keeping magic and cached cardinality).
fn to_dense(s: &mut Vec<u8>) -> Result<(), CmdError> {
    if s[4] == DENSE {
        return Ok(());
    }
    let runs = sparse_runs(&s[HDR..]).ok_or(CmdError::Static(INVALID))?;
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(&s[..HDR]);
    d[4] = DENSE;
    let mut idx = 0;
    for (v, len) in runs {
        if v != 0 {
            for i in idx..idx + len {
                dense_set(&mut d[HDR..], i, v);
            }
        }
        idx += len;
    }
    *s = d;
    Ok(())
}

/// Redis's `hllSparseSet`: updates register `index` to `count` if larger, splitting opcodes in
/// place and promoting to dense when needed. Ok(true) if changed.
fn sparse_set(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, CmdError> {
    if count > VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let end = s.len();
    let mut p = HDR;
    let mut first = 0usize;
    let mut prev: Option<usize> = None;
    let mut span = 0usize;
    while p < end {
        let b = s[p];
        let mut oplen = 1;
        if is_zero(b) {
            span = zero_len(b);
        } else if is_val(b) {
            span = val_len(b);
        } else {
            span = xzero_len(b, s.get(p + 1).copied().unwrap_or(0));
            oplen = 2;
        }
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(INVALID.into());
    }
    let b = s[p];
    let (zero, xzero) = (is_zero(b), is_xzero(b));
    if xzero && p + 1 >= end {
        return Err(INVALID.into());
    }
    let runlen = if zero {
        zero_len(b)
    } else if xzero {
        xzero_len(b, s[p + 1])
    } else {
        val_len(b)
    };
    let mut updated_in_place = false;
    if !zero && !xzero {
        let old = val_value(b);
        if old >= count {
            return Ok(false);
        }
        if runlen == 1 {
            s[p] = val_op(count, 1);
            updated_in_place = true;
        }
    }
    if !updated_in_place && zero && runlen == 1 {
        s[p] = val_op(count, 1);
        updated_in_place = true;
    }
    let mut end = end;
    if !updated_in_place {
        // General case: split the opcode into up to three.
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        let last = first + span - 1;
        let push_zero = |seq: &mut Vec<u8>, len: usize| {
            if len > ZERO_MAX_LEN {
                seq.extend_from_slice(&xzero_op(len));
            } else {
                seq.push(zero_op(len));
            }
        };
        if zero || xzero {
            if index != first {
                push_zero(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zero(&mut seq, last - index);
            }
        } else {
            let cur = val_value(b);
            if index != first {
                seq.push(val_op(cur, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(cur, last - index));
            }
        }
        let oldlen = if xzero { 2 } else { 1 };
        if seq.len() > oldlen && s.len() + seq.len() - oldlen > max_bytes {
            return promote(s, index, count);
        }
        s.splice(p..p + oldlen, seq.iter().copied());
        end = s.len();
    }
    // Step 4: merge adjacent VAL opcodes of equal value, scanning up to 5 opcodes from prev.
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < end && scan > 0 {
        scan -= 1;
        let b = s[p];
        if is_xzero(b) {
            p += 2;
            continue;
        } else if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < end && is_val(s[p + 1]) {
            let (v1, v2) = (val_value(b), val_value(s[p + 1]));
            if v1 == v2 {
                let len = val_len(b) + val_len(s[p + 1]);
                if len <= VAL_MAX_LEN {
                    s[p + 1] = val_op(v1, len);
                    s.remove(p);
                    end -= 1;
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate(s);
    Ok(true)
}

fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, CmdError> {
    to_dense(s)?;
    Ok(dense_update(&mut s[HDR..], index, count))
}

/// Adds an element; Ok(true) if a register changed.
fn add(s: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, CmdError> {
    let (index, count) = pat_len(ele);
    match s[4] {
        DENSE => Ok(dense_update(&mut s[HDR..], index, count)),
        SPARSE => sparse_set(s, index, count, max_bytes),
        _ => Err(INVALID.into()),
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let zp = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if zp == z {
            break;
        }
    }
    z / 3.0
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let zp = z;
        z += x * y;
        y += y;
        if zp == z {
            break;
        }
    }
    z
}

/// Ertl's estimator over a register histogram, as Redis's `hllCount`.
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histo[Q as usize + 1])) / m);
    for j in (1..=Q as usize).rev() {
        z += f64::from(histo[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histo[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The registers of a valid HLL, merged into `max` (`hllMerge`).
fn merge_into(max: &mut [u8; REGISTERS], s: &[u8]) -> Result<(), CmdError> {
    if s[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(&s[HDR..], i));
        }
    } else {
        let runs = sparse_runs(&s[HDR..]).ok_or(CmdError::Static(INVALID))?;
        let mut i = 0;
        for (v, len) in runs {
            for m in &mut max[i..i + len] {
                *m = (*m).max(v);
            }
            i += len;
        }
    }
    Ok(())
}

fn count_of(s: &[u8]) -> Result<u64, CmdError> {
    let mut histo = [0u32; 64];
    if s[4] == DENSE {
        for i in 0..REGISTERS {
            histo[usize::from(dense_get(&s[HDR..], i))] += 1;
        }
    } else {
        // A sparse run longer than its registers is corrupt.
        let runs = sparse_runs(&s[HDR..]).ok_or(CmdError::Static(INVALID))?;
        for (v, len) in runs {
            histo[usize::from(v)] += len as u32;
        }
    }
    Ok(estimate(&histo))
}

fn sparse_max(ctx: &Ctx<'_>) -> usize {
    ctx.shared
        .params
        .read()
        .get("hll-sparse-max-bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SPARSE_MAX)
}

/// The string at `key` taken out for an edit (`None` if missing), checked to be an HLL.
fn take(db: &mut Db, key: &[u8], now: u64) -> Result<Option<Vec<u8>>, CmdError> {
    match db.get_mut(key, now) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Str(s) => {
                check(s)?;
                Ok(Some(std::mem::take(s).into_vec()))
            }
            _ => Err(WRONGTYPE.into()),
        },
    }
}

/// Puts an edited HLL back; `changed` signals the modification (WATCH, replication).
fn put(db: &mut Db, key: &[u8], v: Vec<u8>, existed: bool, changed: bool, now: u64) {
    if !existed {
        db.insert(key, Value::Str(v.into()), 0, now);
        return;
    }
    if let Some(e) = db.get_mut(key, now) {
        e.value = Value::Str(v.into());
    }
    if changed {
        db.modified(key);
    }
}

/// PFADD key [element ...]
pub fn pfadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max_bytes = sparse_max(ctx);
    let (db, out, now) = ctx.split();
    let (mut v, existed) = match take(db, args[1], now)? {
        Some(v) => (v, true),
        None => (create(), false),
    };
    let mut updated = !existed;
    for ele in &args[2..] {
        match add(&mut v, ele, max_bytes) {
            Ok(ch) => updated |= ch,
            Err(e) => {
                put(db, args[1], v, existed, updated, now);
                return Err(e);
            }
        }
    }
    if updated {
        invalidate(&mut v);
    }
    put(db, args[1], v, existed, updated, now);
    out.int(i64::from(updated));
    Ok(())
}

/// PFCOUNT key [key ...]
pub fn pfcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    if args.len() > 2 {
        let mut max = Box::new([0u8; REGISTERS]);
        for k in &args[1..] {
            let Some(e) = db.get(k, now) else { continue };
            let Value::Str(s) = &e.value else {
                return Err(WRONGTYPE.into());
            };
            check(s)?;
            merge_into(&mut max, s)?;
        }
        let mut histo = [0u32; 64];
        for &r in max.iter() {
            histo[usize::from(r)] += 1;
        }
        out.int(estimate(&histo) as i64);
        return Ok(());
    }
    match db.get(args[1], now) {
        None => {
            out.int(0);
            return Ok(());
        }
        Some(e) => {
            let Value::Str(s) = &e.value else {
                return Err(WRONGTYPE.into());
            };
            check(s)?;
            if s[15] & 0x80 == 0 {
                let card = u64::from_le_bytes(s[8..16].try_into().expect("8 bytes"));
                out.int(card as i64);
                return Ok(());
            }
        }
    }
    // Recompute and cache: the cached cardinality is part of the value, so this is a write.
    let Some(mut v) = take(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let card = match count_of(&v) {
        Ok(c) => c,
        Err(e) => {
            put(db, args[1], v, true, false, now);
            return Err(e);
        }
    };
    v[8..16].copy_from_slice(&card.to_le_bytes());
    put(db, args[1], v, true, true, now);
    out.int(card as i64);
    Ok(())
}

/// PFMERGE destkey [sourcekey ...]
pub fn pfmerge(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max_bytes = sparse_max(ctx);
    let (db, out, now) = ctx.split();
    let mut max = Box::new([0u8; REGISTERS]);
    let mut use_dense = false;
    for k in &args[1..] {
        let Some(e) = db.get(k, now) else { continue };
        let Value::Str(s) = &e.value else {
            return Err(WRONGTYPE.into());
        };
        check(s)?;
        use_dense |= s[4] == DENSE;
        merge_into(&mut max, s)?;
    }
    let (mut v, existed) = match take(db, args[1], now)? {
        Some(v) => (v, true),
        None => (create(), false),
    };
    if use_dense && let Err(e) = to_dense(&mut v) {
        put(db, args[1], v, existed, false, now);
        return Err(e);
    }
    for (j, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if v[4] == DENSE {
            dense_update(&mut v[HDR..], j, m);
        } else if let Err(e) = sparse_set(&mut v, j, m, max_bytes) {
            put(db, args[1], v, existed, true, now);
            return Err(e);
        }
    }
    invalidate(&mut v);
    put(db, args[1], v, existed, true, now);
    out.ok();
    Ok(())
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key
pub fn pfdebug(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = String::from_utf8_lossy(args[1]).into_owned();
    let (db, out, now) = ctx.split();
    let Some(mut v) = take(db, args[2], now)? else {
        return Err("ERR The specified key does not exist".into());
    };
    let arity = |n: usize| -> Result<(), CmdError> {
        if n == 3 {
            Ok(())
        } else {
            Err(format!("ERR Wrong number of arguments for the '{sub}' subcommand").into())
        }
    };
    let mut changed = false;
    let res = (|| -> CmdResult {
        if sub.eq_ignore_ascii_case("getreg") {
            arity(args.len())?;
            if v[4] == SPARSE {
                to_dense(&mut v)?;
                changed = true;
            }
            out.array(REGISTERS);
            for i in 0..REGISTERS {
                out.int(i64::from(dense_get(&v[HDR..], i)));
            }
        } else if sub.eq_ignore_ascii_case("decode") {
            arity(args.len())?;
            if v[4] != SPARSE {
                return Err("ERR HLL encoding is not sparse".into());
            }
            let ops = &v[HDR..];
            let mut parts: Vec<String> = Vec::new();
            let mut p = 0;
            while p < ops.len() {
                let b = ops[p];
                if is_zero(b) {
                    parts.push(format!("z:{}", zero_len(b)));
                    p += 1;
                } else if is_xzero(b) {
                    let b2 = ops.get(p + 1).copied().unwrap_or(0);
                    parts.push(format!("Z:{}", xzero_len(b, b2)));
                    p += 2;
                } else {
                    parts.push(format!("v:{},{}", val_value(b), val_len(b)));
                    p += 1;
                }
            }
            out.bulk(parts.join(" ").as_bytes());
        } else if sub.eq_ignore_ascii_case("encoding") {
            arity(args.len())?;
            out.simple(if v[4] == DENSE { "dense" } else { "sparse" });
        } else if sub.eq_ignore_ascii_case("todense") {
            arity(args.len())?;
            let conv = v[4] == SPARSE;
            if conv {
                to_dense(&mut v)?;
                changed = true;
            }
            out.int(i64::from(conv));
        } else {
            return Err(format!("ERR Unknown PFDEBUG subcommand '{sub}'").into());
        }
        Ok(())
    })();
    put(db, args[2], v, true, changed, now);
    res
}

/// PFSELFTEST: Redis's internal check of register access and of the estimator's error, dense
/// and sparse side by side.
pub fn pfselftest(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let max_bytes = sparse_max(ctx);
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = fastrand::u8(..) & REGISTER_MAX;
            dense_set(&mut regs, i, *b);
        }
        for (i, &b) in bytes.iter().enumerate() {
            let got = dense_get(&regs, i);
            if got != b {
                return Err(format!("TESTFAILED Register {i} should be {b} but is {got}").into());
            }
        }
    }
    let mut dense = create();
    to_dense(&mut dense)?;
    let mut sparse = create();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let seed = fastrand::u64(..);
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_ne_bytes();
        add(&mut dense, &ele, max_bytes)?;
        add(&mut sparse, &ele, max_bytes)?;
        if j != checkpoint {
            continue;
        }
        if j < (max_bytes / 2) as u64 && sparse[4] != SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let card = count_of(&dense)?;
        if card != count_of(&sparse)? {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint as i64 - card as i64).unsigned_abs();
        let maxerr = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if abserr > maxerr {
            return Err(
                format!("TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}").into(),
            );
        }
        checkpoint *= 10;
    }
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = create();
        let mut dense = create();
        to_dense(&mut dense).unwrap();
        for i in 0..5000u32 {
            let e = i.to_string();
            add(&mut sparse, e.as_bytes(), 1 << 20).unwrap();
            add(&mut dense, e.as_bytes(), 1 << 20).unwrap();
        }
        assert_eq!(sparse[4], SPARSE);
        assert_eq!(count_of(&sparse).unwrap(), count_of(&dense).unwrap());
        let c = count_of(&dense).unwrap() as f64;
        assert!((c - 5000.0).abs() < 5000.0 * 0.05, "{c}");
    }

    #[test]
    fn promotes_past_sparse_max_bytes() {
        let mut h = create();
        let mut i = 0u32;
        while h[4] == SPARSE {
            add(&mut h, i.to_string().as_bytes(), 300).unwrap();
            i += 1;
        }
        assert_eq!(h.len(), DENSE_SIZE);
    }
}

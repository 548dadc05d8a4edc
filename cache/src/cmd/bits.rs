//! Bitmap commands over string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
//! BITFIELD_RO, as Redis 7.0's `bitops.c` (bit 0 is the most significant bit of byte 0).

use super::{CmdError, CmdResult, Ctx, SYNTAX, WRONGTYPE, eq_ic, int_arg};
use crate::db::Db;
use crate::resp::parse_i64;
use crate::value::Value;

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// Parses a bit offset; with `bits > 0`, `#n` means `n * bits` (BITFIELD). The offset's byte
/// must lie below `proto-max-bulk-len`, checked before anything is allocated.
fn bit_offset(arg: &[u8], bits: u32, max_bulk: usize) -> Result<u64, CmdError> {
    let hash = bits > 0 && arg.first() == Some(&b'#');
    let n = parse_i64(if hash { &arg[1..] } else { arg }).ok_or(CmdError::Static(BAD_OFFSET))?;
    let n = if hash {
        n.checked_mul(i64::from(bits))
            .ok_or(CmdError::Static(BAD_OFFSET))?
    } else {
        n
    };
    if n < 0 || (n >> 3) as u64 >= max_bulk as u64 {
        return Err(BAD_OFFSET.into());
    }
    Ok(n as u64)
}

fn max_bulk(ctx: &Ctx<'_>) -> usize {
    ctx.shared.limits().max_bulk
}

/// The string at `key` taken out of the keyspace for an in-place edit, grown with zero bytes
/// so that `maxbit` is addressable; whether it was created or grown (Redis's `dirty`).
/// The caller puts it back with [`put_back`].
fn take_for_write(
    db: &mut Db,
    key: &[u8],
    maxbit: u64,
    now: u64,
) -> Result<(Vec<u8>, bool, bool), CmdError> {
    let need = (maxbit >> 3) as usize + 1;
    match db.get_mut(key, now) {
        None => Ok((vec![0; need], true, false)),
        Some(e) => match &mut e.value {
            Value::Str(s) => {
                let mut v = std::mem::take(s).into_vec();
                let grown = v.len() < need;
                if grown {
                    v.resize(need, 0);
                }
                Ok((v, grown, true))
            }
            _ => Err(WRONGTYPE.into()),
        },
    }
}

/// Stores an edited string back (keeping the TTL of an existing key).
fn put_back(db: &mut Db, key: &[u8], v: Vec<u8>, existed: bool, now: u64) {
    if existed {
        if let Some(e) = db.get_mut(key, now) {
            e.value = Value::Str(v.into());
        }
        db.modified(key);
    } else {
        db.insert(key, Value::Str(v.into()), 0, now);
    }
}

/// The string at `key` for reading (`None` if missing), or WRONGTYPE.
fn read_str<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d [u8]>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) => Ok(Some(s)),
            _ => Err(WRONGTYPE.into()),
        },
    }
}

/// SETBIT key offset value
pub fn setbit(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let off = bit_offset(args[2], 0, max_bulk(ctx))?;
    let on = parse_i64(args[3]).ok_or(CmdError::Static(BAD_BIT))?;
    if on & !1 != 0 {
        return Err(BAD_BIT.into());
    }
    let (db, out, now) = ctx.split();
    let (mut v, grown, existed) = take_for_write(db, args[1], off, now)?;
    let byte = (off >> 3) as usize;
    let mask = 1u8 << (7 - (off & 7));
    let old = v[byte] & mask != 0;
    if on == 1 {
        v[byte] |= mask;
    } else {
        v[byte] &= !mask;
    }
    if grown || old != (on == 1) || !existed {
        put_back(db, args[1], v, existed, now);
    } else if let Some(e) = db.get_mut(args[1], now) {
        // Unchanged: restore without signalling a modification (no WATCH invalidation).
        e.value = Value::Str(v.into());
    }
    out.int(i64::from(old));
    Ok(())
}

/// GETBIT key offset
pub fn getbit(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let off = bit_offset(args[2], 0, max_bulk(ctx))?;
    let (db, out, now) = ctx.split();
    let bit = match read_str(db, args[1], now)? {
        None => 0,
        Some(s) => {
            let byte = (off >> 3) as usize;
            s.get(byte).map_or(0, |b| (b >> (7 - (off & 7))) & 1)
        }
    };
    out.int(i64::from(bit));
    Ok(())
}

/// Normalizes a `start end [BIT|BYTE]` range over `len` bytes, as BITCOUNT and BITPOS do.
/// Returns byte bounds plus the masks of out-of-range bits in the first and last byte.
struct Range {
    start: i64,
    end: i64,
    first_mask: u8,
    last_mask: u8,
}

fn norm_bit_range(mut start: i64, mut end: i64, isbit: bool, len: usize) -> Range {
    let mut total = len as i64;
    if isbit {
        total <<= 3;
    }
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    if isbit && start <= end {
        first_mask = !((1u16 << (8 - (start & 7))) - 1) as u8;
        last_mask = ((1u16 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Range {
        start,
        end,
        first_mask,
        last_mask,
    }
}

fn unit_arg(a: &[u8]) -> Result<bool, CmdError> {
    if eq_ic(a, "BIT") {
        Ok(true)
    } else if eq_ic(a, "BYTE") {
        Ok(false)
    } else {
        Err(SYNTAX.into())
    }
}

fn popcount(s: &[u8]) -> u64 {
    s.iter().map(|b| u64::from(b.count_ones())).sum()
}

/// BITCOUNT key [start end [BIT|BYTE]]
pub fn bitcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let Some(s) = read_str(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let r = match args.len() {
        2 => Range {
            start: 0,
            end: s.len() as i64 - 1,
            first_mask: 0,
            last_mask: 0,
        },
        4 | 5 => {
            let start = int_arg(args[2])?;
            let end = int_arg(args[3])?;
            if start < 0 && end < 0 && start > end {
                out.int(0);
                return Ok(());
            }
            let isbit = if args.len() == 5 {
                unit_arg(args[4])?
            } else {
                false
            };
            norm_bit_range(start, end, isbit, s.len())
        }
        _ => return Err(SYNTAX.into()),
    };
    if r.start > r.end {
        out.int(0);
        return Ok(());
    }
    let (a, b) = (r.start as usize, r.end as usize);
    let mut n = popcount(&s[a..=b]);
    n -= u64::from((s[a] & r.first_mask).count_ones());
    n -= u64::from((s[b] & r.last_mask).count_ones());
    out.int(n as i64);
    Ok(())
}

/// Position of the first `bit` in `s` (in bits); for a clear bit not found, the bit just past
/// the end (a string is zero-padded on the right); -1 for a set bit not found.
fn first_bit(s: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0u8 } else { 0xff };
    for (i, &b) in s.iter().enumerate() {
        if b != skip {
            let lead = if bit {
                b.leading_zeros()
            } else {
                (!b).leading_zeros()
            };
            return i as i64 * 8 + i64::from(lead);
        }
    }
    if bit { -1 } else { s.len() as i64 * 8 }
}

/// BITPOS key bit [start [end [BIT|BYTE]]]
pub fn bitpos(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let bit = int_arg(args[2])?;
    if bit != 0 && bit != 1 {
        return Err("ERR The bit argument must be 1 or 0.".into());
    }
    let bit = bit == 1;
    let (db, out, now) = ctx.split();
    let Some(s) = read_str(db, args[1], now)? else {
        out.int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let mut end_given = false;
    let r = match args.len() {
        3 => Range {
            start: 0,
            end: s.len() as i64 - 1,
            first_mask: 0,
            last_mask: 0,
        },
        4..=6 => {
            let start = int_arg(args[3])?;
            let isbit = if args.len() == 6 {
                unit_arg(args[5])?
            } else {
                false
            };
            let end = if args.len() >= 5 {
                end_given = true;
                int_arg(args[4])?
            } else if isbit {
                ((s.len() as i64) << 3) + 7
            } else {
                s.len() as i64 - 1
            };
            norm_bit_range(start, end, isbit, s.len())
        }
        _ => return Err(SYNTAX.into()),
    };
    if r.start > r.end {
        out.int(-1);
        return Ok(());
    }
    // Mask the bits outside the range so they never match: set them when looking for a 0,
    // clear them when looking for a 1.
    let mut bytes: Vec<u8> = s[r.start as usize..=r.end as usize].to_vec();
    let last = bytes.len() - 1;
    let fix = |b: &mut u8, m: u8| {
        if bit {
            *b &= !m;
        } else {
            *b |= m;
        }
    };
    fix(&mut bytes[0], r.first_mask);
    fix(&mut bytes[last], r.last_mask);
    let pos = first_bit(&bytes, bit);
    // With an explicit end, a clear bit past the range is not "found".
    if end_given && !bit && pos == (bytes.len() as i64) << 3 {
        out.int(-1);
        return Ok(());
    }
    out.int(if pos == -1 { -1 } else { pos + (r.start << 3) });
    Ok(())
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]
pub fn bitop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = match args[1] {
        a if eq_ic(a, "AND") => Op::And,
        a if eq_ic(a, "OR") => Op::Or,
        a if eq_ic(a, "XOR") => Op::Xor,
        a if eq_ic(a, "NOT") => Op::Not,
        _ => return Err(SYNTAX.into()),
    };
    if op == Op::Not && args.len() != 4 {
        return Err("ERR BITOP NOT must be called with a single source key.".into());
    }
    let (db, out, now) = ctx.split();
    let mut srcs: Vec<Option<Box<[u8]>>> = Vec::with_capacity(args.len() - 3);
    for k in &args[3..] {
        srcs.push(read_str(db, k, now)?.map(Box::from));
    }
    let maxlen = srcs
        .iter()
        .map(|s| s.as_ref().map_or(0, |s| s.len()))
        .max()
        .unwrap_or(0);
    let at =
        |s: &Option<Box<[u8]>>, j: usize| s.as_ref().and_then(|s| s.get(j)).copied().unwrap_or(0);
    if maxlen == 0 {
        db.remove(args[2]);
    } else {
        let mut res = vec![0u8; maxlen];
        for (j, r) in res.iter_mut().enumerate() {
            let mut o = at(&srcs[0], j);
            if op == Op::Not {
                o = !o;
            }
            for s in &srcs[1..] {
                let b = at(s, j);
                match op {
                    Op::And => o &= b,
                    Op::Or => o |= b,
                    Op::Xor => o ^= b,
                    Op::Not => {}
                }
            }
            *r = o;
        }
        db.insert(args[2], Value::Str(res.into()), 0, now);
    }
    out.int(maxlen as i64);
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set,
    Incr,
}

struct Field {
    op: FieldOp,
    offset: u64,
    value: i64,
    ow: Overflow,
    bits: u32,
    signed: bool,
}

fn field_type(a: &[u8]) -> Result<(bool, u32), CmdError> {
    let signed = match a.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(BAD_TYPE.into()),
    };
    let n = parse_i64(&a[1..]).ok_or(CmdError::Static(BAD_TYPE))?;
    if n < 1 || (signed && n > 64) || (!signed && n > 63) {
        return Err(BAD_TYPE.into());
    }
    Ok((signed, n as u32))
}

fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for j in 0..u64::from(bits) {
        let o = offset + j;
        let byte = (o >> 3) as usize;
        let bit = 7 - (o & 7);
        let b = p.get(byte).map_or(0, |b| (b >> bit) & 1);
        v = (v << 1) | u64::from(b);
    }
    v
}

fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(p, offset, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let bitval = (value >> (u64::from(bits) - 1 - j)) & 1;
        let o = offset + j;
        let byte = (o >> 3) as usize;
        let bit = 7 - (o & 7);
        p[byte] = (p[byte] & !(1 << bit)) | ((bitval as u8) << bit);
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: `Some(result)` on overflow (the wrapped or
/// saturated value; irrelevant for FAIL).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<u64> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > maxincr) {
        Some(if ow == Overflow::Wrap { wrap() } else { max })
    } else if incr < 0 && incr < minincr {
        Some(if ow == Overflow::Wrap { wrap() } else { 0 })
    } else {
        None
    }
}

/// Redis's `checkSignedBitfieldOverflow`.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<i64> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                (c | mask) as i64
            } else {
                (c & !mask) as i64
            }
        } else {
            c as i64
        }
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        Some(if ow == Overflow::Wrap { wrap() } else { max })
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        Some(if ow == Overflow::Wrap { wrap() } else { min })
    } else {
        None
    }
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset incr]
/// [OVERFLOW WRAP|SAT|FAIL] ...
pub fn bitfield(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

/// BITFIELD_RO key [GET type offset ...]
pub fn bitfield_ro(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

fn bitfield_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], ro: bool) -> CmdResult {
    let max = max_bulk(ctx);
    let mut ops: Vec<Field> = Vec::new();
    let mut ow = Overflow::Wrap;
    let mut readonly = true;
    let mut highest = 0u64;
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let sub = args[j];
        let op = if eq_ic(sub, "GET") && rem >= 2 {
            FieldOp::Get
        } else if eq_ic(sub, "SET") && rem >= 3 {
            FieldOp::Set
        } else if eq_ic(sub, "INCRBY") && rem >= 3 {
            FieldOp::Incr
        } else if eq_ic(sub, "OVERFLOW") && rem >= 1 {
            let t = args[j + 1];
            ow = if eq_ic(t, "WRAP") {
                Overflow::Wrap
            } else if eq_ic(t, "SAT") {
                Overflow::Sat
            } else if eq_ic(t, "FAIL") {
                Overflow::Fail
            } else {
                return Err("ERR Invalid OVERFLOW type specified".into());
            };
            j += 2;
            continue;
        } else {
            return Err(SYNTAX.into());
        };
        let (signed, bits) = field_type(args[j + 1])?;
        let offset = bit_offset(args[j + 2], bits, max)?;
        let mut value = 0;
        if op != FieldOp::Get {
            readonly = false;
            highest = highest.max(offset + u64::from(bits) - 1);
            value = int_arg(args[j + 3])?;
        }
        ops.push(Field {
            op,
            offset,
            value,
            ow,
            bits,
            signed,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    let (db, out, now) = ctx.split();
    if readonly {
        let s = read_str(db, args[1], now)?.unwrap_or(&[]);
        out.array(ops.len());
        for f in &ops {
            if f.signed {
                out.int(get_signed(s, f.offset, f.bits));
            } else {
                out.int(get_unsigned(s, f.offset, f.bits) as i64);
            }
        }
        return Ok(());
    }
    if ro {
        return Err("ERR BITFIELD_RO only supports the GET subcommand".into());
    }
    let (mut v, grown, existed) = take_for_write(db, args[1], highest, now)?;
    let mut changes = grown || !existed;
    out.array(ops.len());
    for f in &ops {
        match f.op {
            FieldOp::Get => {
                if f.signed {
                    out.int(get_signed(&v, f.offset, f.bits));
                } else {
                    out.int(get_unsigned(&v, f.offset, f.bits) as i64);
                }
            }
            FieldOp::Set | FieldOp::Incr => {
                let incr = f.op == FieldOp::Incr;
                if f.signed {
                    let old = get_signed(&v, f.offset, f.bits);
                    let (new, over, ret) = if incr {
                        let o = signed_overflow(old, f.value, f.bits, f.ow);
                        let new = o.unwrap_or_else(|| old.wrapping_add(f.value));
                        (new, o.is_some(), new)
                    } else {
                        let o = signed_overflow(f.value, 0, f.bits, f.ow);
                        (o.unwrap_or(f.value), o.is_some(), old)
                    };
                    if over && f.ow == Overflow::Fail {
                        out.null();
                    } else {
                        out.int(ret);
                        set_unsigned(&mut v, f.offset, f.bits, new as u64);
                        changes |= old != new;
                    }
                } else {
                    let old = get_unsigned(&v, f.offset, f.bits);
                    let (new, over, ret) = if incr {
                        let o = unsigned_overflow(old, f.value, f.bits, f.ow);
                        let new = o.unwrap_or_else(|| old.wrapping_add(f.value as u64));
                        (new, o.is_some(), new)
                    } else {
                        let o = unsigned_overflow(f.value as u64, 0, f.bits, f.ow);
                        (o.unwrap_or(f.value as u64), o.is_some(), old)
                    };
                    if over && f.ow == Overflow::Fail {
                        out.null();
                    } else {
                        out.int(ret as i64);
                        set_unsigned(&mut v, f.offset, f.bits, new);
                        changes |= old != new;
                    }
                }
            }
        }
    }
    if changes {
        put_back(db, args[1], v, existed, now);
    } else if let Some(e) = db.get_mut(args[1], now) {
        e.value = Value::Str(v.into());
    }
    Ok(())
}

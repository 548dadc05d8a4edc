//! Redis's RDB value encoding, as `DUMP` and `RESTORE` carry it: a type byte, the object, the
//! RDB version (2 bytes, little-endian) and a CRC64 (Jones polynomial, reflected, as Redis's
//! `crc64.c` computes it) of everything before, little-endian.
//!
//! The encoder writes what Redis 7.0 itself would write for the value's size (RDB version 10,
//! so real Redis 7.0 accepts it): strings with integer encoding when short, lists as quicklist 2
//! of listpacks, sets as intsets or `RDB_TYPE_SET`, hashes and sorted sets as listpacks when
//! small, else as `RDB_TYPE_HASH` and `RDB_TYPE_ZSET_2`.
//!
//! The decoder accepts every encoding Redis 7.0 can produce for these types, including the
//! legacy ziplist, intset and zipmap ones, from untrusted input: every length is checked against
//! the bytes left before anything is allocated, and malformed input is an error, never a panic.
//! Streams and module types are refused with a clear error (streams are not in this encoder).

use crate::value::{Bytes, HashObj, ListObj, SetObj, Value, ZSet};

/// The RDB version written in the footer (Redis 7.0's `RDB_VERSION`).
pub const RDB_VERSION: u16 = 10;

const T_STRING: u8 = 0;
const T_LIST: u8 = 1;
const T_SET: u8 = 2;
const T_ZSET: u8 = 3;
const T_HASH: u8 = 4;
const T_ZSET_2: u8 = 5;
const T_MODULE: u8 = 6;
const T_MODULE_2: u8 = 7;
const T_HASH_ZIPMAP: u8 = 9;
const T_LIST_ZIPLIST: u8 = 10;
const T_SET_INTSET: u8 = 11;
const T_ZSET_ZIPLIST: u8 = 12;
const T_HASH_ZIPLIST: u8 = 13;
const T_LIST_QUICKLIST: u8 = 14;
const T_STREAM: u8 = 15;
const T_HASH_LISTPACK: u8 = 16;
const T_ZSET_LISTPACK: u8 = 17;
const T_LIST_QUICKLIST_2: u8 = 18;
const T_STREAM_2: u8 = 19;
const T_SET_LISTPACK: u8 = 20;
const T_STREAM_3: u8 = 21;

/// Quicklist 2 node containers.
const QL_PLAIN: u64 = 1;
const QL_PACKED: u64 = 2;

/// Redis's defaults for the compact encodings (`*-max-listpack-*`, `set-max-intset-entries`).
const LISTPACK_MAX_ENTRIES: usize = 128;
const LISTPACK_MAX_VALUE: usize = 64;
const INTSET_MAX_ENTRIES: usize = 512;
/// A list node's listpack is closed past this many bytes (`list-max-listpack-size -2`).
const NODE_MAX_BYTES: usize = 8192;
/// Elements this large get a plain quicklist node of their own, as in Redis.
const PLAIN_THRESHOLD: usize = 1 << 30;
/// Largest string a payload may decompress to (`proto-max-bulk-len`'s default).
const MAX_STRING: usize = 512 * 1024 * 1024;

/// Why a payload was refused.
pub type Error = &'static str;

const BAD: Error = "Bad data format";

// ---------------------------------------------------------------- CRC64

static CRC_TABLE: std::sync::LazyLock<[u64; 256]> = std::sync::LazyLock::new(|| {
    // Jones polynomial 0xad93d23594c935a9, bit-reflected (Redis feeds bytes LSB first).
    const POLY: u64 = 0xad93_d235_94c9_35a9u64.reverse_bits();
    let mut t = [0u64; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut c = i as u64;
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
        }
        *slot = c;
    }
    t
});

/// Redis's `crc64(0, data)`.
pub fn crc64(data: &[u8]) -> u64 {
    let t = &*CRC_TABLE;
    data.iter().fold(0u64, |c, &b| {
        t[((c ^ u64::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

// ---------------------------------------------------------------- encoding

/// Serializes a value as `DUMP` does.
pub fn dump(value: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    #[allow(unreachable_patterns)] // Value types added later (streams) are refused here.
    match value {
        Value::Str(s) => {
            out.push(T_STRING);
            put_string(&mut out, s);
        }
        Value::List(l) => {
            out.push(T_LIST_QUICKLIST_2);
            put_list(&mut out, l);
        }
        Value::Set(s) => put_set(&mut out, s),
        Value::Hash(h) => put_hash(&mut out, h),
        Value::ZSet(z) => put_zset(&mut out, z),
        _ => return Err("ERR DUMP is not supported for this value type"),
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An integer exactly as Redis's `string2ll` accepts it (no sign `+`, no leading zeros, no
/// `-0`, no spaces): only such strings may be stored as integers and read back identical.
pub fn strict_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let v: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (itoa(v).as_bytes() == s).then_some(v)
}

fn itoa(v: i64) -> String {
    v.to_string()
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    // rdbTryIntegerEncoding: short decimal strings become 8/16/32-bit integers.
    if s.len() <= 11
        && let Some(v) = strict_int(s)
    {
        if let Ok(v) = i8::try_from(v) {
            out.extend_from_slice(&[0xC0, v as u8]);
            return;
        }
        if let Ok(v) = i16::try_from(v) {
            out.push(0xC1);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
        if let Ok(v) = i32::try_from(v) {
            out.push(0xC2);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn put_backlen(out: &mut Vec<u8>, l: usize) {
    let l = l as u64;
    match backlen_size(l as usize) {
        1 => out.push(l as u8),
        2 => out.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]),
        3 => out.extend_from_slice(&[
            (l >> 14) as u8,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]),
        4 => out.extend_from_slice(&[
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]),
        _ => out.extend_from_slice(&[
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]),
    }
}

/// A listpack under construction.
struct Listpack {
    buf: Vec<u8>,
    count: usize,
}

impl Listpack {
    fn new() -> Self {
        Self {
            buf: vec![0; 6],
            count: 0,
        }
    }

    fn push(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let b = &mut self.buf;
        match strict_int(s) {
            Some(v @ 0..=127) => b.push(v as u8),
            Some(v @ -4096..=4095) => {
                let u = (v as u64) & 0x1FFF;
                b.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
            }
            Some(v) if i16::try_from(v).is_ok() => {
                b.push(0xF1);
                b.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v @ -8_388_608..=8_388_607) => {
                b.push(0xF2);
                b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            Some(v) if i32::try_from(v).is_ok() => {
                b.push(0xF3);
                b.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Some(v) => {
                b.push(0xF4);
                b.extend_from_slice(&v.to_le_bytes());
            }
            None => {
                let l = s.len();
                if l < 64 {
                    b.push(0x80 | l as u8);
                } else if l < 4096 {
                    b.extend_from_slice(&[0xE0 | (l >> 8) as u8, l as u8]);
                } else {
                    b.push(0xF0);
                    b.extend_from_slice(&(l as u32).to_le_bytes());
                }
                b.extend_from_slice(s);
            }
        }
        let entry = self.buf.len() - start;
        put_backlen(&mut self.buf, entry);
        self.count += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let n = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

fn put_list(out: &mut Vec<u8>, l: &ListObj) {
    let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut lp: Option<Listpack> = None;
    for v in &l.items {
        if v.len() >= PLAIN_THRESHOLD {
            if let Some(p) = lp.take() {
                nodes.push((QL_PACKED, p.finish()));
            }
            nodes.push((QL_PLAIN, v.to_vec()));
            continue;
        }
        let p = lp.get_or_insert_with(Listpack::new);
        p.push(v);
        if p.buf.len() >= NODE_MAX_BYTES || p.count >= u16::MAX as usize - 1 {
            nodes.push((QL_PACKED, lp.take().expect("just filled").finish()));
        }
    }
    if let Some(p) = lp {
        nodes.push((QL_PACKED, p.finish()));
    }
    put_len(out, nodes.len() as u64);
    for (container, blob) in nodes {
        put_len(out, container);
        put_len(out, blob.len() as u64);
        out.extend_from_slice(&blob);
    }
}

fn put_set(out: &mut Vec<u8>, s: &SetObj) {
    let ints: Option<Vec<i64>> = if s.set.len() <= INTSET_MAX_ENTRIES {
        s.set.iter().map(|m| strict_int(m)).collect()
    } else {
        None
    };
    match ints {
        Some(mut ints) => {
            ints.sort_unstable();
            let width: usize = if ints.iter().all(|&v| i16::try_from(v).is_ok()) {
                2
            } else if ints.iter().all(|&v| i32::try_from(v).is_ok()) {
                4
            } else {
                8
            };
            let mut blob = Vec::with_capacity(8 + width * ints.len());
            blob.extend_from_slice(&(width as u32).to_le_bytes());
            blob.extend_from_slice(&(ints.len() as u32).to_le_bytes());
            for v in ints {
                blob.extend_from_slice(&v.to_le_bytes()[..width]);
            }
            out.push(T_SET_INTSET);
            put_len(out, blob.len() as u64);
            out.extend_from_slice(&blob);
        }
        None => {
            out.push(T_SET);
            put_len(out, s.set.len() as u64);
            for m in &s.set {
                put_string(out, m);
            }
        }
    }
}

fn put_hash(out: &mut Vec<u8>, h: &HashObj) {
    let small = h.map.len() <= LISTPACK_MAX_ENTRIES
        && h.map
            .iter()
            .all(|(f, v)| f.len() <= LISTPACK_MAX_VALUE && v.len() <= LISTPACK_MAX_VALUE);
    if small {
        let mut lp = Listpack::new();
        for (f, v) in &h.map {
            lp.push(f);
            lp.push(v);
        }
        let blob = lp.finish();
        out.push(T_HASH_LISTPACK);
        put_len(out, blob.len() as u64);
        out.extend_from_slice(&blob);
    } else {
        out.push(T_HASH);
        put_len(out, h.map.len() as u64);
        for (f, v) in &h.map {
            put_string(out, f);
            put_string(out, v);
        }
    }
}

/// A score as text that `strtod` reads back to the same double.
fn score_text(s: f64) -> String {
    if s.is_infinite() {
        return if s > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if s.fract() == 0.0 && s.abs() < 1e17 {
        return itoa(s as i64);
    }
    // Shortest round-trip digits; exponent form keeps huge and tiny values short.
    let plain = format!("{s}");
    if plain.len() <= 24 {
        plain
    } else {
        format!("{s:e}")
    }
}

fn put_zset(out: &mut Vec<u8>, z: &ZSet) {
    let small =
        z.len() <= LISTPACK_MAX_ENTRIES && z.dict.keys().all(|m| m.len() <= LISTPACK_MAX_VALUE);
    if small {
        // Listpack zsets are kept in score order, as Redis expects them.
        let mut items: Vec<(&Bytes, f64)> = z.dict.iter().map(|(m, s)| (m, *s)).collect();
        items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        let mut lp = Listpack::new();
        for (m, s) in items {
            lp.push(m);
            lp.push(score_text(s).as_bytes());
        }
        let blob = lp.finish();
        out.push(T_ZSET_LISTPACK);
        put_len(out, blob.len() as u64);
        out.extend_from_slice(&blob);
    } else {
        out.push(T_ZSET_2);
        put_len(out, z.len() as u64);
        for (m, s) in &z.dict {
            put_string(out, m);
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
}

// ---------------------------------------------------------------- decoding

/// Checks a `DUMP` payload's footer (version not newer than ours, CRC64) and returns the body.
pub fn verify(payload: &[u8]) -> Result<&[u8], Error> {
    const WRONG: Error = "ERR DUMP payload version or checksum are wrong";
    if payload.len() < 10 {
        return Err(WRONG);
    }
    let body_end = payload.len() - 8;
    let ver = u16::from_le_bytes([payload[body_end - 2], payload[body_end - 1]]);
    if ver > RDB_VERSION {
        return Err(WRONG);
    }
    let crc = u64::from_le_bytes(payload[body_end..].try_into().map_err(|_| WRONG)?);
    if crc64(&payload[..body_end]) != crc {
        return Err(WRONG);
    }
    Ok(&payload[..body_end - 2])
}

/// Decodes a verified body (type byte and object) into a value; the whole body must be used.
pub fn load(body: &[u8]) -> Result<Value, Error> {
    let mut r = Reader { b: body, pos: 0 };
    let t = r.byte()?;
    let v = match t {
        T_STRING => Value::Str(r.string()?.into()),
        T_LIST => {
            let n = r.count()?;
            let mut l = ListObj::default();
            for _ in 0..n {
                l.push_owned(r.string()?.into(), false);
            }
            Value::List(Box::new(l))
        }
        T_LIST_ZIPLIST => {
            let blob = r.string()?;
            let mut l = ListObj::default();
            ziplist(&blob, |e| l.push_owned(e.into(), false))?;
            Value::List(Box::new(l))
        }
        T_LIST_QUICKLIST | T_LIST_QUICKLIST_2 => {
            let nodes = r.count()?;
            let mut l = ListObj::default();
            for _ in 0..nodes {
                let container = if t == T_LIST_QUICKLIST_2 {
                    r.len()?
                } else {
                    QL_PACKED
                };
                let blob = r.string()?;
                match (t, container) {
                    (_, QL_PLAIN) if t == T_LIST_QUICKLIST_2 => l.push_owned(blob.into(), false),
                    (T_LIST_QUICKLIST, _) => ziplist(&blob, |e| l.push_owned(e.into(), false))?,
                    (_, QL_PACKED) => listpack(&blob, |e| l.push_owned(e.into(), false))?,
                    _ => return Err(BAD),
                }
            }
            Value::List(Box::new(l))
        }
        T_SET => {
            let n = r.count()?;
            let mut s = SetObj::default();
            for _ in 0..n {
                if !s.insert(&r.string()?) {
                    return Err(BAD); // duplicate member
                }
            }
            Value::Set(Box::new(s))
        }
        T_SET_INTSET => {
            let blob = r.string()?;
            let mut s = SetObj::default();
            intset(&blob, |v| s.insert(itoa(v).as_bytes()))?;
            Value::Set(Box::new(s))
        }
        T_SET_LISTPACK => {
            let blob = r.string()?;
            let mut s = SetObj::default();
            let mut dup = false;
            listpack(&blob, |e| dup |= !s.insert(&e))?;
            if dup {
                return Err(BAD);
            }
            Value::Set(Box::new(s))
        }
        T_HASH => {
            let n = r.count()?;
            let mut h = HashObj::default();
            for _ in 0..n {
                let f = r.string()?;
                let v = r.string()?;
                if !h.insert(&f, &v) {
                    return Err(BAD);
                }
            }
            Value::Hash(Box::new(h))
        }
        T_HASH_ZIPMAP => {
            let blob = r.string()?;
            let mut h = HashObj::default();
            zipmap(&blob, |f, v| h.insert(f, v))?;
            Value::Hash(Box::new(h))
        }
        T_HASH_ZIPLIST | T_HASH_LISTPACK => {
            let blob = r.string()?;
            let items = elements(t == T_HASH_ZIPLIST, &blob)?;
            if items.len() % 2 != 0 {
                return Err(BAD);
            }
            let mut h = HashObj::default();
            for p in items.chunks_exact(2) {
                if !h.insert(&p[0], &p[1]) {
                    return Err(BAD);
                }
            }
            Value::Hash(Box::new(h))
        }
        T_ZSET | T_ZSET_2 => {
            let n = r.count()?;
            let mut z = ZSet::default();
            for _ in 0..n {
                let m = r.string()?;
                let s = if t == T_ZSET_2 {
                    f64::from_le_bytes(r.take(8)?.try_into().map_err(|_| BAD)?)
                } else {
                    r.text_double()?
                };
                if s.is_nan() || z.insert(&m, s).is_some() {
                    return Err(BAD);
                }
            }
            Value::ZSet(Box::new(z))
        }
        T_ZSET_ZIPLIST | T_ZSET_LISTPACK => {
            let blob = r.string()?;
            let items = elements(t == T_ZSET_ZIPLIST, &blob)?;
            if items.len() % 2 != 0 {
                return Err(BAD);
            }
            let mut z = ZSet::default();
            for p in items.chunks_exact(2) {
                let s = std::str::from_utf8(&p[1])
                    .ok()
                    .and_then(|t| crate::cmd::parse_float(t.as_bytes()))
                    .ok_or(BAD)?;
                if z.insert(&p[0], s).is_some() {
                    return Err(BAD);
                }
            }
            Value::ZSet(Box::new(z))
        }
        T_STREAM | T_STREAM_2 | T_STREAM_3 => {
            return Err("ERR RESTORE of stream values is not supported");
        }
        T_MODULE | T_MODULE_2 => return Err("ERR RESTORE of module values is not supported"),
        _ => return Err(BAD),
    };
    if r.pos != body.len() || v.is_empty_collection() {
        return Err(BAD);
    }
    Ok(v)
}

/// Decodes a payload (footer included).
pub fn restore_value(payload: &[u8]) -> Result<Value, Error> {
    load(verify(payload)?)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.left() {
            return Err(BAD);
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    /// A length, or `Err` for an encoded (special) length.
    fn len(&mut self) -> Result<u64, Error> {
        match self.len_or_enc()? {
            (n, false) => Ok(n),
            _ => Err(BAD),
        }
    }

    /// A length and whether it is an encoding tag (the `11` prefix) instead.
    fn len_or_enc(&mut self) -> Result<(u64, bool), Error> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => (u64::from(b & 0x3F), false),
            1 => ((u64::from(b & 0x3F) << 8) | u64::from(self.byte()?), false),
            2 => match b {
                0x80 => (
                    u64::from(u32::from_be_bytes(
                        self.take(4)?.try_into().map_err(|_| BAD)?,
                    )),
                    false,
                ),
                0x81 => (
                    u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| BAD)?),
                    false,
                ),
                _ => return Err(BAD),
            },
            _ => (u64::from(b & 0x3F), true),
        })
    }

    /// An element count, bounded by the bytes left (every element takes at least one byte),
    /// so a forged count can not make us loop or allocate beyond the payload.
    fn count(&mut self) -> Result<usize, Error> {
        let n = self.len()?;
        if n == 0 || n > self.left() as u64 {
            return Err(BAD);
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<Vec<u8>, Error> {
        let (n, enc) = self.len_or_enc()?;
        if !enc {
            let n = usize::try_from(n).map_err(|_| BAD)?;
            return Ok(self.take(n)?.to_vec());
        }
        let v: i64 = match n {
            0 => i64::from(self.byte()? as i8),
            1 => i64::from(i16::from_le_bytes(
                self.take(2)?.try_into().map_err(|_| BAD)?,
            )),
            2 => i64::from(i32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| BAD)?,
            )),
            3 => {
                let clen = usize::try_from(self.len()?).map_err(|_| BAD)?;
                let ulen = usize::try_from(self.len()?).map_err(|_| BAD)?;
                let src = self.take(clen)?;
                // LZF expands at most ~132x (a 3-byte back reference copies 264 bytes).
                if ulen > MAX_STRING || ulen > clen.saturating_mul(132) {
                    return Err(BAD);
                }
                return lzf_decompress(src, ulen);
            }
            _ => return Err(BAD),
        };
        Ok(itoa(v).into_bytes())
    }

    fn text_double(&mut self) -> Result<f64, Error> {
        let n = self.byte()?;
        match n {
            253 => Err(BAD), // NaN
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let t = self.take(usize::from(n))?;
                crate::cmd::parse_float(t).ok_or(BAD)
            }
        }
    }
}

/// LZF decompression (liblzf's `lzf_decompress`), requiring exactly `ulen` output bytes.
fn lzf_decompress(src: &[u8], ulen: usize) -> Result<Vec<u8>, Error> {
    // Grown as output is produced: a forged `ulen` reserves no more than the input justifies.
    let mut out = Vec::with_capacity(ulen.min(src.len().saturating_mul(4)));
    let mut ip = 0;
    while ip < src.len() {
        let ctrl = usize::from(src[ip]);
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if ip + n > src.len() || out.len() + n > ulen {
                return Err(BAD);
            }
            out.extend_from_slice(&src[ip..ip + n]);
            ip += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*src.get(ip).ok_or(BAD)?);
                ip += 1;
            }
            let off = ((ctrl & 0x1F) << 8) + usize::from(*src.get(ip).ok_or(BAD)?) + 1;
            ip += 1;
            n += 2;
            if off > out.len() || out.len() + n > ulen {
                return Err(BAD);
            }
            let from = out.len() - off;
            // Byte by byte: the reference may overlap what is being written.
            for i in 0..n {
                let b = out[from + i];
                out.push(b);
            }
        }
    }
    if out.len() != ulen {
        return Err(BAD);
    }
    Ok(out)
}

fn le_int(b: &[u8]) -> i64 {
    // Sign-extends a little-endian integer of 1..=8 bytes.
    let mut buf = [0u8; 8];
    buf[..b.len()].copy_from_slice(b);
    let shift = 64 - 8 * b.len() as u32;
    (i64::from_le_bytes(buf) << shift) >> shift
}

fn elements(zip: bool, blob: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let mut v = Vec::new();
    if zip {
        ziplist(blob, |e| v.push(e))?;
    } else {
        listpack(blob, |e| v.push(e))?;
    }
    Ok(v)
}

/// Walks a listpack, validating its header, entries and terminator.
fn listpack(lp: &[u8], mut f: impl FnMut(Vec<u8>)) -> Result<(), Error> {
    if lp.len() < 7 || u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize != lp.len() {
        return Err(BAD);
    }
    let declared = u16::from_le_bytes([lp[4], lp[5]]);
    let mut p = 6;
    let mut count = 0usize;
    loop {
        let b = *lp.get(p).ok_or(BAD)?;
        if b == 0xFF {
            break;
        }
        let get = |from: usize, n: usize| lp.get(from..from + n).ok_or(BAD);
        let (hdr, val): (usize, Vec<u8>) = if b & 0x80 == 0 {
            (1, itoa(i64::from(b)).into_bytes())
        } else if b & 0xC0 == 0x80 {
            let n = usize::from(b & 0x3F);
            (1 + n, get(p + 1, n)?.to_vec())
        } else if b & 0xE0 == 0xC0 {
            let u = (u64::from(b & 0x1F) << 8) | u64::from(*lp.get(p + 1).ok_or(BAD)?);
            let v = if u >= 1 << 12 {
                u as i64 - (1 << 13)
            } else {
                u as i64
            };
            (2, itoa(v).into_bytes())
        } else if b & 0xF0 == 0xE0 {
            let n = (usize::from(b & 0x0F) << 8) | usize::from(*lp.get(p + 1).ok_or(BAD)?);
            (2 + n, get(p + 2, n)?.to_vec())
        } else {
            match b {
                0xF0 => {
                    let n =
                        u32::from_le_bytes(get(p + 1, 4)?.try_into().map_err(|_| BAD)?) as usize;
                    (5 + n, get(p + 5, n)?.to_vec())
                }
                0xF1 => (3, itoa(le_int(get(p + 1, 2)?)).into_bytes()),
                0xF2 => (4, itoa(le_int(get(p + 1, 3)?)).into_bytes()),
                0xF3 => (5, itoa(le_int(get(p + 1, 4)?)).into_bytes()),
                0xF4 => (9, itoa(le_int(get(p + 1, 8)?)).into_bytes()),
                _ => return Err(BAD),
            }
        };
        let bl = backlen_size(hdr);
        // The back length must say how long this entry was (Redis's deep check does too).
        let back = get(p + hdr, bl)?;
        let mut decoded = 0u64;
        for (i, &x) in back.iter().enumerate() {
            if (x & 128 != 0) != (i != 0) {
                return Err(BAD);
            }
            decoded = (decoded << 7) | u64::from(x & 127);
        }
        if decoded != hdr as u64 {
            return Err(BAD);
        }
        p += hdr + bl;
        count += 1;
        f(val);
    }
    if p + 1 != lp.len() || (declared != u16::MAX && usize::from(declared) != count) {
        return Err(BAD);
    }
    Ok(())
}

/// Walks a ziplist (Redis before 7.0), validating its header, entries and terminator.
fn ziplist(zl: &[u8], mut f: impl FnMut(Vec<u8>)) -> Result<(), Error> {
    if zl.len() < 11 || u32::from_le_bytes([zl[0], zl[1], zl[2], zl[3]]) as usize != zl.len() {
        return Err(BAD);
    }
    let declared = u16::from_le_bytes([zl[8], zl[9]]);
    let mut p = 10;
    let mut count = 0usize;
    let mut prev_len = 0usize;
    loop {
        let b = *zl.get(p).ok_or(BAD)?;
        if b == 0xFF {
            break;
        }
        let start = p;
        let get = |from: usize, n: usize| zl.get(from..from + n).ok_or(BAD);
        let prevlen = if b < 254 {
            p += 1;
            usize::from(b)
        } else if b == 254 {
            let v = u32::from_le_bytes(get(p + 1, 4)?.try_into().map_err(|_| BAD)?) as usize;
            p += 5;
            v
        } else {
            return Err(BAD);
        };
        if prevlen != prev_len {
            return Err(BAD);
        }
        let e = *zl.get(p).ok_or(BAD)?;
        let val = match e >> 6 {
            0 => {
                let n = usize::from(e & 0x3F);
                let v = get(p + 1, n)?.to_vec();
                p += 1 + n;
                v
            }
            1 => {
                let n = (usize::from(e & 0x3F) << 8) | usize::from(*zl.get(p + 1).ok_or(BAD)?);
                let v = get(p + 2, n)?.to_vec();
                p += 2 + n;
                v
            }
            2 if e == 0x80 => {
                let n = u32::from_be_bytes(get(p + 1, 4)?.try_into().map_err(|_| BAD)?) as usize;
                let v = get(p + 5, n)?.to_vec();
                p += 5 + n;
                v
            }
            3 => {
                let (n, v) = match e {
                    0xC0 => (2, le_int(get(p + 1, 2)?)),
                    0xD0 => (4, le_int(get(p + 1, 4)?)),
                    0xE0 => (8, le_int(get(p + 1, 8)?)),
                    0xF0 => (3, le_int(get(p + 1, 3)?)),
                    0xFE => (1, le_int(get(p + 1, 1)?)),
                    0xF1..=0xFD => (0, i64::from(e & 0x0F) - 1),
                    _ => return Err(BAD),
                };
                p += 1 + n;
                itoa(v).into_bytes()
            }
            _ => return Err(BAD),
        };
        prev_len = p - start;
        count += 1;
        f(val);
    }
    if p + 1 != zl.len() || (declared != u16::MAX && usize::from(declared) != count) {
        return Err(BAD);
    }
    Ok(())
}

/// Walks an intset, validating encoding, length and order (strictly ascending, as Redis keeps
/// it); `f` returns false for a duplicate.
fn intset(is: &[u8], mut f: impl FnMut(i64) -> bool) -> Result<(), Error> {
    if is.len() < 8 {
        return Err(BAD);
    }
    let width = u32::from_le_bytes([is[0], is[1], is[2], is[3]]) as usize;
    let n = u32::from_le_bytes([is[4], is[5], is[6], is[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || n == 0 || is.len() != 8 + width * n {
        return Err(BAD);
    }
    let mut prev = None;
    for c in is[8..].chunks_exact(width) {
        let v = le_int(c);
        if prev.is_some_and(|p| p >= v) || !f(v) {
            return Err(BAD);
        }
        prev = Some(v);
    }
    Ok(())
}

/// Walks a zipmap (hashes before Redis 2.6); `f` returns false for a duplicate field.
fn zipmap(zm: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<(), Error> {
    let mut p = 1; // zmlen: a hint only
    let read_len = |p: &mut usize| -> Result<Option<usize>, Error> {
        let b = *zm.get(*p).ok_or(BAD)?;
        match b {
            255 => Ok(None),
            254 => {
                let v = zm.get(*p + 1..*p + 5).ok_or(BAD)?;
                *p += 5;
                Ok(Some(
                    u32::from_le_bytes(v.try_into().map_err(|_| BAD)?) as usize
                ))
            }
            _ => {
                *p += 1;
                Ok(Some(usize::from(b)))
            }
        }
    };
    let mut any = false;
    while let Some(klen) = read_len(&mut p)? {
        let key = zm.get(p..p + klen).ok_or(BAD)?;
        p += klen;
        let vlen = read_len(&mut p)?.ok_or(BAD)?;
        let free = usize::from(*zm.get(p).ok_or(BAD)?);
        p += 1;
        let val = zm.get(p..p + vlen).ok_or(BAD)?;
        p += vlen + free;
        if !f(key, val) {
            return Err(BAD);
        }
        any = true;
    }
    if !any || p + 1 != zm.len() {
        return Err(BAD);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_redis() {
        // The check value of Redis's crc64 test.
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    fn roundtrip(v: &Value) -> Value {
        restore_value(&dump(v).unwrap()).unwrap()
    }

    #[test]
    fn every_type_round_trips() {
        for s in [
            "",
            "0",
            "-1",
            "127",
            "-129",
            "40000",
            "2147483648",
            "007",
            "hello",
        ] {
            match roundtrip(&Value::Str(s.as_bytes().into())) {
                Value::Str(b) => assert_eq!(&*b, s.as_bytes()),
                v => panic!("{v:?}"),
            }
        }
        let elems: Vec<String> = (0..3000)
            .map(|i| match i % 5 {
                0 => format!("{}", i as i64 * 1_000_003 - 7_000_000),
                1 => "x".repeat(i % 300),
                2 => format!("{}", -(i as i64) * 4_000_000_000_000),
                3 => format!("{}", i % 8000),
                _ => format!("e{i}"),
            })
            .collect();
        let mut l = ListObj::default();
        for e in &elems {
            l.push(e.as_bytes(), false);
        }
        match roundtrip(&Value::List(Box::new(l))) {
            Value::List(l) => {
                let got: Vec<&[u8]> = l.items.iter().map(|v| &**v).collect();
                let want: Vec<&[u8]> = elems.iter().map(|e| e.as_bytes()).collect();
                assert_eq!(got, want);
            }
            v => panic!("{v:?}"),
        }
        for n in [3usize, 600] {
            let ints = SetObj::from_members(
                (0..n)
                    .map(|i| format!("{}", i as i64 * 70_000 - 5))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|s| s.as_bytes()),
            );
            match roundtrip(&Value::Set(Box::new(ints.clone()))) {
                Value::Set(s) => assert_eq!(s.set, ints.set),
                v => panic!("{v:?}"),
            }
        }
        for n in [5usize, 300] {
            let mut h = HashObj::default();
            let mut z = ZSet::default();
            for i in 0..n {
                h.insert(format!("f{i}").as_bytes(), format!("{i}").as_bytes());
                let score = [1.5, -0.25, 1e300, f64::INFINITY, 3.0][i % 5] * i as f64;
                z.insert(format!("m{i}").as_bytes(), score);
            }
            match roundtrip(&Value::Hash(Box::new(h.clone()))) {
                Value::Hash(g) => assert_eq!(g.map, h.map),
                v => panic!("{v:?}"),
            }
            match roundtrip(&Value::ZSet(Box::new(z.clone()))) {
                Value::ZSet(g) => assert_eq!(g.dict, z.dict),
                v => panic!("{v:?}"),
            }
        }
    }

    #[test]
    fn corrupt_payloads_are_refused() {
        let good = dump(&Value::Str(b"hello world".as_slice().into())).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            assert!(restore_value(&bad).is_err());
        }
        assert!(restore_value(b"").is_err());
        // A forged element count far beyond the payload fails before allocating.
        let mut body = vec![T_SET, 0x81];
        body.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(load(&body).unwrap_err(), BAD);
        // A newer RDB version is refused.
        let mut v11 = good[..good.len() - 10].to_vec();
        v11.extend_from_slice(&11u16.to_le_bytes());
        let crc = crc64(&v11);
        v11.extend_from_slice(&crc.to_le_bytes());
        assert!(verify(&v11).is_err());
    }

    #[test]
    fn legacy_encodings_decode() {
        // Ziplist ["a", 5, -300, 100000] as a list (type 10).
        let mut zl = vec![0u8; 10];
        let entries: [&[u8]; 4] = [
            &[0x01, b'a'],
            &[0xF6],
            &[0xC0, 0xD4, 0xFE],
            &[0xD0, 0xA0, 0x86, 0x01, 0x00],
        ];
        let mut prev = 0u8;
        for e in entries {
            zl.push(prev);
            zl.extend_from_slice(e);
            prev = (e.len() + 1) as u8;
        }
        zl.push(0xFF);
        let n = zl.len() as u32;
        zl[..4].copy_from_slice(&n.to_le_bytes());
        zl[8..10].copy_from_slice(&4u16.to_le_bytes());
        let mut body = vec![T_LIST_ZIPLIST];
        put_len(&mut body, zl.len() as u64);
        body.extend_from_slice(&zl);
        match load(&body).unwrap() {
            Value::List(l) => {
                let got: Vec<&[u8]> = l.items.iter().map(|v| &**v).collect();
                assert_eq!(got, [&b"a"[..], b"5", b"-300", b"100000"]);
            }
            v => panic!("{v:?}"),
        }
        // Zipmap {"f": "vv"} (type 9).
        let zm = [1u8, 1, b'f', 2, 0, b'v', b'v', 0xFF];
        let mut body = vec![T_HASH_ZIPMAP, zm.len() as u8];
        body.extend_from_slice(&zm);
        match load(&body).unwrap() {
            Value::Hash(h) => assert_eq!(&*h.map[&b"f"[..]], b"vv"),
            v => panic!("{v:?}"),
        }
        // LZF: a literal "ab" and a back reference copying it three more times.
        let lzf = [0x01, b'a', b'b', 0x40, 0x01];
        assert_eq!(lzf_decompress(&lzf, 6).unwrap(), b"ababab");
        assert!(lzf_decompress(&lzf, 7).is_err());
    }
}

//! RESP request parsing: a pure function from bytes to argument slices, with no I/O and no copy.
//!
//! A request is either a multibulk array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or an
//! inline command (`GET k\r\n`). Multibulk arguments are returned as slices of the caller's buffer;
//! inline commands are split with Redis's quoting rules into owned arguments (they are rare: only
//! humans with telnet send them).
//!
//! Every length is checked against [`Limits`] *before* anything is reserved for it, and the
//! errors carry Redis 7's exact protocol error strings. A protocol error closes the connection
//! that sent it (after the error reply), as Redis does; it never affects other connections.

/// `proto-max-bulk-len` default: 512 MB.
pub const DEFAULT_MAX_BULK: usize = 512 * 1024 * 1024;
/// Longest inline request, and longest `*N`/`$N` header line (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;
/// Largest multibulk count Redis accepts (`INT_MAX`).
pub const MAX_MULTIBULK: i64 = i32::MAX as i64;
/// Largest multibulk count from a connection that has not authenticated yet.
pub const MAX_MULTIBULK_UNAUTH: i64 = 10;
/// Largest bulk from a connection that has not authenticated yet.
pub const MAX_BULK_UNAUTH: i64 = 16384;
/// Arguments reserved up front for one request, whatever count it claims.
const ARGV_PREALLOC: usize = 1024;

/// Size bounds applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk string (`proto-max-bulk-len`).
    pub max_bulk: usize,
    /// Whether the connection has authenticated (or needs no password).
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk: DEFAULT_MAX_BULK,
            authenticated: true,
        }
    }
}

/// A malformed request. `Display` is the exact text Redis replies with (after `-ERR `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCount,
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthMultibulkLength,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthBulkLength,
}

/// The outcome of parsing one request at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A multibulk request was parsed into `argv`; `consumed` bytes belong to it.
    Multibulk { consumed: usize },
    /// An inline request with owned arguments (possibly empty: a blank line).
    Inline { consumed: usize, args: Vec<Vec<u8>> },
    /// More bytes are needed; at least `need` bytes in total if known (for large bulks), so the
    /// caller can grow its buffer without re-parsing on every read.
    Incomplete { need: Option<usize> },
}

/// Parses one request from the start of `buf`. On [`Parsed::Multibulk`], `argv` holds the
/// arguments (an empty `argv` is a `*0` or `*-1` request, which Redis ignores).
pub fn parse<'a>(
    buf: &'a [u8],
    argv: &mut Vec<&'a [u8]>,
    limits: Limits,
) -> Result<Parsed, ProtocolError> {
    argv.clear();
    match buf.first() {
        None => Ok(Parsed::Incomplete { need: None }),
        Some(b'*') => parse_multibulk(buf, argv, limits),
        Some(_) => parse_inline(buf),
    }
}

/// Finds `\r\n` from `from`; returns the index of `\r`.
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = memchr::memchr(b'\r', buf.get(at..)?)? + at;
        if buf.get(i + 1) == Some(&b'\n') {
            return Some(i);
        }
        if i + 1 >= buf.len() {
            return None;
        }
        at = i + 1;
    }
}

/// Parses a decimal integer as Redis's `string2ll` does (no spaces, no `+`, no leading zeros
/// except "0" itself, optional `-`).
#[inline]
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    if neg && digits == b"0" {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// A `*N` or `$N` header line at `buf[at]` (the byte after the type char).
enum Len {
    /// The value and the index just past its CRLF.
    Ok(i64, usize),
    /// The line has not fully arrived.
    Incomplete,
    /// Not a canonical small non-negative number: take the general path.
    Slow,
}

/// The fast path for header lines: canonical non-negative numbers of up to 18 digits, read
/// byte by byte (most lines are 4 or 5 bytes long; a `memchr` call costs more than the scan).
#[inline(always)]
fn read_len(buf: &[u8], at: usize) -> Len {
    let mut i = at;
    let mut v: i64 = 0;
    while i < buf.len() && i - at < 18 {
        let c = buf[i];
        if c.is_ascii_digit() {
            if i > at && v == 0 {
                return Len::Slow; // leading zero
            }
            v = v * 10 + i64::from(c - b'0');
            i += 1;
        } else if c == b'\r' && i > at {
            return match buf.get(i + 1) {
                Some(b'\n') => Len::Ok(v, i + 2),
                Some(_) => Len::Slow,
                None => Len::Incomplete,
            };
        } else {
            return Len::Slow;
        }
    }
    if i >= buf.len() {
        Len::Incomplete
    } else {
        Len::Slow
    }
}

fn parse_multibulk<'a>(
    buf: &'a [u8],
    argv: &mut Vec<&'a [u8]>,
    limits: Limits,
) -> Result<Parsed, ProtocolError> {
    let (count, mut pos) = match read_len(buf, 1) {
        Len::Ok(v, next) => (v, next),
        Len::Incomplete => return Ok(Parsed::Incomplete { need: None }),
        Len::Slow => {
            let Some(eol) = find_crlf(buf, 1) else {
                if buf.len() > MAX_INLINE {
                    return Err(ProtocolError::TooBigMbulkCount);
                }
                return Ok(Parsed::Incomplete { need: None });
            };
            let v = parse_i64(&buf[1..eol]).ok_or(ProtocolError::InvalidMultibulkLength)?;
            (v, eol + 2)
        }
    };
    if count > MAX_MULTIBULK {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    if count > MAX_MULTIBULK_UNAUTH && !limits.authenticated {
        return Err(ProtocolError::UnauthMultibulkLength);
    }
    if count <= 0 {
        return Ok(Parsed::Multibulk { consumed: pos });
    }
    let count = count as usize;
    argv.reserve(count.min(ARGV_PREALLOC));
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Parsed::Incomplete { need: None });
        }
        let fast = if buf[pos] == b'$' {
            read_len(buf, pos + 1)
        } else {
            Len::Slow
        };
        let (len, start) = match fast {
            Len::Ok(v, next) => (v, next),
            Len::Incomplete => return Ok(Parsed::Incomplete { need: None }),
            Len::Slow => {
                let Some(eol) = find_crlf(buf, pos + 1) else {
                    if buf.len() - pos > MAX_INLINE {
                        return Err(ProtocolError::TooBigBulkCount);
                    }
                    return Ok(Parsed::Incomplete { need: None });
                };
                if buf[pos] != b'$' {
                    return Err(ProtocolError::ExpectedDollar(char::from(buf[pos])));
                }
                let v = parse_i64(&buf[pos + 1..eol]).ok_or(ProtocolError::InvalidBulkLength)?;
                (v, eol + 2)
            }
        };
        if len < 0 || len as u64 > limits.max_bulk as u64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        if len > MAX_BULK_UNAUTH && !limits.authenticated {
            return Err(ProtocolError::UnauthBulkLength);
        }
        let end = start + len as usize;
        if end + 2 > buf.len() {
            return Ok(Parsed::Incomplete {
                need: Some(end + 2),
            });
        }
        // Redis does not check the trailing CRLF of a bulk; it skips two bytes. So do we.
        argv.push(&buf[start..end]);
        pos = end + 2;
    }
    Ok(Parsed::Multibulk { consumed: pos })
}

fn parse_inline(buf: &[u8]) -> Result<Parsed, ProtocolError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(Parsed::Incomplete { need: None });
    };
    if nl > MAX_INLINE {
        return Err(ProtocolError::TooBigInline);
    }
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
    Ok(Parsed::Inline {
        consumed: nl + 1,
        args,
    })
}

/// Splits a line as Redis's `sdssplitargs` does: whitespace-separated, `"..."` with C escapes
/// (`\n`, `\xHH`...), `'...'` with only `\'`. `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    c if is_space(c) => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// C's `isspace`.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn multibulk_and_pipeline() {
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let mut argv = Vec::new();
        let p = parse(buf, &mut argv, Limits::default()).unwrap();
        assert_eq!(p, Parsed::Multibulk { consumed: 20 });
        assert_eq!(argv, vec![&b"GET"[..], b"k"]);
        let p = parse(&buf[20..], &mut argv, Limits::default()).unwrap();
        assert_eq!(p, Parsed::Multibulk { consumed: 14 });
        assert_eq!(argv, vec![&b"PING"[..]]);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let buf = b"*2\r\n$3\r\nSET\r\n$5\r\nhello\r\n";
        let mut argv = Vec::new();
        for i in 0..buf.len() {
            match parse(&buf[..i], &mut argv, Limits::default()).unwrap() {
                Parsed::Incomplete { .. } => {}
                other => panic!("prefix {i} gave {other:?}"),
            }
        }
    }

    #[test]
    fn errors_have_redis_strings() {
        let mut argv = Vec::new();
        let l = Limits::default();
        fn e(b: &[u8], _argv: &mut Vec<&[u8]>) -> String {
            let mut argv = Vec::new();
            parse(b, &mut argv, Limits::default())
                .unwrap_err()
                .to_string()
        }
        let _ = l;
        assert_eq!(
            e(b"*x\r\n", &mut argv),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            e(b"*3000000000\r\n", &mut argv),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            e(b"*1\r\n+foo\r\n", &mut argv),
            "Protocol error: expected '$', got '+'"
        );
        assert_eq!(
            e(b"*1\r\n$-5\r\n", &mut argv),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            e(b"*1\r\n$536870913\r\n", &mut argv),
            "Protocol error: invalid bulk length"
        );
        let big = vec![b'a'; MAX_INLINE + 1];
        assert_eq!(e(&big, &mut argv), "Protocol error: too big inline request");
        let mut big = b"*".to_vec();
        big.extend(vec![b'1'; MAX_INLINE + 1]);
        assert_eq!(
            e(&big, &mut argv),
            "Protocol error: too big mbulk count string"
        );
        let mut big = b"*1\r\n$".to_vec();
        big.extend(vec![b'1'; MAX_INLINE + 1]);
        assert_eq!(
            e(&big, &mut argv),
            "Protocol error: too big bulk count string"
        );
        assert_eq!(
            e(b"SET a \"b\n", &mut argv),
            "Protocol error: unbalanced quotes in request"
        );
        let unauth = Limits {
            authenticated: false,
            ..Limits::default()
        };
        assert_eq!(
            parse(b"*11\r\n", &mut argv, unauth)
                .unwrap_err()
                .to_string(),
            "Protocol error: unauthenticated multibulk length"
        );
        assert_eq!(
            parse(b"*1\r\n$16385\r\n", &mut argv, unauth)
                .unwrap_err()
                .to_string(),
            "Protocol error: unauthenticated bulk length"
        );
    }

    #[test]
    fn huge_claims_do_not_allocate() {
        let mut argv = Vec::new();
        // Claims 2^31-1 arguments and a 512 MB bulk: parsing must neither fail nor reserve that.
        let p = parse(
            b"*2147483647\r\n$536870912\r\nab",
            &mut argv,
            Limits::default(),
        )
        .unwrap();
        assert_eq!(
            p,
            Parsed::Incomplete {
                need: Some(13 + 12 + 536870912 + 2)
            }
        );
        assert!(argv.capacity() <= ARGV_PREALLOC);
    }

    #[test]
    fn inline_quoting() {
        let p = parse_inline(b"set \"a b\" 'c\\'d' \"\\x41\\n\"\r\n").unwrap();
        match p {
            Parsed::Inline { consumed, args } => {
                assert_eq!(consumed, 27);
                assert_eq!(
                    args,
                    vec![
                        b"set".to_vec(),
                        b"a b".to_vec(),
                        b"c'd".to_vec(),
                        b"A\n".to_vec()
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn integers_like_redis() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b""), None);
    }

    proptest! {
        #[test]
        fn roundtrip(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8)) {
            let buf = encode(&args);
            let mut argv = Vec::new();
            let p = parse(&buf, &mut argv, Limits::default()).unwrap();
            prop_assert_eq!(p, Parsed::Multibulk { consumed: buf.len() });
            let got: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
            prop_assert_eq!(got, args);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut argv = Vec::new();
            let _ = parse(&buf, &mut argv, Limits::default());
        }
    }
}

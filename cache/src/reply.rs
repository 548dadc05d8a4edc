//! Reply encoding into one output buffer per batch, in RESP2 or RESP3.
//!
//! Commands write through [`Reply`] and never pick the protocol themselves: `map`, `set`,
//! `double`, `null` and `push` degrade to their RESP2 forms when the connection speaks RESP2.

use bytes::BytesMut;

/// The reply buffer of one connection, with the protocol it negotiated.
#[derive(Debug)]
pub struct Reply {
    /// Encoded replies waiting to be written.
    pub buf: BytesMut,
    /// Whether the connection negotiated RESP3 with `HELLO 3`.
    pub resp3: bool,
    /// The error reply written is one a command inside a script already counted in the error
    /// statistics (Redis's `ERR_REPLY_FLAG_NO_STATS_UPDATE`): the script's command counts a
    /// failed call, not a second error.
    pub error_counted: bool,
}

impl Reply {
    /// An empty RESP2 reply buffer.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(16 * 1024),
            resp3: false,
            error_counted: false,
        }
    }

    #[inline]
    fn header(&mut self, tag: u8, n: i64) {
        self.buf.extend_from_slice(&[tag]);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `+OK`.
    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string (must not contain CR or LF).
    #[inline]
    pub fn simple(&mut self, s: &str) {
        self.buf.extend_from_slice(b"+");
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error; `msg` includes its code (`ERR ...`, `WRONGTYPE ...`).
    #[inline]
    pub fn error(&mut self, msg: &str) {
        self.buf.extend_from_slice(b"-");
        // An error line must not contain newlines; Redis replaces them with spaces.
        for &c in msg.as_bytes() {
            self.buf
                .extend_from_slice(&[if c == b'\r' || c == b'\n' { b' ' } else { c }]);
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer.
    #[inline]
    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    /// A bulk string.
    #[inline]
    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string, or null.
    #[inline]
    pub fn opt_bulk(&mut self, data: Option<&[u8]>) {
        match data {
            Some(d) => self.bulk(d),
            None => self.null(),
        }
    }

    /// An integer as a bulk string (what `INCRBYFLOAT` and friends return).
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(n).as_bytes());
    }

    /// Null: `_` in RESP3, the null bulk string `$-1` in RESP2.
    #[inline]
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// Null where RESP2 uses the null array `*-1` (EXEC aborted, BLPOP timeout...).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    /// An array header of `n` elements.
    #[inline]
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map header of `n` pairs (`2n` array elements in RESP2).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    /// A set header of `n` elements (an array in RESP2).
    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'~', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A push header of `n` elements (an array in RESP2).
    pub fn push(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'>', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A double (a bulk string in RESP2), formatted as Redis does.
    pub fn double(&mut self, d: f64) {
        let mut tmp = [0u8; 32];
        let s = fmt_double(d, &mut tmp);
        if self.resp3 {
            self.buf.extend_from_slice(b",");
            let s = match s {
                b"inf" => &b"inf"[..],
                b"-inf" => b"-inf",
                other => other,
            };
            self.buf.extend_from_slice(s);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }

    /// A boolean (`#t`/`#f` in RESP3, `:1`/`:0` in RESP2).
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(i64::from(b));
        }
    }

    /// Verbatim text (`=` in RESP3 with the `txt` format, a bulk string in RESP2).
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }
}

impl Default for Reply {
    fn default() -> Self {
        Self::new()
    }
}

/// Formats a double the way Redis 7.0 replies with scores (`addReplyDouble`): `inf`, `-inf`,
/// otherwise C's `%.17g` (17 significant digits, trailing zeros dropped, exponent form below
/// 1e-4 and from 1e17 on with at least two exponent digits).
pub fn fmt_double(d: f64, tmp: &mut [u8; 32]) -> &[u8] {
    use std::io::Write;
    if d.is_infinite() {
        return if d > 0.0 { b"inf" } else { b"-inf" };
    }
    if d.is_nan() {
        return b"nan";
    }
    if d == 0.0 {
        return if d.is_sign_negative() { b"-0" } else { b"0" };
    }
    // 17 significant digits, correctly rounded: `d.dddddddddddddddde[-]x`.
    let mut sci = [0u8; 40];
    let len = {
        let mut w = &mut sci[..];
        let _ = write!(w, "{:.16e}", d.abs());
        40 - w.len()
    };
    let sci = &sci[..len];
    let e_at = sci.iter().position(|&c| c == b'e').unwrap_or(len);
    let mut digits = [0u8; 17];
    let mut nd = 0;
    for &c in &sci[..e_at] {
        if c.is_ascii_digit() && nd < 17 {
            digits[nd] = c;
            nd += 1;
        }
    }
    let exp: i32 = std::str::from_utf8(&sci[(e_at + 1).min(len)..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    // `%g` drops trailing zeros of the significand.
    while nd > 1 && digits[nd - 1] == b'0' {
        nd -= 1;
    }
    let digits = &digits[..nd];
    let mut n = 0;
    let mut put = |c: u8, n: &mut usize| {
        tmp[*n] = c;
        *n += 1;
    };
    if d < 0.0 {
        put(b'-', &mut n);
    }
    if !(-4..17).contains(&exp) {
        put(digits[0], &mut n);
        if digits.len() > 1 {
            put(b'.', &mut n);
            for &c in &digits[1..] {
                put(c, &mut n);
            }
        }
        put(b'e', &mut n);
        put(if exp < 0 { b'-' } else { b'+' }, &mut n);
        let a = exp.unsigned_abs();
        if a >= 100 {
            put(b'0' + (a / 100) as u8, &mut n);
        }
        put(b'0' + (a / 10 % 10) as u8, &mut n);
        put(b'0' + (a % 10) as u8, &mut n);
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        for i in 0..int_len {
            put(digits.get(i).copied().unwrap_or(b'0'), &mut n);
        }
        if digits.len() > int_len {
            put(b'.', &mut n);
            for &c in &digits[int_len..] {
                put(c, &mut n);
            }
        }
    } else {
        put(b'0', &mut n);
        put(b'.', &mut n);
        for _ in 0..(-exp - 1) {
            put(b'0', &mut n);
        }
        for &c in digits {
            put(c, &mut n);
        }
    }
    &tmp[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(d: f64) -> String {
        let mut t = [0u8; 32];
        String::from_utf8(fmt_double(d, &mut t).to_vec()).unwrap()
    }

    #[test]
    fn doubles_like_redis() {
        assert_eq!(f(1.0), "1");
        assert_eq!(f(-3.0), "-3");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(0.1), "0.10000000000000001");
        assert_eq!(f(0.7417422359537995), "0.74174223595379951");
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(1e16), "10000000000000000");
        assert_eq!(f(1e17), "1e+17");
        assert_eq!(f(1.0001e-4), "0.00010001");
        assert_eq!(f(-1.7976931348623157e308), "-1.7976931348623157e+308");
        assert_eq!(f(5e-324), "4.9406564584124654e-324");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1.5e-7), "1.4999999999999999e-07");
    }

    #[test]
    fn resp2_and_resp3_forms() {
        let mut r = Reply::new();
        r.map(1);
        r.null();
        r.double(2.5);
        assert_eq!(&r.buf[..], b"*2\r\n$-1\r\n$3\r\n2.5\r\n");
        let mut r = Reply::new();
        r.resp3 = true;
        r.map(1);
        r.null();
        r.double(2.5);
        assert_eq!(&r.buf[..], b"%1\r\n_\r\n,2.5\r\n");
    }
}

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
}

impl Reply {
    /// An empty RESP2 reply buffer.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(16 * 1024),
            resp3: false,
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

/// Formats a double the way Redis replies with scores: integers without a fraction, `inf`,
/// `-inf`, otherwise the shortest round-tripping form (`%.17g`-equivalent precision).
pub fn fmt_double(d: f64, tmp: &mut [u8; 32]) -> &[u8] {
    if d.is_infinite() {
        return if d > 0.0 { b"inf" } else { b"-inf" };
    }
    if d.is_nan() {
        return b"nan";
    }
    if d == d.trunc() && d.abs() < 1e17 {
        let mut b = itoa::Buffer::new();
        let s = b.format(d as i64).as_bytes();
        let s = if d == 0.0 && d.is_sign_negative() {
            &b"-0"[..]
        } else {
            s
        };
        tmp[..s.len()].copy_from_slice(s);
        return &tmp[..s.len()];
    }
    let mut b = ryu::Buffer::new();
    let s = b.format_finite(d).as_bytes();
    // ryu writes exponents as `1e20`/`1e-7`; Redis (`%.17g`) writes `1e+20`/`1e-07`. Normalize.
    let n = if let Some(e) = s.iter().position(|&c| c == b'e') {
        let (mant, exp) = s.split_at(e);
        let exp = &exp[1..];
        let (sign, digits) = match exp.first() {
            Some(b'-') => (b'-', &exp[1..]),
            _ => (b'+', exp),
        };
        let mut n = 0;
        for &c in mant {
            tmp[n] = c;
            n += 1;
        }
        tmp[n] = b'e';
        tmp[n + 1] = sign;
        n += 2;
        if digits.len() < 2 {
            tmp[n] = b'0';
            n += 1;
        }
        for &c in digits {
            tmp[n] = c;
            n += 1;
        }
        n
    } else {
        tmp[..s.len()].copy_from_slice(s);
        s.len()
    };
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
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1.5e-7), "1.5e-07");
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

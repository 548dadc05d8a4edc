//! Lua values to RESP and back, with Redis's rules (`script_lua.c`).

use mlua::{Lua, Table, Value};

use crate::reply::Reply;

/// Nesting a reply may have before `reached lua stack limit` (Redis runs out of Lua stack
/// at about this depth).
const MAX_DEPTH: usize = 1000;

/// `redis.call` arguments (`n` of them in `t`) as command arguments: strings as they are,
/// numbers as `%.17g`. Read one at a time: each value held would take a slot of mlua's
/// reference stack, which has room for about 8000.
pub(super) fn lua_args(n: usize, t: &Table) -> Result<Vec<Vec<u8>>, &'static str> {
    if n == 0 {
        return Err("Please specify at least one argument for this redis lib call");
    }
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for i in 1..=n {
        match t.raw_get::<Value>(i) {
            Ok(Value::String(s)) => out.push(s.as_bytes().to_vec()),
            Ok(Value::Integer(i)) => out.push(i.to_string().into_bytes()),
            Ok(Value::Number(n)) => out.push(fmt_g(n, 17).into_bytes()),
            _ => return Err("Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(out)
}

/// The field of an error table whose error was already counted in the error statistics.
pub(super) const COUNTED: &str = "ignore_error_stats_update";

/// Whether `v` is an error table whose error was already counted.
pub(super) fn is_counted(v: &Value) -> bool {
    matches!(v, Value::Table(t) if t.raw_get::<bool>(COUNTED).unwrap_or(false))
}

/// The `{err=...}` table for an error text: `-CODE msg` keeps its code, a bare message gets
/// `ERR` (Redis's `luaPushErrorBuff`).
pub(super) fn error_table(lua: &Lua, msg: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", normalize_error(msg))?;
    Ok(Value::Table(t))
}

/// `-CODE msg` or `msg` as `CODE msg` / `ERR msg`, without trailing CR/LF.
pub(super) fn normalize_error(msg: &str) -> String {
    let (code, rest) = match msg.strip_prefix('-') {
        Some(m) => match m.split_once(' ') {
            Some((c, r)) => (c, r),
            None => ("ERR", m),
        },
        None => ("ERR", msg),
    };
    format!("{code} {}", rest.trim_end_matches(['\r', '\n']))
}

/// A raw RESP reply as a Lua value; the flag tells an error reply.
pub(super) fn resp_to_lua(lua: &Lua, bytes: &[u8]) -> mlua::Result<(Value, bool)> {
    let mut pos = 0;
    let is_err = bytes.first() == Some(&b'-');
    let v = parse(lua, bytes, &mut pos)?;
    Ok((v, is_err))
}

fn line<'b>(b: &'b [u8], pos: &mut usize) -> mlua::Result<&'b [u8]> {
    let start = *pos;
    let end = memchr::memmem::find(&b[start..], b"\r\n")
        .ok_or_else(|| mlua::Error::RuntimeError("truncated reply".into()))?;
    *pos = start + end + 2;
    Ok(&b[start..start + end])
}

fn num(l: &[u8]) -> i64 {
    crate::resp::parse_i64(l).unwrap_or(-1)
}

fn parse(lua: &Lua, b: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    super::deep(|| parse_step(lua, b, pos))
}

fn parse_step(lua: &Lua, b: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let tag = *b
        .get(*pos)
        .ok_or_else(|| mlua::Error::RuntimeError("empty reply".into()))?;
    *pos += 1;
    let l = line(b, pos)?;
    Ok(match tag {
        b'+' => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(l)?)?;
            Value::Table(t)
        }
        b'-' => {
            let t = lua.create_table()?;
            t.raw_set(
                "err",
                normalize_error(&format!("-{}", String::from_utf8_lossy(l))),
            )?;
            Value::Table(t)
        }
        b':' => Value::Number(num(l) as f64),
        b'$' | b'=' | b'!' => {
            let n = num(l);
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let n = n as usize;
            let data = b
                .get(*pos..*pos + n)
                .ok_or_else(|| mlua::Error::RuntimeError("truncated reply".into()))?;
            *pos += n + 2;
            match tag {
                b'=' => {
                    let t = lua.create_table()?;
                    let inner = lua.create_table()?;
                    let (fmt, s) = if data.len() >= 4 {
                        (&data[..3], &data[4..])
                    } else {
                        (&b"txt"[..], data)
                    };
                    inner.raw_set("string", lua.create_string(s)?)?;
                    inner.raw_set("format", lua.create_string(fmt)?)?;
                    t.raw_set("verbatim_string", inner)?;
                    Value::Table(t)
                }
                b'!' => {
                    let t = lua.create_table()?;
                    t.raw_set(
                        "err",
                        normalize_error(&format!("-{}", String::from_utf8_lossy(data))),
                    )?;
                    Value::Table(t)
                }
                _ => Value::String(lua.create_string(data)?),
            }
        }
        b'*' | b'~' | b'>' => {
            let n = num(l);
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let t = lua.create_table()?;
            if tag == b'~' {
                let set = lua.create_table()?;
                for _ in 0..n {
                    let v = parse(lua, b, pos)?;
                    set.raw_set(v, true)?;
                }
                t.raw_set("set", set)?;
            } else {
                for i in 0..n {
                    let v = parse(lua, b, pos)?;
                    t.raw_set(i + 1, v)?;
                }
            }
            Value::Table(t)
        }
        b'%' => {
            let n = num(l);
            let t = lua.create_table()?;
            let map = lua.create_table()?;
            for _ in 0..n.max(0) {
                let k = parse(lua, b, pos)?;
                let v = parse(lua, b, pos)?;
                map.raw_set(k, v)?;
            }
            t.raw_set("map", map)?;
            Value::Table(t)
        }
        b'|' => {
            // Attributes are not shown to scripts: skip them, then the reply itself.
            for _ in 0..num(l).max(0) * 2 {
                parse(lua, b, pos)?;
            }
            parse(lua, b, pos)?
        }
        b'_' => Value::Nil,
        b'#' => Value::Boolean(l == b"t"),
        b',' => {
            let s = String::from_utf8_lossy(l).to_ascii_lowercase();
            let d = match s.as_str() {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" => f64::NAN,
                other => other.parse().unwrap_or(0.0),
            };
            let t = lua.create_table()?;
            t.raw_set("double", d)?;
            Value::Table(t)
        }
        b'(' => {
            let t = lua.create_table()?;
            t.raw_set("big_number", lua.create_string(l)?)?;
            Value::Table(t)
        }
        _ => return Err(mlua::Error::RuntimeError("unknown reply type".into())),
    })
}

fn field(t: &Table, k: &str) -> Value {
    t.raw_get::<Value>(k).unwrap_or(Value::Nil)
}

/// Writes a script's result (Redis's `luaReplyToRedisReply`); `script_resp3` is the protocol
/// the script chose with `redis.setresp`.
pub(super) fn lua_to_resp(v: &Value, out: &mut Reply, script_resp3: bool, depth: usize) {
    super::deep(|| lua_to_resp_step(v, out, script_resp3, depth))
}

fn lua_to_resp_step(v: &Value, out: &mut Reply, script_resp3: bool, depth: usize) {
    if depth > MAX_DEPTH {
        out.error("ERR reached lua stack limit");
        return;
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => {
            if !script_resp3 {
                if *b {
                    out.int(1);
                } else {
                    out.null();
                }
            } else {
                out.boolean(*b);
            }
        }
        Value::Integer(i) => out.int(*i),
        Value::Number(n) => out.int(lua_number_to_i64(*n)),
        Value::Table(t) => table_to_resp(t, out, script_resp3, depth),
        _ => out.null(),
    }
}

/// `(long long)` of a Lua number: truncation toward zero, saturating.
fn lua_number_to_i64(n: f64) -> i64 {
    if n.is_nan() { i64::MIN } else { n as i64 }
}

fn table_to_resp(t: &Table, out: &mut Reply, r3: bool, depth: usize) {
    if let Value::String(e) = field(t, "err") {
        if depth == 0 {
            out.error_counted = t.raw_get::<bool>(COUNTED).unwrap_or(false);
        }
        let msg = e.to_string_lossy();
        out.error(msg.strip_prefix('-').unwrap_or(&msg));
        return;
    }
    if let Value::String(s) = field(t, "ok") {
        let s = s.to_string_lossy().replace(['\r', '\n'], " ");
        out.simple(&s);
        return;
    }
    match field(t, "double") {
        Value::Number(d) => {
            out.double(d);
            return;
        }
        Value::Integer(i) => {
            out.double(i as f64);
            return;
        }
        _ => {}
    }
    if let Value::String(s) = field(t, "big_number") {
        let s = s.to_string_lossy().replace(['\r', '\n'], " ");
        if out.resp3 {
            out.buf.extend_from_slice(b"(");
            out.buf.extend_from_slice(s.as_bytes());
            out.buf.extend_from_slice(b"\r\n");
        } else {
            out.bulk(s.as_bytes());
        }
        return;
    }
    if let Value::Table(vt) = field(t, "verbatim_string")
        && let Value::String(fmt) = field(&vt, "format")
        && let Value::String(s) = field(&vt, "string")
    {
        let s = s.as_bytes();
        if out.resp3 {
            let fmt = fmt.as_bytes();
            let mut f = [b' '; 3];
            for (d, c) in f.iter_mut().zip(fmt.iter()) {
                *d = *c;
            }
            out.buf
                .extend_from_slice(format!("={}\r\n", s.len() + 4).as_bytes());
            out.buf.extend_from_slice(&f);
            out.buf.extend_from_slice(b":");
            out.buf.extend_from_slice(&s);
            out.buf.extend_from_slice(b"\r\n");
        } else {
            out.bulk(&s);
        }
        return;
    }
    // Large tables are walked twice (count, then write) rather than collected: every value
    // held takes a slot of mlua's reference stack.
    if let Value::Table(m) = field(t, "map") {
        let n = m.pairs::<Value, Value>().count();
        out.map(n);
        for (k, v) in m.pairs::<Value, Value>().filter_map(Result::ok) {
            lua_to_resp(&k, out, r3, depth + 1);
            lua_to_resp(&v, out, r3, depth + 1);
        }
        return;
    }
    if let Value::Table(s) = field(t, "set") {
        let n = s.pairs::<Value, Value>().count();
        out.set(n);
        for (k, _) in s.pairs::<Value, Value>().filter_map(Result::ok) {
            lua_to_resp(&k, out, r3, depth + 1);
        }
        return;
    }
    let mut n = 0i64;
    while !matches!(t.raw_get::<Value>(n + 1), Ok(Value::Nil) | Err(_)) {
        n += 1;
    }
    out.array(n as usize);
    for j in 1..=n {
        let v = t.raw_get::<Value>(j).unwrap_or(Value::Nil);
        lua_to_resp(&v, out, r3, depth + 1);
    }
}

/// C's `%.{prec}g`.
pub fn fmt_g(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_owned()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_g;

    #[test]
    fn fmt_g_matches_c() {
        assert_eq!(fmt_g(100.5, 17), "100.5");
        assert_eq!(fmt_g(0.1, 17), "0.10000000000000001");
        assert_eq!(fmt_g(1e20, 17), "1e+20");
        assert_eq!(fmt_g(0.0003, 14), "0.0003");
        assert_eq!(fmt_g(-5000.0, 14), "-5000");
        assert_eq!(fmt_g(1.5e-7, 14), "1.5e-07");
        assert_eq!(fmt_g(3.0, 17), "3");
    }
}

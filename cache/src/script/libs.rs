//! The libraries Redis links into its Lua (`cjson`, `bit`) and the Rust side of the `redis`
//! table, written in Rust over mlua because vendored Lua 5.1 has none of them.

use std::sync::Arc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value, Variadic};
use parking_lot::Mutex;

use super::convert::fmt_g;

/// Puts the Rust callbacks into `rt` (the sandbox reads them from there).
pub(super) fn install(lua: &Lua, rt: &Table) -> mlua::Result<()> {
    rt.raw_set("version", "7.0.15")?;
    // The error handler's position: the innermost frame that is neither C nor the sandbox.
    rt.raw_set(
        "where",
        lua.create_function(|lua, ()| {
            // A script that ends in `return redis.call(...)` has no frame of its own left (Lua
            // 5.1 replaced it with a tail call): Redis then names the tail call's frame.
            let mut tail: Option<(String, i64)> = None;
            for level in 1..32 {
                let found = lua.inspect_stack(level, |d| {
                    let s = d.source();
                    let src = s.source.as_deref().unwrap_or("").to_owned();
                    let line = d.current_line().map(|l| l as i64).unwrap_or(-1);
                    if s.what == "tail" {
                        Err((src, line))
                    } else if s.what == "C" || src == "=redis_sandbox" {
                        Ok(None)
                    } else {
                        Ok(Some((src, line)))
                    }
                });
                match found {
                    None => break,
                    Some(Ok(Some((src, line)))) => return Ok((Some(src), Some(line))),
                    Some(Ok(None)) => {}
                    Some(Err(t)) => {
                        tail.get_or_insert(t);
                    }
                }
            }
            Ok(tail.map_or((None, None), |(s, l)| (Some(s), Some(l))))
        })?,
    )?;
    rt.raw_set("version_num", 0x0007_000f)?;
    rt.raw_set(
        "log",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() < 2 {
                return err(lua, "ERR redis.log() requires two arguments or more.");
            }
            let level = match &args[0] {
                Value::Integer(i) => *i,
                Value::Number(n) => *n as i64,
                _ => return err(lua, "ERR First argument must be a number (log level)."),
            };
            if !(0..=3).contains(&level) {
                return err(lua, "ERR Invalid debug level.");
            }
            let msg: Vec<String> = args
                .iter()
                .skip(1)
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.to_string_lossy()),
                    Value::Integer(i) => Some(i.to_string()),
                    Value::Number(n) => Some(fmt_g(*n, 14)),
                    _ => None,
                })
                .collect();
            let msg = msg.join(" ");
            match level {
                0 => tracing::debug!(target: "cache::script", "{msg}"),
                1 | 2 => tracing::info!(target: "cache::script", "{msg}"),
                _ => tracing::warn!(target: "cache::script", "{msg}"),
            }
            Ok((Value::Nil, Value::Nil))
        })?,
    )?;
    rt.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return err(lua, "ERR wrong number of arguments");
            }
            let data = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(i) => i.to_string().into_bytes(),
                Value::Number(n) => fmt_g(*n, 14).into_bytes(),
                _ => Vec::new(),
            };
            Ok((
                Value::String(lua.create_string(super::sha1_hex(&data))?),
                Value::Nil,
            ))
        })?,
    )?;
    for (name, field) in [("error_reply", "err"), ("status_reply", "ok")] {
        rt.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let t = lua.create_table()?;
                match (args.len(), args.front()) {
                    (1, Some(Value::String(s))) => {
                        if field == "err" {
                            let s = s.to_string_lossy();
                            let s = if s.starts_with('-') {
                                s
                            } else {
                                format!("-{s}")
                            };
                            t.raw_set("err", super::convert::normalize_error(&s))?;
                        } else {
                            t.raw_set("ok", s.clone())?;
                        }
                    }
                    _ => t.raw_set("err", "ERR wrong number or type of arguments")?,
                }
                Ok(t)
            })?,
        )?;
    }
    rt.raw_set(
        "set_repl",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return err(lua, "ERR redis.set_repl() requires two arguments.");
            }
            let f = match &args[0] {
                Value::Integer(i) => *i,
                Value::Number(n) => *n as i64,
                _ => 0,
            };
            if f & !3 != 0 {
                return err(
                    lua,
                    "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                );
            }
            // Every write is replicated as the key's state; there is no AOF to leave out.
            Ok((Value::Nil, Value::Nil))
        })?,
    )?;
    rt.raw_set(
        "acl_check_cmd",
        // Outside a run (the run puts the caller's own check in its place): only the command
        // is checked.
        lua.create_function(|lua, (n, argv): (usize, mlua::Table)| {
            let args = match super::convert::lua_args(n, &argv) {
                Ok(a) => a,
                Err(msg) => return err(lua, &format!("ERR {msg}")),
            };
            let name = args[0].to_ascii_lowercase();
            if crate::cmd::table::lookup(&name).is_none() {
                return err(lua, "ERR Invalid command passed to redis.acl_check_cmd()");
            }
            // No caller outside a run: nothing to deny.
            Ok((Value::Boolean(true), Value::Nil))
        })?,
    )?;
    let rng = Arc::new(Mutex::new(Rand48::new(0)));
    let r2 = rng.clone();
    rt.raw_set(
        "random",
        lua.create_function(move |_, args: Variadic<f64>| {
            let r = f64::from(rng.lock().next() % i32::MAX as u32) / f64::from(i32::MAX);
            match args.len() {
                0 => Ok(r),
                1 => {
                    let u = args[0] as i64;
                    if u < 1 {
                        return Err(mlua::Error::RuntimeError(
                            "bad argument #1 to 'random' (interval is empty)".into(),
                        ));
                    }
                    Ok((r * u as f64).floor() + 1.0)
                }
                2 => {
                    let (l, u) = (args[0] as i64, args[1] as i64);
                    if l > u {
                        return Err(mlua::Error::RuntimeError(
                            "bad argument #2 to 'random' (interval is empty)".into(),
                        ));
                    }
                    Ok((r * (u - l + 1) as f64).floor() + l as f64)
                }
                _ => Err(mlua::Error::RuntimeError(
                    "wrong number of arguments".into(),
                )),
            }
        })?,
    )?;
    rt.raw_set(
        "randomseed",
        lua.create_function(move |_, seed: Option<f64>| {
            *r2.lock() = Rand48::new(seed.unwrap_or(0.0) as i64 as i32);
            Ok(())
        })?,
    )?;
    rt.raw_set("cjson", cjson(lua)?)?;
    rt.raw_set("bit", bit(lua)?)?;
    rt.raw_set("cmsgpack", cmsgpack(lua)?)?;
    rt.raw_set("struct", structlib(lua)?)?;
    Ok(())
}

fn err(lua: &Lua, msg: &str) -> mlua::Result<(Value, Value)> {
    Ok((Value::Nil, Value::String(lua.create_string(msg)?)))
}

/// Redis's `redisLrand48`: the same sequence for a seed on every platform.
struct Rand48(u64);

impl Rand48 {
    fn new(seed: i32) -> Self {
        Self(((seed as u32 as u64) << 16) | 0x330e)
    }

    fn next(&mut self) -> u32 {
        self.0 = (self.0.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xb)) & 0xffff_ffff_ffff;
        (self.0 >> 17) as u32
    }
}

fn rt_err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// `bit` (LuaBitOp): 32-bit operations on numbers.
fn bit(lua: &Lua) -> mlua::Result<Table> {
    fn tobit(v: f64) -> i32 {
        // LuaBitOp normalizes through the 2^52+2^51 trick: modular conversion to 32 bits.
        let m = v.rem_euclid(4_294_967_296.0);
        (m as u64 as u32) as i32
    }
    let t = lua.create_table()?;
    t.raw_set("tobit", lua.create_function(|_, v: f64| Ok(tobit(v)))?)?;
    t.raw_set("bnot", lua.create_function(|_, v: f64| Ok(!tobit(v)))?)?;
    t.raw_set(
        "band",
        lua.create_function(|_, v: Variadic<f64>| Ok(v.iter().fold(-1i32, |a, b| a & tobit(*b))))?,
    )?;
    t.raw_set(
        "bor",
        lua.create_function(|_, v: Variadic<f64>| Ok(v.iter().fold(0i32, |a, b| a | tobit(*b))))?,
    )?;
    t.raw_set(
        "bxor",
        lua.create_function(|_, v: Variadic<f64>| Ok(v.iter().fold(0i32, |a, b| a ^ tobit(*b))))?,
    )?;
    t.raw_set(
        "lshift",
        lua.create_function(|_, (v, n): (f64, f64)| {
            Ok(((tobit(v) as u32) << (tobit(n) & 31)) as i32)
        })?,
    )?;
    t.raw_set(
        "rshift",
        lua.create_function(|_, (v, n): (f64, f64)| {
            Ok(((tobit(v) as u32) >> (tobit(n) & 31)) as i32)
        })?,
    )?;
    t.raw_set(
        "arshift",
        lua.create_function(|_, (v, n): (f64, f64)| Ok(tobit(v) >> (tobit(n) & 31)))?,
    )?;
    t.raw_set(
        "rol",
        lua.create_function(|_, (v, n): (f64, f64)| {
            Ok((tobit(v) as u32).rotate_left((tobit(n) & 31) as u32) as i32)
        })?,
    )?;
    t.raw_set(
        "ror",
        lua.create_function(|_, (v, n): (f64, f64)| {
            Ok((tobit(v) as u32).rotate_right((tobit(n) & 31) as u32) as i32)
        })?,
    )?;
    t.raw_set(
        "bswap",
        lua.create_function(|_, v: f64| Ok((tobit(v) as u32).swap_bytes() as i32))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (v, n): (f64, Option<f64>)| {
            let mut n = n.map(tobit).unwrap_or(8);
            let upper = n < 0;
            if upper {
                n = -n;
            }
            let n = n.clamp(1, 8) as usize;
            let x = tobit(v) as u32;
            let s = if upper {
                format!("{x:08X}")
            } else {
                format!("{x:08x}")
            };
            Ok(s[8 - n..].to_owned())
        })?,
    )?;
    Ok(t)
}

/// cjson's settings (per Lua state, changed by the `encode_*`/`decode_*` functions).
struct CjsonCfg {
    encode_max_depth: usize,
    decode_max_depth: usize,
    encode_invalid_numbers: bool,
}

/// `cjson`: encode and decode as lua-cjson does (forward slashes escaped, `%.14g` numbers).
fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let cfg = Arc::new(Mutex::new(CjsonCfg {
        encode_max_depth: 1000,
        decode_max_depth: 1000,
        encode_invalid_numbers: false,
    }));
    let t = lua.create_table()?;
    let null = Value::LightUserData(LightUserData(std::ptr::null_mut()));
    t.raw_set("null", null)?;
    let c = cfg.clone();
    t.raw_set(
        "encode",
        lua.create_function(move |_, v: Value| {
            let cfg = c.lock();
            let mut out = Vec::new();
            encode(&v, &mut out, 1, &cfg)?;
            Ok(mlua::BString::from(out))
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode",
        lua.create_function(move |lua, s: mlua::String| {
            let depth = c.lock().decode_max_depth;
            let b = s.as_bytes();
            let mut p = Parser {
                b: &b,
                pos: 0,
                max_depth: depth,
            };
            p.ws();
            let v = p.value(lua, 1)?;
            p.ws();
            if p.pos < p.b.len() {
                return Err(rt_err(format!(
                    "Expected the end but found invalid token at character {}",
                    p.pos + 1
                )));
            }
            Ok(v)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_max_depth",
        lua.create_function(move |_, d: Option<f64>| {
            let mut g = c.lock();
            if let Some(d) = d {
                g.encode_max_depth = d.max(1.0) as usize;
            }
            Ok(g.encode_max_depth)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode_max_depth",
        lua.create_function(move |_, d: Option<f64>| {
            let mut g = c.lock();
            if let Some(d) = d {
                g.decode_max_depth = d.max(1.0) as usize;
            }
            Ok(g.decode_max_depth)
        })?,
    )?;
    let c = cfg;
    t.raw_set(
        "encode_invalid_numbers",
        lua.create_function(move |_, v: Value| {
            let mut g = c.lock();
            match v {
                Value::Boolean(b) => g.encode_invalid_numbers = b,
                Value::String(s) => g.encode_invalid_numbers = s.as_bytes().as_ref() == b"on",
                _ => {}
            }
            Ok(g.encode_invalid_numbers)
        })?,
    )?;
    t.raw_set(
        "encode_keep_buffer",
        lua.create_function(|_, _: MultiValue| Ok(true))?,
    )?;
    t.raw_set(
        "encode_number_precision",
        lua.create_function(|_, _: MultiValue| Ok(14))?,
    )?;
    t.raw_set(
        "encode_sparse_array",
        lua.create_function(|_, _: MultiValue| Ok(()))?,
    )?;
    t.raw_set(
        "decode_invalid_numbers",
        lua.create_function(|_, _: MultiValue| Ok(true))?,
    )?;
    Ok(t)
}

fn encode(v: &Value, out: &mut Vec<u8>, depth: usize, cfg: &CjsonCfg) -> mlua::Result<()> {
    super::deep(|| encode_step(v, out, depth, cfg))
}

fn encode_step(v: &Value, out: &mut Vec<u8>, depth: usize, cfg: &CjsonCfg) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() && !cfg.encode_invalid_numbers {
                return Err(rt_err("Cannot serialise number: must not be NaN or Inf"));
            }
            out.extend_from_slice(fmt_g(*n, 14).as_bytes());
        }
        Value::String(s) => encode_str(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth > cfg.encode_max_depth {
                return Err(rt_err(format!(
                    "Cannot serialise, excessive nesting ({depth})"
                )));
            }
            // An array if every key is a positive integer (and not excessively sparse).
            let mut max = 0i64;
            let mut count = 0i64;
            let mut is_array = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair?;
                let idx = match k {
                    Value::Integer(i) => Some(i as f64),
                    Value::Number(n) => Some(n),
                    _ => None,
                };
                match idx {
                    Some(n) if n >= 1.0 && n.fract() == 0.0 => {
                        max = max.max(n as i64);
                        count += 1;
                    }
                    _ => {
                        is_array = false;
                        break;
                    }
                }
            }
            if is_array && count > 0 {
                if max > count * 2 && max > 10 {
                    return Err(rt_err("Cannot serialise table: excessively sparse array"));
                }
                out.push(b'[');
                for i in 1..=max {
                    if i > 1 {
                        out.push(b',');
                    }
                    let v: Value = t.raw_get(i)?;
                    encode(&v, out, depth + 1, cfg)?;
                }
                out.push(b']');
                return Ok(());
            }
            out.push(b'{');
            let mut first = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair?;
                if !first {
                    out.push(b',');
                }
                first = false;
                match &k {
                    Value::String(s) => encode_str(&s.as_bytes(), out),
                    Value::Integer(i) => encode_str(i.to_string().as_bytes(), out),
                    Value::Number(n) => encode_str(fmt_g(*n, 14).as_bytes(), out),
                    _ => {
                        return Err(rt_err(
                            "Cannot serialise table: table key must be a number or string",
                        ));
                    }
                }
                out.push(b':');
                encode(&v, out, depth + 1, cfg)?;
            }
            out.push(b'}');
        }
        other => {
            return Err(rt_err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )));
        }
    }
    Ok(())
}

fn encode_str(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.pos < self.b.len() && matches!(self.b[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> mlua::Result<T> {
        Err(rt_err(format!(
            "Expected {what} but found invalid token at character {}",
            self.pos + 1
        )))
    }

    fn value(&mut self, lua: &Lua, depth: usize) -> mlua::Result<Value> {
        super::deep(|| self.value_step(lua, depth))
    }

    fn value_step(&mut self, lua: &Lua, depth: usize) -> mlua::Result<Value> {
        self.ws();
        let Some(&c) = self.b.get(self.pos) else {
            return self.fail("value");
        };
        match c {
            b'{' | b'[' => {
                if depth > self.max_depth {
                    return Err(rt_err(format!(
                        "Found too many nested data structures ({depth}) at character {}",
                        self.pos + 1
                    )));
                }
                self.pos += 1;
                let t = lua.create_table()?;
                let close = if c == b'{' { b'}' } else { b']' };
                self.ws();
                if self.b.get(self.pos) == Some(&close) {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                let mut i = 1;
                loop {
                    if c == b'{' {
                        self.ws();
                        if self.b.get(self.pos) != Some(&b'"') {
                            return self.fail("object key string");
                        }
                        let k = self.string(lua)?;
                        self.ws();
                        if self.b.get(self.pos) != Some(&b':') {
                            return self.fail("colon");
                        }
                        self.pos += 1;
                        let v = self.value(lua, depth + 1)?;
                        t.raw_set(k, v)?;
                    } else {
                        let v = self.value(lua, depth + 1)?;
                        t.raw_set(i, v)?;
                        i += 1;
                    }
                    self.ws();
                    match self.b.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(x) if *x == close => {
                            self.pos += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => return self.fail("comma or end"),
                    }
                }
            }
            b'"' => self.string(lua),
            b't' if self.b[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            b'f' if self.b[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            b'n' if self.b[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(Value::LightUserData(LightUserData(std::ptr::null_mut())))
            }
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                while self.pos < self.b.len()
                    && matches!(
                        self.b[self.pos],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.pos += 1;
                }
                let s = std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("");
                match s.parse::<f64>() {
                    Ok(n) => Ok(Value::Number(n)),
                    Err(_) => {
                        self.pos = start;
                        self.fail("value")
                    }
                }
            }
            _ => self.fail("value"),
        }
    }

    fn string(&mut self, lua: &Lua) -> mlua::Result<Value> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.pos) else {
                return Err(rt_err("Expected string end but found end of string"));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(self.pos) else {
                        return self.fail("escape");
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .b
                                .get(self.pos..self.pos + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            let Some(mut cp) = hex else {
                                return self.fail("unicode escape");
                            };
                            self.pos += 4;
                            if (0xd800..0xdc00).contains(&cp)
                                && self.b[self.pos..].starts_with(b"\\u")
                                && let Some(lo) = self
                                    .b
                                    .get(self.pos + 2..self.pos + 6)
                                    .and_then(|h| std::str::from_utf8(h).ok())
                                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                            {
                                cp = 0x10000
                                    + ((cp - 0xd800) << 10)
                                    + (lo.wrapping_sub(0xdc00) & 0x3ff);
                                self.pos += 6;
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        Ok(Value::String(lua.create_string(&out)?))
    }
}

/// lua-cmsgpack's nesting limit: deeper tables are packed as nil.
const MSGPACK_MAX_NESTING: usize = 16;

/// `cmsgpack` (lua-cmsgpack): `pack(...)`, `unpack(s)`, `unpack_one(s, offset)`,
/// `unpack_limit(s, limit, offset)`.
fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|_, args: MultiValue| {
            if args.is_empty() {
                return Err(rt_err("MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for v in &args {
                mp_encode(v, &mut out, 0)?;
            }
            Ok(mlua::BString::from(out))
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::String| {
            let b = s.as_bytes();
            let mut pos = 0;
            let mut vals = Vec::new();
            while pos < b.len() {
                vals.push(mp_decode(lua, &b, &mut pos)?);
            }
            Ok(MultiValue::from_vec(vals))
        })?,
    )?;
    let limit = |lua: &Lua, s: mlua::String, limit: i64, offset: i64| -> mlua::Result<MultiValue> {
        let b = s.as_bytes();
        if offset < 0 || offset as usize > b.len() {
            return Err(rt_err("Start offset greater than input length."));
        }
        let mut pos = offset as usize;
        let mut vals = Vec::new();
        while pos < b.len() && (limit <= 0 || (vals.len() as i64) < limit) {
            vals.push(mp_decode(lua, &b, &mut pos)?);
        }
        let next = if pos < b.len() { pos as i64 } else { -1 };
        let mut out = vec![Value::Integer(next)];
        out.extend(vals);
        Ok(MultiValue::from_vec(out))
    };
    t.raw_set(
        "unpack_one",
        lua.create_function(move |lua, (s, offset): (mlua::String, Option<i64>)| {
            limit(lua, s, 1, offset.unwrap_or(0))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(
            move |lua, (s, l, offset): (mlua::String, i64, Option<i64>)| {
                limit(lua, s, l, offset.unwrap_or(0))
            },
        )?,
    )?;
    Ok(t)
}

fn mp_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_len(len: usize, fix: u8, fix_max: usize, tags: [u8; 2], out: &mut Vec<u8>) {
    if len < fix_max {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(tags[0]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(tags[1]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn mp_encode(v: &Value, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    super::deep(|| mp_encode_step(v, out, level))
}

fn mp_encode_step(v: &Value, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_int(*i, out),
        Value::Number(n) => {
            if n.fract() == 0.0 && *n >= -9.2e18 && *n <= 9.2e18 {
                mp_int(*n as i64, out);
            } else if f64::from(*n as f32) == *n {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            let len = b.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) if level < MSGPACK_MAX_NESTING => {
            // Walked twice (shape, then contents) rather than collected: every value held
            // takes a slot of mlua's reference stack, and tables may have 100k entries.
            let mut max = 0f64;
            let mut count = 0usize;
            let mut is_array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                let n = match k {
                    Value::Integer(i) => i as f64,
                    Value::Number(n) => n,
                    _ => {
                        is_array = false;
                        continue;
                    }
                };
                if n >= 1.0 && n.fract() == 0.0 {
                    max = max.max(n);
                } else {
                    is_array = false;
                }
            }
            if is_array && max as usize == count {
                mp_len(count, 0x90, 16, [0xdc, 0xdd], out);
                for i in 1..=count {
                    let v: Value = t.raw_get(i)?;
                    mp_encode(&v, out, level + 1)?;
                }
            } else {
                mp_len(count, 0x80, 16, [0xde, 0xdf], out);
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    mp_encode(&k, out, level + 1)?;
                    mp_encode(&v, out, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

fn take<'b>(b: &'b [u8], pos: &mut usize, n: usize) -> mlua::Result<&'b [u8]> {
    let s = b
        .get(
            *pos..pos
                .checked_add(n)
                .ok_or_else(|| rt_err("Missing bytes in input."))?,
        )
        .ok_or_else(|| rt_err("Missing bytes in input."))?;
    *pos += n;
    Ok(s)
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

/// Nesting a packed input may have: each level recurses in Rust and holds a Lua table (a
/// hostile payload of nested one-element arrays must not grow the stack without bound).
const MSGPACK_MAX_DECODE_DEPTH: usize = 1000;

fn mp_decode(lua: &Lua, b: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    mp_decode_at(lua, b, pos, 0)
}

fn mp_decode_at(lua: &Lua, b: &[u8], pos: &mut usize, depth: usize) -> mlua::Result<Value> {
    super::deep(|| mp_decode_step(lua, b, pos, depth))
}

fn mp_decode_step(lua: &Lua, b: &[u8], pos: &mut usize, depth: usize) -> mlua::Result<Value> {
    if depth > MSGPACK_MAX_DECODE_DEPTH {
        return Err(rt_err("too many nested data structures in input."));
    }
    let tag = take(b, pos, 1)?[0];
    let str_of = |lua: &Lua, pos: &mut usize, n: usize| -> mlua::Result<Value> {
        Ok(Value::String(lua.create_string(take(b, pos, n)?)?))
    };
    let arr = |lua: &Lua, pos: &mut usize, n: usize| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for i in 1..=n {
            t.raw_set(i, mp_decode_at(lua, b, pos, depth + 1)?)?;
        }
        Ok(Value::Table(t))
    };
    let map = |lua: &Lua, pos: &mut usize, n: usize| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for _ in 0..n {
            let k = mp_decode_at(lua, b, pos, depth + 1)?;
            let v = mp_decode_at(lua, b, pos, depth + 1)?;
            if !matches!(k, Value::Nil) {
                t.raw_set(k, v)?;
            }
        }
        Ok(Value::Table(t))
    };
    Ok(match tag {
        0x00..=0x7f => Value::Number(f64::from(tag)),
        0x80..=0x8f => map(lua, pos, usize::from(tag & 0x0f))?,
        0x90..=0x9f => arr(lua, pos, usize::from(tag & 0x0f))?,
        0xa0..=0xbf => str_of(lua, pos, usize::from(tag & 0x1f))?,
        0xc0 => Value::Nil,
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xca => Value::Number(f64::from(f32::from_bits(be(take(b, pos, 4)?) as u32))),
        0xcb => Value::Number(f64::from_bits(be(take(b, pos, 8)?))),
        0xcc => Value::Number(be(take(b, pos, 1)?) as f64),
        0xcd => Value::Number(be(take(b, pos, 2)?) as f64),
        0xce => Value::Number(be(take(b, pos, 4)?) as f64),
        0xcf => Value::Number(be(take(b, pos, 8)?) as f64),
        0xd0 => Value::Number(f64::from(take(b, pos, 1)?[0] as i8)),
        0xd1 => Value::Number(f64::from(be(take(b, pos, 2)?) as u16 as i16)),
        0xd2 => Value::Number(f64::from(be(take(b, pos, 4)?) as u32 as i32)),
        0xd3 => Value::Number(be(take(b, pos, 8)?) as i64 as f64),
        0xd9 | 0xc4 => {
            let n = be(take(b, pos, 1)?) as usize;
            str_of(lua, pos, n)?
        }
        0xda | 0xc5 => {
            let n = be(take(b, pos, 2)?) as usize;
            str_of(lua, pos, n)?
        }
        0xdb | 0xc6 => {
            let n = be(take(b, pos, 4)?) as usize;
            str_of(lua, pos, n)?
        }
        0xdc => {
            let n = be(take(b, pos, 2)?) as usize;
            arr(lua, pos, n)?
        }
        0xdd => {
            let n = be(take(b, pos, 4)?) as usize;
            if n > b.len() {
                return Err(rt_err("Missing bytes in input."));
            }
            arr(lua, pos, n)?
        }
        0xde => {
            let n = be(take(b, pos, 2)?) as usize;
            map(lua, pos, n)?
        }
        0xdf => {
            let n = be(take(b, pos, 4)?) as usize;
            if n > b.len() {
                return Err(rt_err("Missing bytes in input."));
            }
            map(lua, pos, n)?
        }
        0xe0..=0xff => Value::Number(f64::from(tag as i8)),
        _ => return Err(rt_err("Bad data format in input.")),
    })
}

/// One option of a `struct` format.
enum StructOpt {
    Int {
        size: usize,
        signed: bool,
    },
    Float,
    Double,
    /// `c[n]`: a fixed-length string (n = 0 on unpack: the previous number is the length).
    Chars(usize),
    /// `s`: a zero-terminated string.
    ZString,
    Pad,
}

/// A parsed `struct` format: options with their alignment padding, and the byte order.
struct StructFmt {
    little: bool,
    align: usize,
}

fn struct_num(f: &[u8], i: &mut usize, default: usize) -> usize {
    if *i < f.len() && f[*i].is_ascii_digit() {
        let mut n = 0usize;
        while *i < f.len() && f[*i].is_ascii_digit() {
            n = n
                .saturating_mul(10)
                .saturating_add(usize::from(f[*i] - b'0'));
            *i += 1;
        }
        n
    } else {
        default
    }
}

/// Walks a format, calling `each(option, padding_before)`.
fn struct_walk(
    f: &[u8],
    mut each: impl FnMut(&StructFmt, StructOpt, usize) -> mlua::Result<()>,
) -> mlua::Result<()> {
    let mut h = StructFmt {
        little: cfg!(target_endian = "little"),
        align: 1,
    };
    let mut i = 0;
    let mut pos = 0usize;
    while i < f.len() {
        let c = f[i];
        i += 1;
        let opt = match c {
            b' ' => continue,
            b'<' => {
                h.little = true;
                continue;
            }
            b'>' => {
                h.little = false;
                continue;
            }
            b'=' => {
                h.little = cfg!(target_endian = "little");
                continue;
            }
            b'!' => {
                h.align = struct_num(f, &mut i, 8);
                continue;
            }
            b'x' => StructOpt::Pad,
            b'b' | b'B' => StructOpt::Int {
                size: 1,
                signed: c == b'b',
            },
            b'h' | b'H' => StructOpt::Int {
                size: 2,
                signed: c == b'h',
            },
            b'l' | b'L' | b'T' => StructOpt::Int {
                size: 8,
                signed: c == b'l',
            },
            b'i' | b'I' => {
                let size = struct_num(f, &mut i, 4);
                if size > 32 {
                    return Err(rt_err(format!(
                        "integral size {size} is larger than limit of 32"
                    )));
                }
                StructOpt::Int {
                    size,
                    signed: c == b'i',
                }
            }
            b'f' => StructOpt::Float,
            b'd' => StructOpt::Double,
            b'c' => StructOpt::Chars(struct_num(f, &mut i, 1)),
            b's' => StructOpt::ZString,
            other => {
                return Err(rt_err(format!(
                    "invalid format option '{}'",
                    char::from(other)
                )));
            }
        };
        let size = match &opt {
            StructOpt::Int { size, .. } => *size,
            StructOpt::Float => 4,
            StructOpt::Double => 8,
            _ => 1,
        };
        let pad = if size <= 1 || matches!(opt, StructOpt::Chars(_)) {
            0
        } else {
            let a = size.min(h.align).max(1);
            if !a.is_power_of_two() {
                return Err(rt_err("alignment must be power of 2"));
            }
            (a - (pos & (a - 1))) & (a - 1)
        };
        pos += pad + size;
        each(&h, opt, pad)?;
    }
    Ok(())
}

/// `struct` (lua-struct): `pack(fmt, ...)`, `unpack(fmt, s [, pos])`, `size(fmt)`.
fn structlib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|_, (fmt, args): (mlua::String, MultiValue)| {
            let f = fmt.as_bytes().to_vec();
            let mut out = Vec::new();
            let mut arg = args.into_iter();
            let mut next = |what: &str| -> mlua::Result<Value> {
                arg.next().ok_or_else(|| {
                    rt_err(format!(
                        "bad argument to 'pack' ({what} expected, got no value)"
                    ))
                })
            };
            let num = |v: Value| -> mlua::Result<f64> {
                match v {
                    Value::Integer(i) => Ok(i as f64),
                    Value::Number(n) => Ok(n),
                    Value::String(s) => s
                        .to_str()
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .ok_or_else(|| rt_err("bad argument to 'pack' (number expected)")),
                    _ => Err(rt_err("bad argument to 'pack' (number expected)")),
                }
            };
            struct_walk(&f, |h, opt, pad| {
                out.extend(std::iter::repeat_n(0u8, pad));
                match opt {
                    StructOpt::Pad => out.push(0),
                    StructOpt::Int { size, signed } => {
                        let n = num(next("number")?)?;
                        let v: u64 = if signed { n as i64 as u64 } else { n as u64 };
                        let fill = if signed && (n as i64) < 0 { 0xff } else { 0 };
                        let mut bytes: Vec<u8> = (0..size)
                            .map(|k| if k < 8 { (v >> (8 * k)) as u8 } else { fill })
                            .collect();
                        if !h.little {
                            bytes.reverse();
                        }
                        out.extend_from_slice(&bytes);
                    }
                    StructOpt::Float => {
                        let v = num(next("number")?)? as f32;
                        out.extend_from_slice(&if h.little {
                            v.to_le_bytes()
                        } else {
                            v.to_be_bytes()
                        });
                    }
                    StructOpt::Double => {
                        let v = num(next("number")?)?;
                        out.extend_from_slice(&if h.little {
                            v.to_le_bytes()
                        } else {
                            v.to_be_bytes()
                        });
                    }
                    StructOpt::Chars(n) => {
                        let Value::String(s) = next("string")? else {
                            return Err(rt_err("bad argument to 'pack' (string expected)"));
                        };
                        let b = s.as_bytes();
                        let n = if n == 0 { b.len() } else { n };
                        if b.len() < n {
                            return Err(rt_err("bad argument to 'pack' (string too short)"));
                        }
                        out.extend_from_slice(&b[..n]);
                    }
                    StructOpt::ZString => {
                        let Value::String(s) = next("string")? else {
                            return Err(rt_err("bad argument to 'pack' (string expected)"));
                        };
                        let b = s.as_bytes();
                        if b.contains(&0) {
                            return Err(rt_err("bad argument to 'pack' (string contains zeros)"));
                        }
                        out.extend_from_slice(&b);
                        out.push(0);
                    }
                }
                Ok(())
            })?;
            Ok(mlua::BString::from(out))
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(
            |lua, (fmt, data, init): (mlua::String, mlua::String, Option<i64>)| {
                let f = fmt.as_bytes().to_vec();
                let d = data.as_bytes().to_vec();
                let mut pos = (init.unwrap_or(1).max(1) - 1) as usize;
                if pos > d.len() {
                    return Err(rt_err(
                        "bad argument #3 to 'unpack' (offset must be 1 or greater)",
                    ));
                }
                let mut vals: Vec<Value> = Vec::new();
                let short = || rt_err("data string too short");
                struct_walk(&f, |h, opt, pad| {
                    pos += pad;
                    match opt {
                        StructOpt::Pad => pos += 1,
                        StructOpt::Int { size, signed } => {
                            let b = d.get(pos..pos + size).ok_or_else(short)?;
                            let mut v: u64 = 0;
                            for k in 0..size.min(8) {
                                let byte = if h.little { b[k] } else { b[size - 1 - k] };
                                v |= u64::from(byte) << (8 * k);
                            }
                            let n =
                                if signed && size < 8 && size > 0 && v & (1 << (8 * size - 1)) != 0
                                {
                                    (v as i64 - (1i64 << (8 * size))) as f64
                                } else if signed {
                                    v as i64 as f64
                                } else {
                                    v as f64
                                };
                            vals.push(Value::Number(n));
                            pos += size;
                        }
                        StructOpt::Float => {
                            let b: [u8; 4] = d
                                .get(pos..pos + 4)
                                .ok_or_else(short)?
                                .try_into()
                                .map_err(|_| short())?;
                            let v = if h.little {
                                f32::from_le_bytes(b)
                            } else {
                                f32::from_be_bytes(b)
                            };
                            vals.push(Value::Number(f64::from(v)));
                            pos += 4;
                        }
                        StructOpt::Double => {
                            let b: [u8; 8] = d
                                .get(pos..pos + 8)
                                .ok_or_else(short)?
                                .try_into()
                                .map_err(|_| short())?;
                            let v = if h.little {
                                f64::from_le_bytes(b)
                            } else {
                                f64::from_be_bytes(b)
                            };
                            vals.push(Value::Number(v));
                            pos += 8;
                        }
                        StructOpt::Chars(n) => {
                            let n = if n == 0 {
                                // the length is the previous number read
                                match vals.pop() {
                                    Some(Value::Number(l)) => l as usize,
                                    _ => return Err(rt_err("format 'c0' needs a previous size")),
                                }
                            } else {
                                n
                            };
                            let b = d.get(pos..pos + n).ok_or_else(short)?;
                            vals.push(Value::String(lua.create_string(b)?));
                            pos += n;
                        }
                        StructOpt::ZString => {
                            let rest = d.get(pos..).ok_or_else(short)?;
                            let end = memchr::memchr(0, rest)
                                .ok_or_else(|| rt_err("unfinished string in data"))?;
                            vals.push(Value::String(lua.create_string(&rest[..end])?));
                            pos += end + 1;
                        }
                    }
                    Ok(())
                })?;
                vals.push(Value::Integer((pos + 1) as i64));
                Ok(MultiValue::from_vec(vals))
            },
        )?,
    )?;
    t.raw_set(
        "size",
        lua.create_function(|_, fmt: mlua::String| {
            let f = fmt.as_bytes().to_vec();
            let mut total = 0usize;
            struct_walk(&f, |_, opt, pad| {
                total += pad
                    + match opt {
                        StructOpt::Int { size, .. } => size,
                        StructOpt::Float => 4,
                        StructOpt::Double => 8,
                        StructOpt::Chars(n) => n,
                        StructOpt::Pad => 1,
                        StructOpt::ZString => {
                            return Err(rt_err("options 'c0' - 's' have undefined sizes"));
                        }
                    };
                Ok(())
            })?;
            Ok(total)
        })?,
    )?;
    Ok(t)
}

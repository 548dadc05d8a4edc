//! The command layer: a static command table (name, arity, flags, key positions, handler) and
//! the execution context handlers run in.
//!
//! Handlers are plain functions over a [`Ctx`]: they see the keyspace through [`Ctx::db`] (the
//! lock is taken once per pipelined batch, on first use), write replies into the batch's output
//! buffer, and never know where a key lives. A cluster layer routes *before* dispatch, using
//! the same key positions `COMMAND` reports ([`table::keys_of`]).

pub mod bits;
pub mod clients;
pub mod cluster;
pub mod connection;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod introspect;
pub mod keys;
pub mod lcs;
pub mod list;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod strings;
pub mod table;
pub mod transactions;
pub mod zset;

use std::sync::Arc;

use parking_lot::MutexGuard;

use crate::client::ConnState;
use crate::db::Db;
use crate::reply::Reply;
use crate::shared::Shared;
use crate::value::Bytes;
use table::Command;

/// A command's error reply (its text includes the code: `ERR ...`, `WRONGTYPE ...`).
#[derive(Debug)]
pub enum CmdError {
    /// A fixed message.
    Static(&'static str),
    /// A formatted message.
    Owned(String),
}

impl From<&'static str> for CmdError {
    fn from(s: &'static str) -> Self {
        CmdError::Static(s)
    }
}

impl From<String> for CmdError {
    fn from(s: String) -> Self {
        CmdError::Owned(s)
    }
}

/// What a handler returns; an error is written as the reply.
pub type CmdResult = Result<(), CmdError>;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_KEY: &str = "ERR no such key";
pub const OUT_OF_RANGE: &str = "ERR index out of range";
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const TIMEOUT_NEG: &str = "ERR timeout is negative";
pub const TIMEOUT_INVALID: &str = "ERR timeout is not a float or out of range";

/// A blocking pop that found nothing: the connection waits for a push or the deadline and runs
/// the command again.
#[derive(Debug)]
pub struct BlockRequest {
    /// The command to run again, owned.
    pub args: Vec<Vec<u8>>,
    /// Keys to wait on.
    pub keys: Vec<Bytes>,
    /// Unix ms deadline; 0 = forever.
    pub deadline: u64,
}

/// Everything a handler can touch.
pub struct Ctx<'a> {
    /// State shared by all connections of this server.
    pub shared: &'a Shared,
    guard: Option<MutexGuard<'a, Db>>,
    /// The batch's reply buffer.
    pub out: &'a mut Reply,
    /// Unix milliseconds, sampled once per batch (as Redis caches time per command).
    pub now: u64,
    /// The calling connection.
    pub conn: &'a mut ConnState,
    /// Whether a blocking command may block (false inside MULTI and after its deadline).
    pub may_block: bool,
    /// A script is running the command (`MONITOR` shows it as from `lua`).
    pub in_script: bool,
}

impl<'a> Ctx<'a> {
    /// A context for one batch.
    pub fn new(shared: &'a Shared, conn: &'a mut ConnState, out: &'a mut Reply, now: u64) -> Self {
        Self {
            shared,
            guard: None,
            out,
            now,
            conn,
            may_block: true,
            in_script: false,
        }
    }

    /// The keyspace, locked until the end of the batch.
    #[inline]
    pub fn db(&mut self) -> &mut Db {
        let shared = self.shared;
        self.guard.get_or_insert_with(|| shared.db.lock())
    }

    /// The keyspace if this batch holds it or it is free now; `None` while another holds it
    /// (a script past its time limit): for work that may be skipped rather than wait.
    pub fn try_db(&mut self) -> Option<&mut Db> {
        if self.guard.is_none() {
            self.guard = self.shared.db.try_lock();
        }
        self.guard.as_deref_mut()
    }

    /// The keyspace, the reply buffer and the batch time at once (disjoint borrows).
    #[inline]
    pub fn split(&mut self) -> (&mut Db, &mut Reply, u64) {
        let shared = self.shared;
        let db = self.guard.get_or_insert_with(|| shared.db.lock());
        (&mut **db, &mut *self.out, self.now)
    }

    /// The keyspace if this batch has locked it already.
    pub fn locked_db(&mut self) -> Option<&mut Db> {
        self.guard.as_deref_mut()
    }

    /// Releases the keyspace lock (before waiting, or before touching other locks).
    pub fn release(&mut self) {
        self.guard = None;
    }

    /// Runs one command (already known to pass auth and MULTI checks and routed here) and
    /// writes its reply; a write is then captured for the other nodes that hold its keys.
    pub fn run(&mut self, cmd: &'static table::Command, args: &[&[u8]]) {
        // Checked here, not in `run_here`: a peer's key state applied as a replica is not a
        // write this node runs for a client, and `min-replicas-to-write` must not refuse it.
        if let Err(e) = self.shared.replicas_ok()
            && cmd.flags.contains(&"write")
        {
            self.shared.intro.rejected(Some(cmd.name), e.as_bytes());
            self.out.error(e);
            return;
        }
        let placement = self
            .shared
            .placement
            .get()
            .filter(|_| cmd.flags.contains(&"write"));
        // The write's keys (listed once, here, for the capture too), and which of them hold a
        // value before it runs. A key absent before and after was not written (a DEL or
        // PEXPIRE of a key this node lacks), and its absence must not travel as a delete: on a
        // node that lags (a fallback, a member catching up) it would delete, with a newer
        // version, the key the owners hold. Redis propagates no such command either.
        let keys: Vec<&[u8]> = match placement {
            Some(_) => table::keys_of(cmd, args).unwrap_or_default(),
            None => Vec::new(),
        };
        let existed: Vec<bool> = if keys.is_empty() {
            Vec::new()
        } else {
            let now = self.now;
            let db = self.db();
            keys.iter().map(|k| db.peek_ref(k, now).is_some()).collect()
        };
        self.run_here(cmd, args);
        if let Some(p) = placement {
            let (now, shared) = (self.now, self.shared);
            let db = self.guard.get_or_insert_with(|| shared.db.lock());
            p.capture(db, now, cmd, &keys, &existed, self.conn);
        }
    }

    /// Runs one command on this node's keyspace only and writes its reply: nothing is
    /// captured (a peer's key state being applied, which its sender already versioned).
    pub fn run_here(&mut self, cmd: &'static table::Command, args: &[&[u8]]) {
        if cmd.flags.contains(&"denyoom") {
            let now = self.now;
            if let Err(e) = self.db().ensure_memory(now) {
                self.shared.intro.rejected(Some(cmd.name), e.as_bytes());
                self.out.error(e);
                return;
            }
        }
        let start = std::time::Instant::now();
        let offset = self.out.buf.len();
        let was_blocked = self.conn.block.is_some();
        // Monitors see a script as it starts, before the commands it calls (`skip_monitor`:
        // Redis feeds EVAL and FCALL itself); every other command once it has run (`ran`).
        if cmd.flags.contains(&"skip_monitor") && self.conn.retry_deadline.is_none() {
            self.feed_monitors(cmd, table::effective(cmd, args), args);
        }
        if let Err(e) = (cmd.handler)(self, args) {
            match e {
                CmdError::Static(s) => self.out.error(s),
                CmdError::Owned(s) => self.out.error(&s),
            }
        }
        // Keyspace notifications and client-side caching: what the command changed or read.
        // CONFIG SET may evict without holding the batch's lock.
        if self.guard.is_none() && cmd.name == "config" {
            self.db();
        }
        if let Some(db) = self.guard.as_mut()
            && !db.log.changes.is_empty()
        {
            let reply = self.out.buf.get(offset..).unwrap_or_default();
            crate::notify::dispatch(self.shared, db, Some((cmd, args, reply)), self.conn.id);
        }
        crate::tracking::after_command(self, cmd, args);
        // A command that went to wait is counted once, when it is served.
        if !was_blocked && self.conn.block.is_some() {
            return;
        }
        self.ran(cmd, args, start.elapsed().as_micros() as u64, offset);
    }

    /// Shows `args` to `MONITOR` clients, unless it is an admin command or subcommand (`full`;
    /// Redis hides them).
    fn feed_monitors(&self, cmd: &table::Command, full: &table::Command, args: &[&[u8]]) {
        if !self
            .shared
            .intro
            .monitoring
            .load(std::sync::atomic::Ordering::Relaxed)
            || cmd.flags.contains(&"admin")
            || full.flags.contains(&"admin")
        {
            return;
        }
        if self.in_script {
            self.shared.intro.feed_monitors("lua", args);
        } else {
            self.shared.intro.feed_monitors(self.conn.info.addr, args);
        }
    }

    /// Records a finished command for INFO commandstats/errorstats, SLOWLOG and LATENCY.
    fn ran(&mut self, cmd: &'static table::Command, args: &[&[u8]], usec: u64, offset: usize) {
        let full = table::effective(cmd, args);
        if !cmd.flags.contains(&"skip_monitor") {
            self.feed_monitors(cmd, full, args);
        }
        let act = &self.conn.info.activity;
        *act.last_cmd.lock() = full.name;
        act.last_active
            .store(self.now, std::sync::atomic::Ordering::Relaxed);
        let reply = self.out.buf.get(offset..).unwrap_or_default();
        let error = match reply.first() {
            Some(b'-') => Some(&reply[1..]),
            _ => None,
        };
        let error_counted = std::mem::take(&mut self.out.error_counted);
        self.shared.intro.record(&crate::introspect::Ran {
            name: full.name,
            args,
            usec,
            error,
            error_counted,
            slowlog: !cmd.flags.contains(&"skip_slowlog"),
            fast: cmd.flags.contains(&"fast"),
            client: &self.conn.info,
            now: self.now,
        });
    }

    /// Asks the connection to block for a push to `keys` (if allowed); returns false if the
    /// command must answer now instead.
    pub fn block(&mut self, args: &[&[u8]], keys: Vec<Bytes>, timeout_ms: u64) -> bool {
        if !self.may_block {
            return false;
        }
        let deadline = match self.conn.retry_deadline {
            Some(d) => d,
            None if timeout_ms == 0 => 0,
            None => self.now + timeout_ms,
        };
        let waiter = self.conn.waiter.clone();
        self.db().block_on(&keys, &waiter);
        self.conn.block = Some(BlockRequest {
            args: args.iter().map(|a| a.to_vec()).collect(),
            keys,
            deadline,
        });
        true
    }
}

/// Lowercases a command name into `buf`; `None` if it is longer than any command name.
#[inline]
pub fn lower<'b>(name: &[u8], buf: &'b mut [u8; 32]) -> Option<&'b [u8]> {
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    Some(&buf[..name.len()])
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
#[inline]
pub fn eq_ic(arg: &[u8], kw: &str) -> bool {
    arg.eq_ignore_ascii_case(kw.as_bytes())
}

/// Parses an integer argument (`ERR value is not an integer or out of range`).
#[inline]
pub fn int_arg(a: &[u8]) -> Result<i64, CmdError> {
    crate::resp::parse_i64(a).ok_or(CmdError::Static(NOT_INT))
}

/// Parses a float argument as Redis's `strtold`-based parsing does (`inf`, `-inf` allowed, NaN
/// refused).
pub fn float_arg(a: &[u8]) -> Result<f64, CmdError> {
    parse_float(a).ok_or(CmdError::Static(NOT_FLOAT))
}

/// Parses a float; `None` for NaN, spaces or garbage.
pub fn parse_float(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse::<f64>().ok()?,
    };
    if v.is_nan() { None } else { Some(v) }
}

/// The `ERR wrong number of arguments for 'x' command` error.
pub fn arity_error(name: &str) -> CmdError {
    CmdError::Owned(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Owned copies of arguments (for keys kept beyond the batch).
pub fn owned(args: &[&[u8]]) -> Vec<Bytes> {
    args.iter().map(|a| Bytes::from(*a)).collect()
}

/// Normalizes a `start..=end` index pair (negative from the end) over `len` items; `None` if
/// the range is empty.
pub fn norm_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

/// A `Notify` shared by a blocked connection and the keyspace.
pub type Waiter = Arc<tokio::sync::Notify>;

pub fn unknown_sub(args: &[&[u8]], container: &str) -> CmdError {
    CmdError::Owned(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(args[1]),
        container.to_uppercase()
    ))
}

/// Finds and arity-checks the subcommand `args[1]` of `container`.
pub fn sub(args: &[&[u8]], container: &str) -> Result<&'static Command, CmdError> {
    let cmd = table::lookup(container.as_bytes()).ok_or(CmdError::Static(SYNTAX))?;
    let s = table::lookup_sub(cmd, args[1]).ok_or_else(|| unknown_sub(args, container))?;
    if !table::arity_ok(s.arity, args.len()) {
        return Err(arity_error(s.name));
    }
    Ok(s)
}

pub fn help(ctx: &mut Ctx<'_>, lines: &[&str]) {
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.simple(l);
    }
}

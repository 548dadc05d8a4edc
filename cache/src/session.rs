//! One client's requests without I/O: parse what arrived, check each request (lookup, arity,
//! auth, subscribed mode, `MULTI` queueing), ask the placement where it runs, and run it here
//! or leave it queued for a peer. The socket loop (`conn`) feeds bytes in and writes the
//! replies out; [`Session`] does the same in memory for tests and fuzzing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::ConnState;
use crate::cmd::table::{self, Command};
use crate::cmd::{Ctx, lower};
use crate::placement::{Placement, Route};
use crate::pubsub::PubMsg;
use crate::reply::Reply;
use crate::resp::{self, Parsed};
use crate::shared::Shared;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs every complete request in `buf`; returns the bytes consumed and, if the last request
/// is incomplete, how many bytes it needs in total when known.
pub fn process(
    shared: &Shared,
    conn: &mut ConnState,
    buf: &[u8],
    out: &mut Reply,
) -> (usize, Option<usize>) {
    let mut limits = shared.limits();
    let now = now_ms();
    let mut ctx = Ctx::new(shared, conn, out, now);
    let mut argv: Vec<&[u8]> = Vec::with_capacity(16);
    let mut pos = 0;
    let mut count = 0u64;
    let mut need = None;
    while pos < buf.len() && !ctx.conn.close && ctx.conn.block.is_none() {
        limits.authenticated = ctx.conn.authenticated;
        match resp::parse(&buf[pos..], &mut argv, limits) {
            Ok(Parsed::Multibulk { consumed }) => {
                pos += consumed;
                if !argv.is_empty() {
                    if looks_like_http(argv[0]) {
                        hang_up(&mut ctx);
                        pos = buf.len();
                        break;
                    }
                    count += 1;
                    execute(&mut ctx, &argv);
                }
            }
            Ok(Parsed::Inline { consumed, args }) => {
                pos += consumed;
                if !args.is_empty() {
                    if looks_like_http(&args[0]) {
                        hang_up(&mut ctx);
                        pos = buf.len();
                        break;
                    }
                    count += 1;
                    let v: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                    execute(&mut ctx, &v);
                }
            }
            Ok(Parsed::Incomplete { need: n }) => {
                // Relative to the start of the incomplete request, which is where the buffer
                // will begin once `pos` bytes are consumed.
                need = n;
                break;
            }
            Err(e) => {
                ctx.out.error(&format!("ERR {e}"));
                ctx.conn.close = true;
                shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id = ctx.conn.id, error = %e, "protocol error; closing");
                pos = buf.len();
                break;
            }
        }
    }
    drop(ctx);
    if count > 0 {
        shared.stats.commands.fetch_add(count, Ordering::Relaxed);
        shared.metrics.commands_total.inc_by(count);
    }
    (pos, need)
}

/// Whether a command name is one an HTTP request starts with (`POST`) or carries (`Host:`),
/// as a browser tricked into posting to the Redis port sends (cross-protocol scripting).
/// Redis registers both as commands that close the connection (`securityWarningCommand`).
fn looks_like_http(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

/// Closes the connection at once without a reply (nothing else of the batch runs; replies
/// of commands before it are dropped), logs a warning at most once a minute and counts it.
fn hang_up(ctx: &mut Ctx<'_>) {
    static LAST_WARNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    ctx.conn.close = true;
    ctx.conn.hangup = true;
    ctx.out.buf.clear();
    ctx.shared.metrics.http_closed_total.inc();
    let now = ctx.now;
    let last = LAST_WARNED.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 60_000
        && LAST_WARNED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            id = ctx.conn.id,
            addr = %ctx.conn.info.addr,
            "possible security attack: a client sent POST or Host: to the Redis port \
             (cross-protocol scripting from a browser?); connection closed"
        );
    }
}

/// Runs one owned request (a retried blocking command).
pub fn run_owned(
    shared: &Shared,
    conn: &mut ConnState,
    out: &mut Reply,
    args: &[Vec<u8>],
    may_block: bool,
) {
    let mut ctx = Ctx::new(shared, conn, out, now_ms());
    ctx.may_block = may_block;
    let v: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    execute(&mut ctx, &v);
}

fn unknown_command(args: &[&[u8]]) -> String {
    let mut rest = String::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let s = String::from_utf8_lossy(a);
        let take: String = s.chars().take(128 - rest.len().min(128)).collect();
        rest.push_str(&format!("'{take}' "));
    }
    let name: String = String::from_utf8_lossy(args[0]).chars().take(128).collect();
    format!("ERR unknown command '{name}', with args beginning with: {rest}")
}

/// Checks and runs one request, then drops its reply if the client asked for none
/// (`CLIENT REPLY OFF`, or `SKIP` before it).
pub fn execute(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let offset = ctx.out.buf.len();
    check_and_run(ctx, args);
    let r = &mut ctx.conn.replies;
    // Subscription confirmations are pushes, which Redis sends whatever CLIENT REPLY says.
    let pushes = [
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
    ]
    .iter()
    .any(|n| args[0].eq_ignore_ascii_case(n.as_bytes()));
    if (r.off || r.skip) && !pushes {
        ctx.out.buf.truncate(offset);
    }
    r.skip = std::mem::take(&mut r.skip_next);
}

/// Checks and runs one request: lookup, arity, auth, subscribed mode, MULTI queueing.
fn check_and_run(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let mut lb = [0u8; 32];
    let cmd: &'static Command = match lower(args[0], &mut lb).and_then(table::lookup) {
        Some(c) => c,
        None => {
            if ctx.conn.multi.is_some() {
                ctx.conn.multi_failed = true;
            }
            let e = unknown_command(args);
            ctx.shared.intro.rejected(None, e.as_bytes());
            ctx.out.error(&e);
            return;
        }
    };
    if !table::arity_ok(cmd.arity, args.len()) {
        if ctx.conn.multi.is_some() {
            ctx.conn.multi_failed = true;
        }
        let e = format!("ERR wrong number of arguments for '{}' command", cmd.name);
        ctx.shared.intro.rejected(Some(cmd.name), e.as_bytes());
        ctx.out.error(&e);
        return;
    }
    if !ctx.conn.authenticated && !cmd.flags.contains(&"no_auth") {
        if ctx.conn.multi.is_some() {
            ctx.conn.multi_failed = true;
        }
        ctx.shared.intro.rejected(Some(cmd.name), b"NOAUTH");
        ctx.out.error("NOAUTH Authentication required.");
        return;
    }
    if let Err(e) = crate::acl::check(ctx, cmd, args) {
        if ctx.conn.multi.is_some() {
            ctx.conn.multi_failed = true;
        }
        ctx.out.error(&e);
        return;
    }
    if !ctx.out.resp3
        && ctx.conn.sub_count() > 0
        && !matches!(
            cmd.name,
            "subscribe"
                | "unsubscribe"
                | "psubscribe"
                | "punsubscribe"
                | "ssubscribe"
                | "sunsubscribe"
                | "ping"
                | "quit"
                | "reset"
        )
    {
        ctx.out.error(&format!("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", cmd.name));
        return;
    }
    // A script ran past busy-reply-threshold: answer BUSY before touching the keyspace lock
    // the script holds.
    if let Some(e) = ctx.shared.scripting.busy_error(cmd, args) {
        reject(ctx, cmd, e);
        return;
    }
    if let Some(placement) = ctx.shared.placement.get()
        && routed_away(ctx, placement.as_ref(), cmd, args)
    {
        return;
    }
    if ctx.conn.multi.is_some() && cmd.flags.contains(&"no_multi") {
        ctx.conn.multi_failed = true;
        let e = "ERR Command not allowed inside a transaction";
        ctx.shared.intro.rejected(Some(cmd.name), e.as_bytes());
        ctx.out.error(e);
        return;
    }
    if ctx.conn.multi.is_some()
        && !matches!(
            cmd.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
    {
        if let Some(q) = ctx.conn.multi.as_mut() {
            q.push(args.iter().map(|a| a.to_vec()).collect());
        }
        ctx.out.simple("QUEUED");
        return;
    }
    if postponed(ctx, cmd, args) {
        return;
    }
    ctx.run(cmd, args);
    // BCAST tracking clients hear of the command's changes (a transaction's: together).
    if let Some(db) = ctx.locked_db()
        && std::mem::take(&mut db.log.bcast_pending)
    {
        crate::tracking::broadcast(ctx.shared);
    }
}

/// Refuses `cmd` with `error` as Redis's `rejectCommand` does: inside `MULTI` the transaction
/// is flagged (its `EXEC` aborts), and a refused `EXEC` discards the transaction with
/// `EXECABORT` and the reason.
fn reject(ctx: &mut Ctx<'_>, cmd: &'static Command, error: &str) {
    if ctx.conn.multi.is_none() {
        ctx.out.error(error);
        return;
    }
    if cmd.name != "exec" {
        ctx.conn.multi_failed = true;
        ctx.out.error(error);
        return;
    }
    ctx.conn.multi = None;
    ctx.conn.multi_failed = false;
    // The watches end with the transaction, unless the keyspace is held (by the script that
    // made the server busy): then they stay, and the next EXEC, UNWATCH or the connection's
    // end releases them.
    let id = ctx.conn.id;
    let watched = std::mem::take(&mut ctx.conn.watched);
    match ctx.try_db() {
        Some(db) => {
            db.unwatch(id, &watched);
        }
        None => ctx.conn.watched = watched,
    }
    ctx.out.error(&format!(
        "EXECABORT Transaction discarded because of: {error}"
    ));
}

/// Whether `CLIENT PAUSE WRITE` holds `args` back: what may write or replicate, and scripts
/// that may write.
fn may_write(ctx: &Ctx<'_>, cmd: &Command, args: &[&[u8]]) -> bool {
    crate::cmd::scripting::script_may_write(ctx, cmd, args)
        .unwrap_or_else(|| table::may_replicate(cmd))
}

/// Holds a command back while `CLIENT PAUSE` is in force for it: the connection waits for the
/// end of the pause (as for a blocking command, on no key) and runs it then.
fn postponed(ctx: &mut Ctx<'_>, cmd: &'static Command, args: &[&[u8]]) -> bool {
    let intro = &ctx.shared.intro;
    if !intro.pausing.load(Ordering::Relaxed) {
        return false;
    }
    let write = may_write(ctx, cmd, args)
        || (cmd.name == "exec"
            && ctx.conn.multi.as_ref().is_some_and(|q| {
                q.iter().any(|a| {
                    let mut lb = [0u8; 32];
                    let queued: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
                    lower(&a[0], &mut lb)
                        .and_then(table::lookup)
                        .is_some_and(|c| may_write(ctx, c, &queued))
                })
            }));
    let waiter = ctx.conn.waiter.clone();
    match intro.postpone(ctx.now, write, &waiter) {
        Some(until) => {
            ctx.conn.block = Some(crate::cmd::BlockRequest {
                args: args.iter().map(|a| a.to_vec()).collect(),
                keys: Vec::new(),
                deadline: until,
            });
            true
        }
        None => false,
    }
}

/// Asks the placement where `cmd` runs; true if it does not run here (refused with an error,
/// or queued for a peer).
fn routed_away(
    ctx: &mut Ctx<'_>,
    placement: &dyn Placement,
    cmd: &'static Command,
    args: &[&[u8]],
) -> bool {
    let in_multi = ctx.conn.multi.is_some();
    let offset = ctx.out.buf.len();
    match placement.route(ctx.conn, cmd, args, offset) {
        Route::Local => false,
        Route::Refused(e) => {
            if in_multi && cmd.name != "exec" {
                ctx.conn.multi_failed = true;
            }
            if cmd.name == "exec" {
                ctx.conn.multi = None;
                ctx.conn.multi_failed = false;
            }
            ctx.out.error(&e);
            true
        }
        Route::Forwarded => {
            if cmd.name == "exec" {
                // The transaction runs on a peer: its watches here end with it.
                let watched = std::mem::take(&mut ctx.conn.watched);
                let id = ctx.conn.id;
                ctx.db().unwatch(id, &watched);
            }
            true
        }
    }
}

/// A connection without a socket: feed request bytes, get reply bytes. Runs exactly the code a
/// network connection runs (parsing, dispatch, the keyspace), minus blocking waits; used by
/// unit tests and the fuzz targets.
#[derive(Debug)]
pub struct Session {
    shared: Arc<Shared>,
    conn: ConnState,
    inbuf: BytesMut,
    out: Reply,
    rx: mpsc::Receiver<PubMsg>,
}

impl Session {
    /// A session on a fresh, empty server.
    pub fn new() -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], 6379).into();
        let shared = Arc::new(Shared::new(
            addr,
            String::new(),
            crate::metrics::Metrics::default(),
        ));
        Self::on(shared)
    }

    /// Another session on the same server.
    pub fn on(shared: Arc<Shared>) -> Self {
        let (conn, rx) =
            ConnState::new(&shared, shared.addr, shared.addr, CancellationToken::new());
        Self {
            shared,
            conn,
            inbuf: BytesMut::new(),
            out: Reply::new(),
            rx,
        }
    }

    /// The server this session talks to.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Feeds bytes; returns the replies produced so far. A blocking command that would wait
    /// answers as if its timeout had passed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.conn.close {
            return Vec::new();
        }
        self.inbuf.extend_from_slice(bytes);
        loop {
            match self.conn.block.take() {
                // A command held by CLIENT PAUSE (no keys) stays pending, with what follows
                // it, until a later feed finds the pause over.
                Some(b) if b.keys.is_empty() => {
                    self.shared.intro.unpostpone(&self.conn.waiter);
                    run_owned(&self.shared, &mut self.conn, &mut self.out, &b.args, true);
                    if self.conn.block.is_some() {
                        break;
                    }
                }
                Some(b) => {
                    self.shared.db.lock().unblock(&b.keys, &self.conn.waiter);
                    run_owned(&self.shared, &mut self.conn, &mut self.out, &b.args, false);
                }
                None => {
                    let (consumed, _) =
                        process(&self.shared, &mut self.conn, &self.inbuf, &mut self.out);
                    self.inbuf.advance(consumed);
                    if self.conn.block.is_none() {
                        break;
                    }
                }
            }
        }
        if self.conn.hangup {
            self.out.buf.clear();
        }
        let out = self.out.buf.to_vec();
        self.out.buf.clear();
        out
    }

    /// Runs one command given as arguments and returns its reply.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        String::from_utf8_lossy(&self.feed(&req)).into_owned()
    }

    /// The messages queued for this client so far (publications, tracking invalidations).
    pub fn messages(&mut self) -> Vec<PubMsg> {
        std::iter::from_fn(|| self.rx.try_recv().ok()).collect()
    }

    /// Whether the server closed this session (QUIT or a protocol error).
    pub fn closed(&self) -> bool {
        self.conn.close
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Session;

    #[test]
    fn http_to_the_redis_port_is_closed_without_a_reply() {
        for req in [
            &b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nSET pwned 1\r\n"[..],
            b"PING\r\nhOsT: x\r\nSET pwned 1\r\n",
            b"*1\r\n$4\r\npost\r\n*3\r\n$3\r\nSET\r\n$5\r\npwned\r\n$1\r\n1\r\n",
        ] {
            let mut s = Session::new();
            assert_eq!(s.feed(req), b"");
            assert!(s.closed());
            assert_eq!(s.shared().metrics.http_closed_total.get(), 1);
            let mut t = Session::on(s.shared().clone());
            assert_eq!(t.cmd(&["EXISTS", "pwned"]), ":0\r\n");
        }
        // A key or value named so is fine.
        let mut s = Session::new();
        assert_eq!(s.cmd(&["SET", "post", "host:"]), "+OK\r\n");
        assert!(!s.closed());
    }
}

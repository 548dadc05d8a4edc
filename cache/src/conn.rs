//! One client connection: read into a buffer, run every complete request in it under one
//! keyspace lock, write all replies with one write, repeat.
//!
//! The per-request work allocates nothing on the fast path: arguments are slices of the read
//! buffer, the command name is lowercased on the stack, replies go into one reusable buffer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use hashbrown::HashSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cmd::table::{self, Command};
use crate::cmd::{BlockRequest, Ctx, lower};
use crate::pubsub::{PubMsg, QUEUE, Subscriber};
use crate::reply::Reply;
use crate::resp::{self, Parsed};
use crate::shared::{ClientInfo, Shared};
use crate::value::Bytes;

/// Bytes read per `read` call at least.
const READ_CHUNK: usize = 16 * 1024;
/// A connection whose unparsed input exceeds this is closed (`client-query-buffer-limit`).
const QUERY_BUFFER_LIMIT: usize = 1024 * 1024 * 1024;
/// Output buffers larger than this are released after being written.
const OUT_SHRINK: usize = 1024 * 1024;

/// Who a client authenticated as (`AUTH`, `HELLO ... AUTH`). A proxied session carries it
/// to the node that runs the client's commands, which checks it against its own
/// `requirepass`: the client is who it is on every node it reaches.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user (`default`: the only one).
    pub user: Vec<u8>,
    /// The password.
    pub pass: Vec<u8>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &String::from_utf8_lossy(&self.user))
            .finish_non_exhaustive()
    }
}

/// Per-connection state the commands can change.
#[derive(Debug)]
pub struct ConnState {
    /// Client id.
    pub id: u64,
    /// What `CLIENT LIST` shows.
    pub info: Arc<ClientInfo>,
    /// Whether AUTH succeeded (or no password is set).
    pub authenticated: bool,
    /// The credential of the last successful `AUTH`/`HELLO ... AUTH` (for a proxied session:
    /// the one the forwarding node passed on), carried with the sessions this connection
    /// opens to peers.
    pub credential: Option<Credential>,
    /// Queued commands inside MULTI.
    pub multi: Option<Vec<Vec<Vec<u8>>>>,
    /// A command failed to queue: EXEC will abort.
    pub multi_failed: bool,
    /// Keys under WATCH.
    pub watched: Vec<Bytes>,
    /// Subscribed channels.
    pub channels: HashSet<Bytes>,
    /// Subscribed patterns.
    pub patterns: HashSet<Bytes>,
    /// Subscribed shard channels (`SSUBSCRIBE`).
    pub shard_channels: HashSet<Bytes>,
    /// This connection's pub/sub queue.
    pub sub: Subscriber,
    /// Close after writing the replies.
    pub close: bool,
    /// Close without writing anything (the client looks like an HTTP client).
    pub hangup: bool,
    /// A blocking command waiting for data.
    pub block: Option<BlockRequest>,
    /// The waiter registered with the keyspace while blocked.
    pub waiter: Arc<Notify>,
    /// While a woken blocking command runs again: its original deadline, so that losing the
    /// race for an element does not extend the wait.
    pub retry_deadline: Option<u64>,
    /// Cluster routing state (MOVED or proxying, READONLY, forwards of this batch).
    pub cl: crate::cluster::ConnCluster,
}

impl ConnState {
    /// A connection state without a client socket (a peer's proxied session, a replication
    /// link); the receiver is its pub/sub queue.
    pub fn detached(shared: &Shared) -> (Self, mpsc::Receiver<PubMsg>) {
        let id = shared.next_client_id();
        let kill = CancellationToken::new();
        let (tx, rx) = mpsc::channel(QUEUE);
        let info = Arc::new(ClientInfo {
            id,
            addr: shared.addr,
            laddr: shared.addr,
            created: std::time::Instant::now(),
            name: Default::default(),
            lib: Default::default(),
            kill: kill.clone(),
            subs: Default::default(),
            resp3: Default::default(),
        });
        let conn = Self {
            id,
            info,
            authenticated: true,
            credential: None,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            sub: Subscriber { id, tx, kill },
            close: false,
            hangup: false,
            block: None,
            waiter: Arc::new(Notify::new()),
            retry_deadline: None,
            cl: Default::default(),
        };
        (conn, rx)
    }

    /// A detached state for a client's commands run on its behalf (a peer's proxied session,
    /// a fallback): authenticated only if this node needs no password or `credential` passes
    /// its `requirepass`, as the client's own connection here would be.
    pub fn detached_as(
        shared: &Shared,
        credential: Option<Credential>,
    ) -> (Self, mpsc::Receiver<PubMsg>) {
        let (mut conn, rx) = Self::detached(shared);
        conn.authenticated = !shared.needs_auth()
            || credential
                .as_ref()
                .is_some_and(|c| shared.password_ok(&c.user, &c.pass));
        conn.credential = credential;
        (conn, rx)
    }

    /// Subscriptions (channels + patterns).
    pub fn sub_count(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Serves one connection until it closes, the client is killed or the server shuts down.
pub async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let id = shared.next_client_id();
    let laddr = stream.local_addr().unwrap_or(shared.addr);
    // The kill token is a child of the shutdown token: one future to watch for both.
    let kill = shutdown.child_token();
    let info = Arc::new(ClientInfo {
        id,
        addr: peer,
        laddr,
        created: std::time::Instant::now(),
        name: Default::default(),
        lib: Default::default(),
        kill: kill.clone(),
        subs: Default::default(),
        resp3: Default::default(),
    });
    shared.clients.lock().insert(id, info.clone());
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    shared.metrics.connections_total.inc();
    shared.metrics.connected_clients.inc();
    let (tx, mut rx) = mpsc::channel::<PubMsg>(QUEUE);
    let mut conn = ConnState {
        id,
        info,
        authenticated: !shared.needs_auth(),
        credential: None,
        multi: None,
        multi_failed: false,
        watched: Vec::new(),
        channels: HashSet::new(),
        patterns: HashSet::new(),
        shard_channels: HashSet::new(),
        sub: Subscriber {
            id,
            tx,
            kill: kill.clone(),
        },
        close: false,
        hangup: false,
        block: None,
        waiter: Arc::new(Notify::new()),
        retry_deadline: None,
        cl: Default::default(),
    };
    let span = tracing::debug_span!("redis_conn", id, %peer);
    let _e = span.enter();
    drop(_e);
    let res = run(&shared, &mut stream, &mut conn, &mut rx, &kill).await;
    if let Err(e) = res {
        tracing::debug!(parent: &span, error = %e, "connection ended");
    }
    cleanup(&shared, &mut conn);
    shared.metrics.connected_clients.dec();
}

/// Releases what a connection holds (subscriptions, watches, a blocked wait).
pub fn cleanup(shared: &Shared, conn: &mut ConnState) {
    shared.clients.lock().remove(&conn.id);
    if conn.sub_count() > 0 {
        let mut ps = shared.pubsub.lock();
        for c in conn.channels.drain() {
            ps.unsubscribe(false, &c, conn.id);
        }
        for p in conn.patterns.drain() {
            ps.unsubscribe(true, &p, conn.id);
        }
        for c in conn.shard_channels.drain() {
            ps.unsubscribe_shard(&c, conn.id);
        }
    }
    if !conn.watched.is_empty() || conn.block.is_some() {
        let mut db = shared.db.lock();
        db.unwatch(conn.id, &conn.watched);
        if let Some(b) = conn.block.take() {
            db.unblock(&b.keys, &conn.waiter);
        }
    }
}

async fn run(
    shared: &Shared,
    stream: &mut TcpStream,
    conn: &mut ConnState,
    rx: &mut mpsc::Receiver<PubMsg>,
    kill: &CancellationToken,
) -> std::io::Result<()> {
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Reply::new();
    let killed = kill.cancelled();
    tokio::pin!(killed);
    loop {
        let (consumed, need) = process(shared, conn, &inbuf, &mut out);
        inbuf.advance(consumed);
        if conn.hangup {
            return Ok(());
        }
        while let Some(block) = conn.block.take() {
            // Write what came before the blocking command first.
            flush(shared, stream, conn, &mut out).await?;
            let timed_out = tokio::select! {
                biased;
                _ = &mut killed => {
                    conn.block = Some(block);
                    return Ok(());
                }
                _ = conn.waiter.notified() => false,
                _ = sleep_until_ms(block.deadline) => true,
            };
            shared.db.lock().unblock(&block.keys, &conn.waiter);
            conn.retry_deadline = Some(block.deadline);
            run_owned(shared, conn, &mut out, &block.args, !timed_out);
            conn.retry_deadline = None;
            if conn.block.is_none() {
                // Answered: continue with the requests pipelined after it.
                let (consumed, _) = process(shared, conn, &inbuf, &mut out);
                inbuf.advance(consumed);
                if conn.hangup {
                    return Ok(());
                }
            }
        }
        flush(shared, stream, conn, &mut out).await?;
        if conn.close {
            return Ok(());
        }
        if inbuf.len() > QUERY_BUFFER_LIMIT {
            tracing::warn!(id = conn.id, "closing client over the query buffer limit");
            return Ok(());
        }
        // Grow by what has arrived, not by what a header claims.
        let want = match need {
            Some(n) if n > inbuf.len() => (n - inbuf.len()).min(inbuf.len().max(READ_CHUNK)),
            _ => READ_CHUNK,
        };
        if inbuf.capacity() - inbuf.len() < want / 2 {
            inbuf.reserve(want);
        }
        let subscribed = conn.sub_count() > 0;
        tokio::select! {
            biased;
            _ = &mut killed => return Ok(()),
            n = stream.read_buf(&mut inbuf) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                shared.stats.net_in.fetch_add(n as u64, Ordering::Relaxed);
            }
            msg = rx.recv(), if subscribed => {
                if let Some(msg) = msg {
                    encode_msg(&mut out, &msg);
                    // Drain what else is queued without waiting.
                    while let Ok(m) = rx.try_recv() {
                        encode_msg(&mut out, &m);
                        if out.buf.len() > 64 * 1024 {
                            break;
                        }
                    }
                }
            }
        }
    }
}

async fn flush(
    shared: &Shared,
    stream: &mut TcpStream,
    conn: &mut ConnState,
    out: &mut Reply,
) -> std::io::Result<()> {
    finish_batch(shared, conn, out).await;
    if out.buf.is_empty() {
        return Ok(());
    }
    stream.write_all(&out.buf).await?;
    shared
        .stats
        .net_out
        .fetch_add(out.buf.len() as u64, Ordering::Relaxed);
    if out.buf.capacity() > OUT_SHRINK {
        out.buf = BytesMut::with_capacity(READ_CHUNK);
    } else {
        out.buf.clear();
    }
    Ok(())
}

/// Completes a batch in a cluster: sends its forwarded commands and splices their replies in
/// place, then waits for the replication acknowledgements its writes need (sync mode).
pub async fn finish_batch(shared: &Shared, conn: &mut ConnState, out: &mut Reply) {
    let Some(cl) = shared.cluster.get() else {
        return;
    };
    if !conn.cl.pending.is_empty() {
        let offsets: Vec<usize> = conn.cl.pending.iter().map(|p| p.offset).collect();
        let replies = crate::cluster::forward::run_pending(
            shared,
            cl,
            &mut conn.cl,
            conn.credential.as_ref(),
            out.resp3,
        )
        .await;
        crate::cluster::forward::splice(&mut out.buf, &offsets, replies);
    }
    if !conn.cl.waits.is_empty() {
        let waits = std::mem::take(&mut conn.cl.waits);
        cl.wait_acks(waits).await;
    }
    // A client's own connection runs writes only where their slot is owned (routing).
    conn.cl.unowned.clear();
}

async fn sleep_until_ms(deadline: u64) {
    if deadline == 0 {
        std::future::pending::<()>().await;
    }
    let now = now_ms();
    if deadline > now {
        tokio::time::sleep(Duration::from_millis(deadline - now)).await;
    }
}

fn encode_msg(out: &mut Reply, m: &PubMsg) {
    match &m.pattern {
        None => {
            out.push(3);
            out.bulk(if m.shard { b"smessage" } else { b"message" });
        }
        Some(p) => {
            out.push(4);
            out.bulk(b"pmessage");
            out.bulk(p);
        }
    }
    out.bulk(&m.channel);
    out.bulk(&m.payload);
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
    ctx.conn.cl.pending.clear();
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
fn run_owned(
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

/// Checks and runs one request: lookup, arity, auth, subscribed mode, MULTI queueing.
pub fn execute(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let mut lb = [0u8; 32];
    let cmd: &'static Command = match lower(args[0], &mut lb).and_then(table::lookup) {
        Some(c) => c,
        None => {
            if ctx.conn.multi.is_some() {
                ctx.conn.multi_failed = true;
            }
            ctx.out.error(&unknown_command(args));
            return;
        }
    };
    if !table::arity_ok(cmd.arity, args.len()) {
        if ctx.conn.multi.is_some() {
            ctx.conn.multi_failed = true;
        }
        ctx.out.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name
        ));
        return;
    }
    if !ctx.conn.authenticated && !cmd.flags.contains(&"no_auth") {
        if ctx.conn.multi.is_some() {
            ctx.conn.multi_failed = true;
        }
        ctx.out.error("NOAUTH Authentication required.");
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
        ctx.out.error(e);
        return;
    }
    if !ctx.routed
        && let Some(cl) = ctx.shared.cluster.get()
        && route(ctx, cl, cmd, args)
    {
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
    ctx.run(cmd, args);
}

/// Cluster routing before dispatch; true if the command was answered (an error, `MOVED`) or
/// queued for forwarding.
fn route(
    ctx: &mut Ctx<'_>,
    cl: &crate::cluster::Cluster,
    cmd: &'static Command,
    args: &[&[u8]],
) -> bool {
    use crate::cluster::Decision;
    let asking = std::mem::replace(&mut ctx.conn.cl.asking, false);
    let in_multi = ctx.conn.multi.is_some();
    if in_multi
        && !matches!(
            cmd.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
    {
        // A plain client's transaction is routed as a whole at EXEC; a cluster-aware one is
        // told at queue time, as Redis does.
        if !ctx.conn.cl.aware {
            return false;
        }
    }
    let decision = if cmd.name == "exec" && in_multi && !ctx.conn.cl.aware {
        match exec_slot(ctx) {
            Ok(None) => Decision::Local,
            Ok(Some(_)) if ctx.conn.multi_failed => Decision::Local,
            Ok(Some(slot)) => {
                // Route as a read of the slot's first queued key would be, but as a write.
                let q = ctx
                    .conn
                    .multi
                    .as_ref()
                    .map(|q| q[0].clone())
                    .unwrap_or_default();
                let v: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
                let c = lower(v[0], &mut [0u8; 32]).and_then(table::lookup);
                match c {
                    Some(c) => match cl.route(&ctx.conn.cl, c, &v) {
                        Decision::Error(e) if e.starts_with("MOVED") => Decision::Local,
                        d => d,
                    },
                    None => {
                        let _ = slot;
                        Decision::Local
                    }
                }
            }
            Err(e) => Decision::Error(e.into()),
        }
    } else {
        let mut d = cl.route(&ctx.conn.cl, cmd, args);
        if asking
            && let Decision::Error(e) = &d
            && e.starts_with("MOVED")
        {
            d = Decision::Local;
        }
        d
    };
    match decision {
        Decision::Local => false,
        Decision::Error(e) => {
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
        Decision::Forward {
            peer,
            exec,
            hops,
            slot,
        } => {
            let mut req = BytesMut::new();
            let (ncmds, take_last) = if cmd.name == "exec" {
                let queued = ctx.conn.multi.take().unwrap_or_default();
                crate::cluster::proto::command(&mut req, &[b"MULTI"]);
                for q in &queued {
                    let v: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
                    crate::cluster::proto::command(&mut req, &v);
                }
                crate::cluster::proto::command(&mut req, &[b"EXEC"]);
                let watched = std::mem::take(&mut ctx.conn.watched);
                let id = ctx.conn.id;
                ctx.db().unwatch(id, &watched);
                (queued.len() + 2, true)
            } else {
                crate::cluster::proto::command(&mut req, args);
                (1, false)
            };
            let offset = ctx.out.buf.len();
            ctx.conn.cl.pending.push(crate::cluster::forward::Pending {
                offset,
                peer,
                exec,
                hops,
                slot,
                req,
                ncmds,
                take_last,
            });
            true
        }
    }
}

/// The one slot a queued transaction addresses (`None`: no keys).
fn exec_slot(ctx: &Ctx<'_>) -> Result<Option<u16>, &'static str> {
    let mut slot = None;
    for q in ctx.conn.multi.iter().flatten() {
        let v: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
        let Some(c) = lower(v[0], &mut [0u8; 32]).and_then(table::lookup) else {
            continue;
        };
        match (crate::cluster::command_slot(c, &v)?, slot) {
            (Some(s), None) => slot = Some(s),
            (Some(s), Some(x)) if s != x => {
                return Err("CROSSSLOT Keys in request don't hash to the same slot");
            }
            _ => {}
        }
    }
    Ok(slot)
}

/// Runs the requests in `buf` one by one (each under its own keyspace lock), for peers'
/// requests. Returns, per command, the span of its reply in `out` and the number of pending
/// forwards after it (a command that was queued for forwarding has an empty span).
pub fn run_each(
    shared: &Shared,
    conn: &mut ConnState,
    buf: &[u8],
    out: &mut Reply,
) -> Vec<(usize, usize, usize)> {
    let limits = shared.limits();
    let mut argv: Vec<&[u8]> = Vec::with_capacity(16);
    let mut pos = 0;
    let mut segs = Vec::new();
    while pos < buf.len() && !conn.close {
        let start = out.buf.len();
        match resp::parse(&buf[pos..], &mut argv, limits) {
            Ok(Parsed::Multibulk { consumed }) => {
                pos += consumed;
                if !argv.is_empty() {
                    let mut ctx = Ctx::new(shared, conn, out, now_ms());
                    ctx.may_block = false;
                    execute(&mut ctx, &argv);
                }
            }
            Ok(Parsed::Inline { consumed, args }) => {
                pos += consumed;
                if !args.is_empty() {
                    let v: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                    let mut ctx = Ctx::new(shared, conn, out, now_ms());
                    ctx.may_block = false;
                    execute(&mut ctx, &v);
                }
            }
            Ok(Parsed::Incomplete { .. }) | Err(_) => {
                out.error("ERR Protocol error: bad request from a peer");
                segs.push((start, out.buf.len(), conn.cl.pending.len()));
                break;
            }
        }
        conn.block = None;
        segs.push((start, out.buf.len(), conn.cl.pending.len()));
    }
    segs
}

/// Sets a key to a state a peer sent (replication, a hand-over, a merge) unless this node's
/// copy is newer: the version check and the commands run under one hold of the keyspace lock,
/// so a write made here meanwhile is never overwritten by an older state. Returns whether the
/// state was applied. `conn` is an apply session (no routing, no replication).
///
/// What a peer says is checked first, and a state that fails is refused whole (and counted in
/// `peer_refused_total`): its version may be at most [`crate::cluster::MAX_VERSION_DRIFT`]
/// ahead of this node's clock (`future_version`: a key versioned at `u64::MAX` could never be
/// overwritten), and its commands must be exactly those that build its own key
/// ([`crate::cluster::dump::state_commands`], `bad_state`).
pub fn apply_state(
    shared: &Shared,
    conn: &mut ConnState,
    out: &mut Reply,
    state: &crate::cluster::proto::KeyState,
) -> bool {
    let limits = shared.limits();
    let now = now_ms();
    let key = String::from_utf8_lossy(&state.key[..state.key.len().min(128)]);
    if state.ver > crate::cluster::max_peer_version(now) {
        shared.metrics.peer_refused("future_version");
        tracing::warn!(%key, ver = state.ver, now, "refused a key state versioned in the future");
        return false;
    }
    let cmds = match crate::cluster::dump::state_commands(&state.key, &state.ops, limits) {
        Ok(c) => c,
        Err(e) => {
            shared.metrics.peer_refused("bad_state");
            tracing::warn!(%key, error = e, "refused a key state that is not one");
            return false;
        }
    };
    if let Some(cl) = shared.cluster.get() {
        cl.observe(state.ver);
    }
    let mut ctx = Ctx::new(shared, conn, out, now);
    ctx.may_block = false;
    let mine = ctx.db().version(&state.key, now);
    let apply = mine == 0 || state.ver > mine;
    tracing::trace!(
        target: "cache::keys",
        %key,
        ver = state.ver,
        mine,
        apply,
        "state received"
    );
    if !apply {
        return false;
    }
    for argv in &cmds {
        execute(&mut ctx, argv);
    }
    ctx.db().set_version(&state.key, state.ver);
    ctx.out.buf.clear();
    true
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
    _rx: mpsc::Receiver<PubMsg>,
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
        let id = shared.next_client_id();
        let kill = CancellationToken::new();
        let (tx, rx) = mpsc::channel(QUEUE);
        let info = Arc::new(ClientInfo {
            id,
            addr: shared.addr,
            laddr: shared.addr,
            created: std::time::Instant::now(),
            name: Default::default(),
            lib: Default::default(),
            kill: kill.clone(),
            subs: Default::default(),
            resp3: Default::default(),
        });
        let conn = ConnState {
            id,
            info,
            authenticated: !shared.needs_auth(),
            credential: None,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            sub: Subscriber { id, tx, kill },
            close: false,
            hangup: false,
            block: None,
            waiter: Arc::new(Notify::new()),
            retry_deadline: None,
            cl: Default::default(),
        };
        Self {
            shared,
            conn,
            inbuf: BytesMut::new(),
            out: Reply::new(),
            _rx: rx,
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
            let (consumed, _) = process(&self.shared, &mut self.conn, &self.inbuf, &mut self.out);
            self.inbuf.advance(consumed);
            match self.conn.block.take() {
                Some(b) => {
                    self.shared.db.lock().unblock(&b.keys, &self.conn.waiter);
                    run_owned(&self.shared, &mut self.conn, &mut self.out, &b.args, false);
                }
                None => break,
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

//! One client's socket: read into a buffer, run every complete request in it through the
//! session (`session::process`, under one keyspace lock), let the placement finish the batch,
//! write all replies with one write, repeat.
//!
//! The per-request work allocates nothing on the fast path: arguments are slices of the read
//! buffer, the command name is lowercased on the stack, replies go into one reusable buffer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::ConnState;
use crate::pubsub::PubMsg;
use crate::reply::Reply;
use crate::session::{now_ms, process, run_owned};
use crate::shared::Shared;

/// Bytes read per `read` call at least.
const READ_CHUNK: usize = 16 * 1024;
/// A connection whose unparsed input exceeds this is closed (`client-query-buffer-limit`).
const QUERY_BUFFER_LIMIT: usize = 1024 * 1024 * 1024;
/// A query buffer idle this long is freed.
const QUERY_BUFFER_IDLE: Duration = Duration::from_secs(2);
/// Query buffers above this are shrunk to their recent peak (`PROTO_RESIZE_THRESHOLD`).
const QUERY_BUFFER_RESIZE: usize = 32 * 1024;
/// Output buffers larger than this are released after being written.
const OUT_SHRINK: usize = 1024 * 1024;

/// Serves one connection until it closes, the client is killed or the server shuts down.
pub async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(shared.addr);
    // The kill token is a child of the shutdown token: one future to watch for both.
    let kill = shutdown.child_token();
    let (mut conn, mut rx) = ConnState::new(&shared, peer, laddr, kill.clone());
    let id = conn.id;
    shared.clients.lock().insert(id, conn.info.clone());
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    shared.metrics.connections_total.inc();
    shared.metrics.connected_clients.inc();
    let span = tracing::debug_span!("redis_conn", id, %peer);
    let _e = span.enter();
    drop(_e);
    let res = run(&shared, &mut stream, &mut conn, &mut rx, &kill).await;
    if let Err(e) = res {
        tracing::debug!(parent: &span, error = %e, "connection ended");
    }
    conn.release(&shared);
    shared.metrics.connected_clients.dec();
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
    // The largest input held since the query buffer was last sized (Redis's querybuf_peak).
    let mut peak = 0usize;
    loop {
        peak = peak.max(inbuf.len());
        let (consumed, need) = process(shared, conn, &inbuf, &mut out);
        inbuf.advance(consumed);
        if conn.hangup {
            return Ok(());
        }
        while let Some(block) = conn.block.take() {
            // Write what came before the blocking command first.
            flush(shared, stream, conn, &mut out).await?;
            let activity = &conn.info.activity;
            activity.blocked.store(true, Ordering::Relaxed);
            let mut timed_out = loop {
                tokio::select! {
                    biased;
                    _ = &mut killed => {
                        conn.block = Some(block);
                        return Ok(());
                    }
                    _ = conn.waiter.notified() => break false,
                    _ = sleep_until_ms(block.deadline) => break true,
                    // A client that hangs up while it waits is gone at once (Redis notices
                    // too): it leaves the keys' lines and `blocked_clients`. What it
                    // pipelines meanwhile waits in its buffer.
                    n = stream.read_buf(&mut inbuf), if inbuf.len() <= QUERY_BUFFER_LIMIT => {
                        match n {
                            Ok(0) | Err(_) => {
                                conn.block = Some(block);
                                return Ok(());
                            }
                            Ok(n) => {
                                shared.stats.net_in.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        }
                    }
                }
            };
            activity.blocked.store(false, Ordering::Relaxed);
            match activity.unblock.swap(0, Ordering::Relaxed) {
                crate::introspect::UNBLOCK_TIMEOUT => timed_out = true,
                crate::introspect::UNBLOCK_ERROR => {
                    // Answered with an error instead of running again; its place in line goes
                    // to the next waiter.
                    let mut db = shared.db.lock();
                    db.pass_on(&block.keys, &conn.waiter);
                    db.unblock(&block.keys, &conn.waiter);
                    drop(db);
                    let e = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
                    shared.intro.unblocked_with_error(&block.args, e.as_bytes());
                    out.error(e);
                    let (consumed, _) = process(shared, conn, &inbuf, &mut out);
                    inbuf.advance(consumed);
                    if conn.hangup {
                        return Ok(());
                    }
                    continue;
                }
                _ => {}
            }
            // The waiter keeps its place in the keys' lines while its command runs again: if
            // it blocks anew it stays first in line (Redis serves blocked clients in order).
            // A command held by CLIENT PAUSE (no keys) runs afresh: its own timeout starts now.
            let paused = block.keys.is_empty();
            if paused {
                shared.intro.unpostpone(&conn.waiter);
            } else {
                conn.retry_deadline = Some(block.deadline);
            }
            run_owned(shared, conn, &mut out, &block.args, !timed_out || paused);
            conn.retry_deadline = None;
            {
                let mut db = shared.db.lock();
                if !timed_out {
                    db.pass_on(&block.keys, &conn.waiter);
                }
                let still: &[crate::value::Bytes] = conn.block.as_ref().map_or(&[], |b| &b.keys);
                let gone: Vec<crate::value::Bytes> = block
                    .keys
                    .iter()
                    .filter(|k| !still.contains(k))
                    .cloned()
                    .collect();
                db.unblock(&gone, &conn.waiter);
            }
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
        query_buffer_cron(&mut inbuf, &mut peak);
        publish_query_buffer(conn, &inbuf);
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
        let subscribed = conn.sub_count() > 0 || crate::tracking::listens(conn);
        let monitoring = conn.replies.monitor.is_some();
        let idle_buffer = inbuf.is_empty() && inbuf.capacity() > 0;
        tokio::select! {
            biased;
            _ = &mut killed => return Ok(()),
            // An idle client gives its query buffer back (Redis frees it after 2 s idle).
            _ = tokio::time::sleep(QUERY_BUFFER_IDLE), if idle_buffer => {
                inbuf = BytesMut::new();
                publish_query_buffer(conn, &inbuf);
            }
            n = stream.read_buf(&mut inbuf) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                shared.stats.net_in.fetch_add(n as u64, Ordering::Relaxed);
            }
            line = recv_monitor(&mut conn.replies.monitor), if monitoring => {
                match line {
                    Some(l) => out.buf.extend_from_slice(&l),
                    None => conn.replies.monitor = None,
                }
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

/// Completes a batch: the placement, if any, splices forwarded replies in and waits for the
/// replication its writes need.
pub async fn finish_batch(shared: &Shared, conn: &mut ConnState, out: &mut Reply) {
    if let Some(p) = shared.placement.get() {
        p.finish(shared, conn, out).await;
    }
}

/// Sizes the query buffer after a batch: an emptied buffer takes back the room its consumed
/// requests used; one much larger than what the last batch needed shrinks to that (Redis's
/// `clientsCronResizeQueryBuffer`).
fn query_buffer_cron(inbuf: &mut BytesMut, peak: &mut usize) {
    if inbuf.is_empty() && inbuf.capacity() > 0 {
        // Reclaims the consumed prefix without allocating.
        inbuf.reserve(READ_CHUNK);
        if inbuf.capacity() > QUERY_BUFFER_RESIZE && inbuf.capacity() / 2 > *peak {
            *inbuf = BytesMut::with_capacity((*peak).max(READ_CHUNK));
        }
        *peak = 0;
    }
}

/// Shows the query buffer's use in `CLIENT LIST` (`qbuf`, `qbuf-free`).
fn publish_query_buffer(conn: &ConnState, inbuf: &BytesMut) {
    let a = &conn.info.activity;
    a.qbuf.store(inbuf.len(), Ordering::Relaxed);
    a.qbuf_free
        .store(inbuf.capacity() - inbuf.len(), Ordering::Relaxed);
}

/// The next line for a `MONITOR` client.
async fn recv_monitor(
    rx: &mut Option<mpsc::Receiver<crate::value::Bytes>>,
) -> Option<crate::value::Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
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
    match &m.kind {
        crate::pubsub::MsgKind::Message => {}
        crate::pubsub::MsgKind::Invalidate(keys) => {
            // RESP3: a push; RESP2: a message on the invalidation channel.
            if out.resp3 {
                out.push(2);
                out.bulk(b"invalidate");
            } else {
                out.array(3);
                out.bulk(b"message");
                out.bulk(&m.channel);
            }
            match keys {
                Some(ks) => {
                    out.array(ks.len());
                    for k in ks {
                        out.bulk(k);
                    }
                }
                None => out.null(),
            }
            return;
        }
        crate::pubsub::MsgKind::RedirBroken(id) => {
            if out.resp3 {
                out.push(2);
                out.bulk(b"tracking-redir-broken");
                out.int(*id as i64);
            }
            return;
        }
    }
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

//! The receiving side of the cache protocol: proxied sessions, replication links, range pulls.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use mesh::PeerId;

use super::proto::{
    self, Accept, F_EXEC, F_READONLY, F_RESP3, KIND_LINK, KIND_SESSION, MAX_FRAME, Record,
};
use super::{Cluster, Internal};
use crate::conn::{self, ConnState};
use crate::reply::Reply;
use crate::shared::Shared;

/// The answer to every command of a request that wrote, on a member that does not own the
/// slot, what none of the slot's owners acknowledged (sync replication): not acknowledged,
/// the client retries.
const UNOWNED: &[u8] = b"-TRYAGAIN no owner of this slot acknowledged the write\r\n";

/// Serves one incoming stream.
pub async fn handle(
    shared: Arc<Shared>,
    cl: Arc<Cluster>,
    peer: PeerId,
    mut send: mesh::SendStream,
    mut recv: mesh::RecvStream,
) {
    let hello = match mesh::frame::FrameDecoder::new(1024).read(&mut recv).await {
        Ok(Some(h)) if !h.is_empty() => h,
        _ => return,
    };
    if let Some(accept) = Accept::of_kind(hello[0]) {
        let refused = match proto::decode_ranges(&hello[1..]) {
            Ok(groups) => pull(&shared, &cl, peer, &groups, accept),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "bad pull request");
                return;
            }
        };
        let _ = mesh::frame::write(&mut send, &proto::encode_ranges(&refused)).await;
        let _ = send.finish();
        return;
    }
    match hello[0] {
        KIND_SESSION => match proto::decode_session_hello(&hello[1..]) {
            Ok(cred) => session(&shared, &cl, cred, &mut send, &mut recv).await,
            Err(e) => {
                shared.metrics.peer_refused("bad_session");
                tracing::warn!(%peer, error = %e, "bad session hello");
            }
        },
        KIND_LINK => link(&shared, &cl, peer, &mut send, &mut recv).await,
        proto::KIND_MERGE => match proto::decode_ranges(&hello[1..]) {
            Ok(groups) => merge(&shared, &cl, &groups, &mut send).await,
            Err(e) => tracing::debug!(%peer, error = %e, "bad merge request"),
        },
        proto::KIND_MEMBERS => {
            let peers: Vec<String> = cl.view().nodes.iter().map(|n| n.peer.to_string()).collect();
            let _ = mesh::frame::write(&mut send, &proto::encode_members(&peers)).await;
            let _ = send.finish();
        }
        _ => tracing::debug!(%peer, "unknown cache stream kind"),
    }
}

/// Runs the commands of one request on `conn` and returns one reply per command, after the
/// forwards they needed and the replication acknowledgements they wait for.
pub async fn run_frame(
    shared: &Shared,
    cl: &Cluster,
    conn: &mut ConnState,
    req: &[u8],
    resp3: bool,
) -> Vec<Bytes> {
    let mut out = Reply::new();
    out.resp3 = resp3;
    let segs = conn::run_each(shared, conn, req, &mut out);
    let forwarded = if conn.cl.pending.is_empty() {
        Vec::new()
    } else {
        super::forward::run_pending(shared, cl, &mut conn.cl, conn.credential.as_ref(), resp3).await
    };
    let waits = std::mem::take(&mut conn.cl.waits);
    if !waits.is_empty() {
        cl.wait_acks(waits).await;
    }
    if !cl.owners_have(std::mem::take(&mut conn.cl.unowned)).await {
        return vec![Bytes::from_static(UNOWNED); segs.len()];
    }
    let buf = out.buf.freeze();
    let mut fw = forwarded.into_iter();
    let mut before = 0;
    segs.into_iter()
        .map(|(a, b, pending_after)| {
            let r = if pending_after > before {
                fw.next().unwrap_or_default()
            } else {
                buf.slice(a..b)
            };
            before = pending_after;
            r
        })
        .collect()
}

/// Runs RESP commands here whatever the view says (a fallback after a failed forward), as
/// the client whose credential is `cred`.
pub async fn exec_here(
    shared: &Shared,
    cl: &Cluster,
    req: &[u8],
    resp3: bool,
    cred: Option<conn::Credential>,
) -> Vec<Bytes> {
    let (mut conn, _rx) = ConnState::detached_as(shared, cred);
    conn.cl.internal = Some(Internal {
        exec: true,
        readonly: false,
        hops: 0,
    });
    let mut out = Reply::new();
    out.resp3 = resp3;
    let segs = conn::run_each(shared, &mut conn, req, &mut out);
    let waits = std::mem::take(&mut conn.cl.waits);
    if !waits.is_empty() {
        cl.wait_acks(waits).await;
    }
    let owners_have = cl.owners_have(std::mem::take(&mut conn.cl.unowned)).await;
    conn::cleanup(shared, &mut conn);
    if !owners_have {
        return vec![Bytes::from_static(UNOWNED); segs.len()];
    }
    let buf = out.buf.freeze();
    segs.into_iter().map(|(a, b, _)| buf.slice(a..b)).collect()
}

/// Serves a proxied session as the client it proxies: authenticated only if this node needs
/// no password or the client's credential (`cred`, from the hello) passes this node's
/// `requirepass`; otherwise its commands answer `NOAUTH`, as on a connection of its own.
async fn session(
    shared: &Shared,
    cl: &Cluster,
    cred: Option<conn::Credential>,
    send: &mut mesh::SendStream,
    recv: &mut mesh::RecvStream,
) {
    let (mut conn, _rx) = ConnState::detached_as(shared, cred);
    let dec = mesh::frame::FrameDecoder::new(MAX_FRAME);
    while let Ok(Some(f)) = dec.read(recv).await {
        if f.len() < 2 {
            break;
        }
        let (flags, hops) = (f[0], f[1]);
        conn.cl.internal = Some(Internal {
            exec: flags & F_EXEC != 0,
            readonly: flags & F_READONLY != 0,
            hops,
        });
        let replies = run_frame(shared, cl, &mut conn, &f[2..], flags & F_RESP3 != 0).await;
        let mut ans = BytesMut::with_capacity(replies.iter().map(|r| r.len() + 4).sum());
        for r in &replies {
            ans.put_u32(r.len() as u32);
            ans.put_slice(r);
        }
        if mesh::frame::write(send, &ans).await.is_err() {
            break;
        }
    }
    conn::cleanup(shared, &mut conn);
}

async fn link(
    shared: &Shared,
    cl: &Cluster,
    peer: PeerId,
    send: &mut mesh::SendStream,
    recv: &mut mesh::RecvStream,
) {
    let (mut conn, _rx) = ConnState::detached(shared);
    conn.cl.apply = true;
    let dec = mesh::frame::FrameDecoder::new(MAX_FRAME);
    let mut out = Reply::new();
    while let Ok(Some(f)) = dec.read(recv).await {
        let (seq, records) = match proto::decode_link(&f) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad replication frame; closing the link");
                break;
            }
        };
        for r in records {
            match r {
                Record::Keys(b) => match proto::decode_keys(&b) {
                    Ok(states) => {
                        for st in &states {
                            conn::apply_state(shared, &mut conn, &mut out, st);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "bad key states; closing the link");
                        conn::cleanup(shared, &mut conn);
                        return;
                    }
                },
                Record::Publish(b) => {
                    if let Err(e) = deliver_publish(shared, &b) {
                        shared.metrics.peer_refused("bad_publish");
                        tracing::warn!(%peer, error = e, "refused a published record");
                    }
                }
                Record::Done(groups) => cl.import_done(peer, &groups),
            }
        }
        if mesh::frame::write(send, &seq.to_be_bytes()).await.is_err() {
            break;
        }
    }
    conn::cleanup(shared, &mut conn);
}

/// Delivers a [`Record::Publish`] to this node's subscribers. It must be exactly one
/// `PUBLISH channel message` or `SPUBLISH channel message`: a peer's record never runs
/// anything else.
pub fn deliver_publish(shared: &Shared, body: &[u8]) -> Result<(), &'static str> {
    let mut argv: Vec<&[u8]> = Vec::with_capacity(3);
    match crate::resp::parse(body, &mut argv, shared.limits()) {
        Ok(crate::resp::Parsed::Multibulk { consumed }) if consumed == body.len() => {}
        _ => return Err("not exactly one RESP command"),
    }
    match argv[..] {
        [name, channel, message] if name.eq_ignore_ascii_case(b"publish") => {
            shared.pubsub.lock().publish(channel, message);
        }
        [name, channel, message] if name.eq_ignore_ascii_case(b"spublish") => {
            shared.pubsub.lock().publish_shard(channel, message);
        }
        _ => return Err("not PUBLISH or SPUBLISH channel message"),
    }
    Ok(())
}

/// Serves a pull: registers the puller for the ranges' writes, then queues their keys and a
/// `Done` on the link to it, all under the keyspace lock so no write falls in between.
/// Returns the ranges refused (no copy here of a kind the puller accepts, see
/// [`Cluster::can_hand_over`]) and logs each refusal's reason.
fn pull(shared: &Shared, cl: &Cluster, peer: PeerId, groups: &[u16], accept: Accept) -> Vec<u16> {
    let mut ok = Vec::new();
    let mut why = Vec::new();
    for &g in groups {
        match cl.hand_over(g, accept) {
            Ok(()) => ok.push(g),
            Err(reason) => why.push((g, reason)),
        }
    }
    if !why.is_empty() {
        tracing::debug!(%peer, ?accept, ?why, "cache: refused a pull");
    }
    let refused: Vec<u16> = why.iter().map(|(g, _)| *g).collect();
    if ok.is_empty() {
        return refused;
    }
    cl.add_importer(peer, &ok);
    let link = cl.link(peer);
    let now = conn::now_ms();
    let mut db = shared.db.lock();
    let chunks = super::dump::dump_ranges(&mut db, &ok, now, 0);
    let keys: usize = chunks.iter().map(|(n, _)| n).sum();
    for (_, c) in chunks {
        link.push(Record::Keys(c));
    }
    link.push(Record::Done(ok.clone()));
    drop(db);
    tracing::info!(%peer, ranges = ok.len(), keys, "cache: ranges handed over");
    refused
}

/// Answers a merge request: this node's copies of the ranges it holds, serves, is pulling or
/// released lately (stale or not, see [`Cluster::has_copy`]), as frames of key states.
async fn merge(shared: &Shared, cl: &Cluster, groups: &[u16], send: &mut mesh::SendStream) {
    let mine: Vec<u16> = groups.iter().copied().filter(|g| cl.has_copy(*g)).collect();
    let chunks = if mine.is_empty() {
        Vec::new()
    } else {
        super::dump::dump_ranges(&mut shared.db.lock(), &mine, conn::now_ms(), 0)
    };
    for (_, c) in chunks {
        if mesh::frame::write(send, &c).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::deliver_publish;
    use crate::cluster::proto::command;
    use crate::conn::{ConnState, Session};

    #[test]
    fn a_published_record_only_publishes() {
        let mut s = Session::new();
        s.cmd(&["SET", "k", "v"]);
        let shared = s.shared().clone();
        let (c, mut rx) = ConnState::detached(&shared);
        shared.pubsub.lock().subscribe(false, b"ch", &c.sub);
        shared.pubsub.lock().subscribe_shard(b"sh", &c.sub);
        let rec = |cmds: &[&[&str]]| {
            let mut b = BytesMut::new();
            for c in cmds {
                let v: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
                command(&mut b, &v);
            }
            b.to_vec()
        };
        assert!(deliver_publish(&shared, &rec(&[&["PUBLISH", "ch", "hi"]])).is_ok());
        assert!(deliver_publish(&shared, &rec(&[&["spublish", "sh", "yo"]])).is_ok());
        let m = rx.try_recv().unwrap();
        assert_eq!(
            (&m.channel[..], &m.payload[..], m.shard),
            (&b"ch"[..], &b"hi"[..], false)
        );
        let m = rx.try_recv().unwrap();
        assert_eq!(
            (&m.channel[..], &m.payload[..], m.shard),
            (&b"sh"[..], &b"yo"[..], true)
        );
        for bad in [
            rec(&[&["FLUSHALL"]]),
            rec(&[&["DEL", "k"]]),
            rec(&[&["PUBLISH", "ch"]]),
            rec(&[&["PUBLISH", "ch", "a", "b"]]),
            rec(&[&["PUBLISH", "ch", "a"], &["DEL", "k"]]),
            b"PUBLISH ch a\r\n".to_vec(),
            Vec::new(),
        ] {
            assert!(deliver_publish(&shared, &bad).is_err(), "{bad:?}");
        }
        assert!(rx.try_recv().is_err());
        assert_eq!(s.cmd(&["GET", "k"]), "$1\r\nv\r\n");
    }
}

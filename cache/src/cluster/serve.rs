//! The receiving side of the cache protocol: proxied sessions, replication links, range pulls.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use mesh::PeerId;

use super::apply::apply_state;
use super::proto::{
    self, Accept, F_EXEC, F_READONLY, F_RESP3, KIND_LINK, KIND_SESSION, MAX_FRAME, Record,
};
use super::{Cluster, ConnCluster, Internal};
use crate::client::{ConnState, Credential};
use crate::cmd::Ctx;
use crate::reply::Reply;
use crate::resp::{self, Parsed};
use crate::session::{execute, now_ms};
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
    // Every cache stream (session, link, pull, merge, members) needs a member certified
    // for the cache: a stranger reaching the QUIC port with a fresh key gets nothing.
    if !cl.mesh.peer_has_role(&peer, super::membership::CACHE_ROLE) {
        cl.uncertified_refused.inc();
        tracing::debug!(%peer, "cache stream from an uncertified member refused");
        return;
    }
    let hello = match mesh::frame::FrameDecoder::new(1024).read(&mut recv).await {
        Ok(Some(h)) if !h.is_empty() => h,
        _ => return,
    };
    if let Some(accept) = Accept::of_kind(hello[0]) {
        let (refused, empty) = match proto::decode_pull(&hello[1..]) {
            Ok(p) => pull(&shared, &cl, peer, &p, accept),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "bad pull request");
                return;
            }
        };
        let answer = proto::encode_refusal(&refused, &empty);
        let _ = mesh::frame::write(&mut send, &answer).await;
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
            Ok(groups) => {
                if let Err(e) =
                    super::merge::answer(&shared, &cl, &groups, &mut send, &mut recv).await
                {
                    tracing::debug!(%peer, error = %e, "cache: merge answer failed");
                }
            }
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

/// Runs the requests in `buf` one by one (each under its own keyspace lock), for peers'
/// requests. Returns, per command, the span of its reply in `out` and the number of pending
/// forwards after it (a command that was queued for forwarding has an empty span).
pub(super) fn run_each(
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
                segs.push((start, out.buf.len(), pending(conn)));
                break;
            }
        }
        conn.block = None;
        segs.push((start, out.buf.len(), pending(conn)));
    }
    segs
}

/// Forwards queued so far by `conn`'s batch.
fn pending(conn: &mut ConnState) -> usize {
    conn.placement.get::<ConnCluster>().pending.len()
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
    let segs = run_each(shared, conn, req, &mut out);
    let readonly = conn.routing.readonly;
    let credential = conn.credential.clone();
    let cc = conn.placement.get::<ConnCluster>();
    let forwarded = if cc.pending.is_empty() {
        Vec::new()
    } else {
        super::forward::run_pending(shared, cl, cc, readonly, credential.as_ref(), resp3).await
    };
    let waits = std::mem::take(&mut cc.waits);
    if !waits.is_empty() {
        cl.wait_acks(waits).await;
    }
    if !cl.owners_have(std::mem::take(&mut cc.unowned)).await {
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
    cred: Option<Credential>,
) -> Vec<Bytes> {
    let (mut conn, _rx) = ConnState::detached_as(shared, cred);
    conn.placement.get::<ConnCluster>().internal = Some(Internal {
        exec: true,
        readonly: false,
        hops: 0,
    });
    let mut out = Reply::new();
    out.resp3 = resp3;
    let segs = run_each(shared, &mut conn, req, &mut out);
    let cc = conn.placement.get::<ConnCluster>();
    let waits = std::mem::take(&mut cc.waits);
    if !waits.is_empty() {
        cl.wait_acks(waits).await;
    }
    let owners_have = cl.owners_have(std::mem::take(&mut cc.unowned)).await;
    conn.release(shared);
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
    cred: Option<Credential>,
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
        conn.placement.get::<ConnCluster>().internal = Some(Internal {
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
    conn.release(shared);
}

async fn link(
    shared: &Shared,
    cl: &Cluster,
    peer: PeerId,
    send: &mut mesh::SendStream,
    recv: &mut mesh::RecvStream,
) {
    let (mut conn, _rx) = ConnState::detached(shared);
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
                        cl.received
                            .link
                            .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        for st in &states {
                            if apply_state(shared, &mut conn, &mut out, st).is_some() {
                                cl.observe(st.ver);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "bad key states; closing the link");
                        conn.release(shared);
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
    conn.release(shared);
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

/// Serves a pull: registers the puller for the ranges' writes, then queues their keys (those
/// of versions `since` or newer: a puller that kept its copy asks only for what it may have
/// missed) and a `Done` on the link to it, all under the keyspace lock so no write falls in
/// between.
/// Returns the ranges refused (no copy here of a kind the puller accepts, see
/// [`Cluster::can_hand_over`]) and logs each refusal's reason.
fn pull(
    shared: &Shared,
    cl: &Cluster,
    peer: PeerId,
    asked: &proto::Pull,
    accept: Accept,
) -> (Vec<u16>, Vec<u16>) {
    let mut ok = Vec::new();
    let mut why = Vec::new();
    for &g in &asked.ranges {
        match cl.hand_over(g, accept) {
            Ok(()) => ok.push(g),
            Err(r) => why.push((g, r.why, r.empty)),
        }
    }
    if !why.is_empty() {
        tracing::debug!(%peer, ?accept, ?why, "cache: refused a pull");
    }
    let refused: Vec<u16> = why.iter().map(|(g, _, _)| *g).collect();
    // "Nothing here" is final only for a puller that places ranges as this node does: with
    // another view (right after a heal, say) this node may yet gain or serve the range.
    let same_view = cl.view().digest == asked.view;
    let empty: Vec<u16> = why
        .iter()
        .filter(|(_, _, empty)| *empty && same_view)
        .map(|(g, _, _)| *g)
        .collect();
    if ok.is_empty() {
        return (refused, empty);
    }
    let since = asked.since;
    cl.add_importer(peer, &ok);
    let link = cl.link(peer);
    let now = now_ms();
    let mut db = shared.db.lock();
    let chunks = super::dump::dump_ranges(&mut db, &ok, now, since);
    let keys: usize = chunks.iter().map(|(n, _)| n).sum();
    for (_, c) in chunks {
        link.push(Record::Keys(c));
    }
    link.push(Record::Done(ok.clone()));
    drop(db);
    tracing::info!(%peer, ranges = ok.len(), keys, since, ?accept, "cache: ranges handed over");
    (refused, empty)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::{Bytes, BytesMut};
    use tokio_util::sync::CancellationToken;

    use super::deliver_publish;
    use crate::client::{ConnState, Credential};
    use crate::cluster::link::Link;
    use crate::cluster::proto::{self, Record, command};
    use crate::cluster::{Cluster, max_peer_version};
    use crate::session::{Session, now_ms};

    /// A member of an open cluster (every member certified for the cache): these tests are
    /// about what a member's peer may do, not about certificates (`tests/trust.rs`).
    async fn node(seed: u8) -> mesh::Mesh {
        let m = mesh::Mesh::start(
            mesh::keypair_from_seed([seed; 32]),
            mesh::MeshConfig::local(),
            &mut prometheus_client::registry::Registry::default(),
        )
        .await
        .expect("a mesh on loopback");
        m.set_trust_policy(mesh::trust::TrustPolicy {
            anchor: None,
            open: true,
        })
        .await;
        m
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn resp(cmds: &[&[&str]]) -> Bytes {
        let mut b = BytesMut::new();
        for c in cmds {
            let v: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
            command(&mut b, &v);
        }
        b.freeze()
    }

    fn state(key: &str, ver: u64, cmds: &[&[&str]]) -> Record {
        let mut b = BytesMut::new();
        proto::encode_key_state(&mut b, key.as_bytes(), ver, |o| {
            o.extend_from_slice(&resp(cmds))
        });
        Record::Keys(b.freeze())
    }

    /// Opens a proxied session to `to` with `hello` and runs `cmd` there; the reply, or
    /// `None` if the stream was closed.
    async fn session_call(
        from: &mesh::Mesh,
        to: &mesh::Mesh,
        hello: &[u8],
        cmd: &[&str],
    ) -> Option<String> {
        let (mut send, mut recv) = from.open_bi(to.peer_id(), proto::ALPN).await.ok()?;
        mesh::frame::write(&mut send, hello).await.ok()?;
        let mut f = vec![0, 2];
        f.extend_from_slice(&resp(&[cmd]));
        mesh::frame::write(&mut send, &f).await.ok()?;
        let ans = mesh::frame::FrameDecoder::new(proto::MAX_FRAME)
            .read(&mut recv)
            .await
            .ok()??;
        let r = proto::decode_replies(&ans, 1).ok()?;
        Some(String::from_utf8_lossy(&r[0]).into_owned())
    }

    /// What a peer sends through the cache protocol's own streams, served by
    /// [`super::handle`]: a session runs as the client whose credential it carries, checked
    /// against this node's `requirepass`; a link's records are key states of their own keys
    /// with bounded versions, and publications, nothing else.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_gets_no_more_than_its_client_would() {
        let (a, b) = (node(41).await, node(42).await);
        let mut local = Session::new();
        let shared = local.shared().clone();
        shared.set_param("requirepass", "s3cret").unwrap();
        let cl = Arc::new(Cluster::new(
            b.clone(),
            shared.addr,
            2,
            false,
            CancellationToken::new(),
        ));
        let (s, c) = (shared.clone(), cl.clone());
        b.dataplane()
            .serve_streams(proto::ALPN, move |peer, send, recv| {
                Box::pin(super::handle(s.clone(), c.clone(), peer, send, recv))
            })
            .unwrap();
        a.join(b.local_member()).await;
        until("a to see b", || {
            a.members().iter().any(|m| m.id.peer == b.peer_id())
        })
        .await;

        let cred = |pass: &str| Credential {
            user: b"default".to_vec(),
            pass: pass.as_bytes().to_vec(),
        };
        let noauth = Some("-NOAUTH Authentication required.\r\n".to_owned());
        let hello = |c: Option<Credential>| proto::encode_session_hello(c.as_ref()).unwrap();
        let set = ["SET", "k", "v"];
        assert_eq!(session_call(&a, &b, &hello(None), &set).await, noauth);
        assert_eq!(
            session_call(&a, &b, &hello(Some(cred("wrong"))), &set).await,
            noauth
        );
        assert_eq!(local.cmd(&["AUTH", "s3cret"]), "+OK\r\n");
        assert_eq!(local.cmd(&["EXISTS", "k"]), ":0\r\n");
        assert_eq!(
            session_call(&a, &b, &hello(Some(cred("s3cret"))), &set)
                .await
                .as_deref(),
            Some("+OK\r\n")
        );
        assert_eq!(local.cmd(&["GET", "k"]), "$1\r\nv\r\n");
        // A malformed hello: the stream is closed, counted.
        assert_eq!(
            session_call(&a, &b, &[proto::KIND_SESSION, 0, 9, 1], &set).await,
            None
        );
        assert_eq!(shared.metrics.peer_refused_count("bad_session"), 1);

        let (sub, mut rx) = ConnState::detached(&shared);
        shared.pubsub.lock().subscribe(false, b"ch", &sub.sub);
        let link = Link::start(a.clone(), b.peer_id(), CancellationToken::new(), None);
        let future = max_peer_version(now_ms() + 1_000) + 1;
        for r in [
            Record::Publish(resp(&[&["FLUSHALL"]])),
            Record::Publish(resp(&[&["PUBLISH", "ch", "hi"]])),
            state("k2", 1, &[&["FLUSHALL"]]),
            state(
                "k2",
                1,
                &[&["SET", "k2", "x"], &["SET", "k", "overwritten"]],
            ),
            state("k3", future, &[&["SET", "k3", "pinned"]]),
            state("k4", 1, &[&["SET", "k4", "v4"]]),
        ] {
            link.push(r);
        }
        let last = link.push(Record::Publish(resp(&[&["SET", "k", "published"]])));
        assert!(link.wait(last, Duration::from_secs(20)).await);
        assert_eq!(local.cmd(&["GET", "k"]), "$1\r\nv\r\n");
        assert_eq!(local.cmd(&["EXISTS", "k2", "k3"]), ":0\r\n");
        assert_eq!(local.cmd(&["GET", "k4"]), "$2\r\nv4\r\n");
        let m = rx.try_recv().expect("the PUBLISH is delivered");
        assert_eq!((&m.channel[..], &m.payload[..]), (&b"ch"[..], &b"hi"[..]));
        assert!(rx.try_recv().is_err());
        let count = |r| shared.metrics.peer_refused_count(r);
        assert_eq!(
            (
                count("bad_publish"),
                count("bad_state"),
                count("future_version")
            ),
            (2, 2, 1)
        );

        // A merge names the ranges this node offers (none: it holds no range yet); asking
        // for one it did not offer, or for its leaves outright, ends the stream with no state.
        let g = crate::cluster::group_of(crate::slot::key_slot(b"k4"));
        for ask in [
            proto::encode_ranges(&[g]),
            crate::cluster::aae::encode_masks(&[(crate::cluster::aae::node_id(g, 0), u16::MAX)]),
        ] {
            let (mut send, mut recv) = a.open_bi(b.peer_id(), proto::ALPN).await.unwrap();
            let mut hello = vec![proto::KIND_MERGE];
            hello.extend_from_slice(&proto::encode_ranges(&[g]));
            mesh::frame::write(&mut send, &hello).await.unwrap();
            let dec = mesh::frame::FrameDecoder::new(proto::MAX_FRAME);
            let roots = dec.read(&mut recv).await.unwrap().expect("roots");
            assert!(
                crate::cluster::aae::decode_roots(&roots)
                    .unwrap()
                    .is_empty()
            );
            mesh::frame::write(&mut send, &ask).await.unwrap();
            let _ = send.finish();
            assert!(
                matches!(dec.read(&mut recv).await, Ok(None) | Err(_)),
                "a merge answered states of a range it did not offer"
            );
        }
    }

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

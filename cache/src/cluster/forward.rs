//! Proxying a client's commands to the node that owns their slot.
//!
//! The commands of one pipelined batch that go elsewhere are grouped per peer and sent as one
//! frame each, to all peers at once, on a stream the client connection keeps per peer (so
//! `WATCH`/`MULTI` state lives on the remote side for the connection's lifetime). If a peer
//! does not answer within [`FORWARD_TIMEOUT`], it is suspected and the commands go to the next
//! holder of their slot, which runs them whatever its view says. A member that restarted and
//! has not installed its first view answers every command with `TRYAGAIN this node is
//! starting`; its holders stand in for it the same way (without suspecting it), so a client
//! never sees a restart its cluster rides through.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mesh::PeerId;

use super::proto::{self, F_EXEC, F_READONLY, F_RESP3, MAX_FRAME};
use super::{Cluster, ConnCluster};
use crate::client::Credential;
use crate::shared::Shared;

/// How long a forwarded batch may take before the peer is suspected.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// A command (or a `MULTI ... EXEC` group) to forward.
#[derive(Debug)]
pub struct Pending {
    /// Where its reply goes in the batch's output.
    pub offset: usize,
    /// The peer.
    pub peer: PeerId,
    /// Run there regardless of the peer's view.
    pub exec: bool,
    /// Forwards the peer may still make.
    pub hops: u8,
    /// The slot (for fallbacks).
    pub slot: u16,
    /// The command(s), RESP-encoded.
    pub req: BytesMut,
    /// Number of commands in `req`.
    pub ncmds: usize,
    /// Answer with the last reply only (a transaction's `EXEC`).
    pub take_last: bool,
}

/// An open proxy stream to one peer, authenticated there with the credential it was opened
/// with (the client's, see [`proto::encode_session_hello`]).
#[derive(Debug)]
pub struct PeerSession {
    send: mesh::SendStream,
    recv: mesh::RecvStream,
    cred: Option<Credential>,
}

impl PeerSession {
    async fn open(mesh: &mesh::Mesh, peer: PeerId, cred: Option<&Credential>) -> Option<Self> {
        let hello = proto::encode_session_hello(cred).or_else(|| {
            tracing::debug!(%peer, "credential too long to carry; proxying unauthenticated");
            proto::encode_session_hello(None)
        })?;
        let (mut send, recv) = mesh.open_bi(peer, proto::ALPN).await.ok()?;
        mesh::frame::write(&mut send, &hello).await.ok()?;
        Some(Self {
            send,
            recv,
            cred: cred.cloned(),
        })
    }

    async fn call(&mut self, flags: u8, hops: u8, req: &[u8], n: usize) -> Option<Vec<Bytes>> {
        let mut f = Vec::with_capacity(2 + req.len());
        f.push(flags);
        f.push(hops);
        f.extend_from_slice(req);
        mesh::frame::write(&mut self.send, &f).await.ok()?;
        let ans = mesh::frame::FrameDecoder::new(MAX_FRAME)
            .read(&mut self.recv)
            .await
            .ok()??;
        proto::decode_replies(&ans, n).ok()
    }
}

/// Whether `reply` is what a member answers before its first view is installed.
fn is_starting(reply: &[u8]) -> bool {
    reply
        .strip_prefix(b"-")
        .and_then(|r| r.strip_suffix(b"\r\n"))
        .is_some_and(|r| r == super::STARTING.as_bytes())
}

fn finish_reply(replies: Vec<Bytes>, take_last: bool) -> Bytes {
    if take_last {
        return replies.into_iter().last().unwrap_or_default();
    }
    if replies.len() == 1 {
        return replies.into_iter().next().unwrap_or_default();
    }
    let mut b = BytesMut::new();
    for r in replies {
        b.extend_from_slice(&r);
    }
    b.freeze()
}

/// Sends the batch's pending commands and returns one reply per pending entry, in order.
/// They run as the client: `cred` is what it authenticated with here (sessions opened with
/// another credential are opened again).
pub async fn run_pending(
    shared: &Shared,
    cl: &Cluster,
    cc: &mut ConnCluster,
    readonly: bool,
    cred: Option<&Credential>,
    resp3: bool,
) -> Vec<Bytes> {
    let pend = std::mem::take(&mut cc.pending);
    // The client authenticated again since: its sessions carry the new credential.
    cc.sessions.retain(|_, s| s.cred.as_ref() == cred);
    let base = if cc.internal.map_or(readonly, |i| i.readonly) {
        F_READONLY
    } else {
        0
    } | if resp3 { F_RESP3 } else { 0 };
    // Groups of consecutive-or-not pendings with the same (peer, exec, hops), in first-seen order.
    let mut groups: Vec<(PeerId, u8, u8, Vec<usize>)> = Vec::new();
    for (i, p) in pend.iter().enumerate() {
        let flags = base | if p.exec { F_EXEC } else { 0 };
        match groups
            .iter_mut()
            .find(|g| g.0 == p.peer && g.1 == flags && g.2 == p.hops)
        {
            Some(g) => g.3.push(i),
            None => groups.push((p.peer, flags, p.hops, vec![i])),
        }
    }
    let mut per_peer: HashMap<PeerId, Vec<usize>> = HashMap::new();
    for (gi, g) in groups.iter().enumerate() {
        per_peer.entry(g.0).or_default().push(gi);
    }
    let mut sessions: Vec<(PeerId, Option<PeerSession>, Vec<usize>)> = per_peer
        .into_iter()
        .map(|(p, gs)| (p, cc.sessions.remove(&p), gs))
        .collect();
    let groups_ref = &groups;
    let pend_ref = &pend;
    let futs = sessions.iter_mut().map(|(peer, sess, gs)| async move {
        let mut results: Vec<(usize, Option<Vec<Bytes>>)> = Vec::new();
        for &gi in gs.iter() {
            let (_, flags, hops, ref members) = groups_ref[gi];
            let mut req = BytesMut::new();
            let mut n = 0;
            for &i in members {
                req.extend_from_slice(&pend_ref[i].req);
                n += pend_ref[i].ncmds;
            }
            let res = tokio::time::timeout(FORWARD_TIMEOUT, async {
                if sess.is_none() {
                    *sess = PeerSession::open(&cl.mesh, *peer, cred).await;
                }
                match sess.as_mut() {
                    Some(s) => s.call(flags, hops, &req, n).await,
                    None => None,
                }
            })
            .await
            .ok()
            .flatten();
            if res.is_none() {
                *sess = None;
            }
            results.push((gi, res));
        }
        results
    });
    let outcomes = futures::future::join_all(futs).await;
    for (peer, sess, _) in sessions {
        if let Some(s) = sess {
            cc.sessions.insert(peer, s);
        }
    }
    let mut replies: Vec<Option<Bytes>> = vec![None; pend.len()];
    let mut failed: Vec<usize> = Vec::new();
    for (gi, res) in outcomes.into_iter().flatten() {
        let members = &groups[gi].3;
        match res {
            // A member restarting before its first view runs nothing: its holders stand in
            // for it (it is not suspected: it answered).
            Some(all) if all.iter().all(|r| is_starting(r)) => {
                failed.extend(members.iter().copied());
            }
            Some(all) => {
                let mut it = all.into_iter();
                for &i in members {
                    let mine: Vec<Bytes> = it.by_ref().take(pend[i].ncmds).collect();
                    replies[i] = Some(finish_reply(mine, pend[i].take_last));
                }
            }
            None => {
                // The batch may have run there (only its reply is missing): what the fallback
                // runs again can answer differently (a PEXPIRE the owner applied answered 0 by
                // a holder that lacks the key). Logged so a history check's finding can be
                // traced to it.
                tracing::debug!(
                    peer = %groups[gi].0,
                    commands = members.len(),
                    "cache: no answer to a forward; running it at the next holder"
                );
                cl.suspect(groups[gi].0);
                failed.extend(members.iter().copied());
            }
        }
    }
    failed.sort_unstable();
    // Fallbacks, one by one, in order: the next holder runs them regardless of its view.
    for i in failed {
        let p = &pend[i];
        let flags = base | F_EXEC;
        let mut tried = vec![p.peer];
        let mut res = None;
        // The next holders in order, skipping the ones that failed: at most three tries.
        while res.is_none() && tried.len() <= 3 {
            match cl.fallback_after(p.slot, &tried) {
                None => {
                    res = Some(
                        super::serve::exec_here(shared, cl, &p.req, resp3, cred.cloned()).await,
                    );
                }
                Some(next) => {
                    tried.push(next);
                    let mut s = cc.sessions.remove(&next);
                    let r = tokio::time::timeout(FORWARD_TIMEOUT, async {
                        if s.is_none() {
                            s = PeerSession::open(&cl.mesh, next, cred).await;
                        }
                        match s.as_mut() {
                            Some(s) => s.call(flags, 1, &p.req, p.ncmds).await,
                            None => None,
                        }
                    })
                    .await
                    .ok()
                    .flatten();
                    match (r.is_some(), s) {
                        (true, Some(s)) => {
                            cc.sessions.insert(next, s);
                        }
                        (false, _) => cl.suspect(next),
                        _ => {}
                    }
                    res = r.filter(|all| !all.iter().all(|r| is_starting(r)));
                }
            }
        }
        replies[i] = Some(match res {
            Some(r) => finish_reply(r, p.take_last),
            None => Bytes::from_static(b"-TRYAGAIN the owner of this slot is unreachable\r\n"),
        });
    }
    replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Bytes::from_static(b"-TRYAGAIN no reply\r\n")))
        .collect()
}

/// Inserts each reply at its pending offset of `buf` (offsets ascending, stable).
pub fn splice(buf: &mut BytesMut, offsets: &[usize], replies: Vec<Bytes>) {
    let extra: usize = replies.iter().map(Bytes::len).sum();
    let mut out = BytesMut::with_capacity(buf.len() + extra);
    let mut last = 0;
    for (off, r) in offsets.iter().zip(replies) {
        out.extend_from_slice(&buf[last..*off]);
        out.extend_from_slice(&r);
        last = *off;
    }
    out.extend_from_slice(&buf[last..]);
    *buf = out;
}

#[cfg(test)]
mod tests {
    use super::is_starting;

    #[test]
    fn only_the_starting_error_stands_a_member_in() {
        assert!(is_starting(b"-TRYAGAIN this node is starting\r\n"));
        assert!(!is_starting(b"-TRYAGAIN no reply\r\n"));
        assert!(!is_starting(b"$31\r\nTRYAGAIN this node is starting\r\n"));
        assert!(!is_starting(b"-TRYAGAIN this node is starting"));
        assert!(!is_starting(b""));
    }
}

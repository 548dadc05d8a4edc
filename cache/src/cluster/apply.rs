//! Replication's entry point: a key state from a peer (a replicated write, a hand-over, a
//! merge) applied to this node's keyspace, newest version wins. It does not pass through the
//! session: nothing is routed, checked as a client's request, or captured again.

#[cfg(doc)]
use super::Cluster;
use super::proto::KeyState;
use crate::client::ConnState;
use crate::cmd::table;
use crate::cmd::{Ctx, lower};
use crate::reply::Reply;
use crate::session::now_ms;
use crate::shared::Shared;

/// Sets a key to a state a peer sent (replication, a hand-over, a merge) unless this node's
/// copy is newer: the version check and the commands run under one hold of the keyspace lock,
/// so a write made here meanwhile is never overwritten by an older state. Returns whether the
/// state was applied, or `None` if it was refused; the caller's clock should note the version
/// of every state not refused ([`Cluster::observe`]). `conn` is the applier's client: its commands run here only, unrouted and
/// uncaptured ([`Ctx::run_here`]): the sender versioned the state already.
///
/// What a peer says is checked first, and a state that fails is refused whole (and counted in
/// `peer_refused_total`): its version may be at most [`super::MAX_VERSION_DRIFT`]
/// ahead of this node's clock (`future_version`: a key versioned at `u64::MAX` could never be
/// overwritten), and its commands must be exactly those that build its own key
/// ([`super::dump::state_commands`], `bad_state`).
pub fn apply_state(
    shared: &Shared,
    conn: &mut ConnState,
    out: &mut Reply,
    state: &KeyState,
) -> Option<bool> {
    let limits = shared.limits();
    let now = now_ms();
    let key = String::from_utf8_lossy(&state.key[..state.key.len().min(128)]);
    if state.ver > super::max_peer_version(now) {
        shared.metrics.peer_refused("future_version");
        tracing::warn!(%key, ver = state.ver, now, "refused a key state versioned in the future");
        return None;
    }
    let cmds = match super::dump::state_commands(&state.key, &state.ops, limits) {
        Ok(c) => c,
        Err(e) => {
            shared.metrics.peer_refused("bad_state");
            tracing::warn!(%key, error = e, "refused a key state that is not one");
            return None;
        }
    };
    // A state that expired on its way (a hand-off, a merge after a cut) stands for the
    // tombstone its key left on the replicas that held it: compared, and buried, at that
    // tombstone's version, so every node settles on the same outcome.
    let ver = match super::dump::state_expiry(&cmds) {
        Some(at) if at != 0 && at <= now => crate::tombstone::expiry_version(state.ver, at),
        _ => state.ver,
    };
    let mut ctx = Ctx::new(shared, conn, out, now);
    ctx.may_block = false;
    let mine = ctx.db().version(&state.key, now);
    let apply = mine == 0 || ver > mine;
    tracing::trace!(
        target: "cache::keys",
        %key,
        ver,
        mine,
        apply,
        "state received"
    );
    if !apply {
        return Some(false);
    }
    for argv in &cmds {
        // `state_commands` let only commands of the table through.
        if let Some(cmd) = lower(argv[0], &mut [0u8; 32]).and_then(table::lookup) {
            ctx.run_here(cmd, argv);
        }
    }
    ctx.db().set_version(&state.key, ver, now);
    ctx.out.buf.clear();
    Some(true)
}

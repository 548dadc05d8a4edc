//! The hand-over of ranges this node gained: pulls, their rounds and sources, their end.
//!
//! A gained range is pulled from the first other member of its rendezvous order that can hand
//! it over ([`Cluster::can_hand_over`]), in rounds that each settle for a worse copy than the
//! last ([`proto::Accept`]): a copy some member serves, then one released lately, then one kept
//! over a rejoin. A range this node loses is [`Released`]: it can still hand it over for a
//! while. View changes themselves are in [`super::membership`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mesh::PeerId;

use super::proto::{self, Accept};
use super::{Answer, CATCHING_UP, Cluster, FRESH, IMPORTING, Import, Released, SERVING};

/// How long a pull may take before the next source is tried.
pub(super) const PULL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a round of pulls waits for sources that stay suspected once the others answered.
const POSTPONE: Duration = Duration::from_secs(10);
/// Rounds that ask for every kind of copy (served, released, kept): their refusals ask the
/// next source at once, and a range is served as it is only after all of them.
const KICKED_ROUNDS: usize = 3;
/// Pull attempts per range before it is served as it is, unless [`MIN_TRYING`] has not passed
/// or [`KICKED_ROUNDS`] are not over (at 30 nodes, 50 attempts are less than two rounds).
const MAX_ATTEMPTS: usize = 50;
/// How long a range's pull keeps being retried, however often its sources refuse: right after
/// a heal the views disagree for seconds and sources refuse ranges they do not own yet. Not
/// waited when every source said, with this node's view, that it holds no copy at all
/// (`Import::nobody_holds`).
const MIN_TRYING: Duration = Duration::from_secs(30);

impl Cluster {
    /// Notes that this node held range `g` until now (`whole`: its copy had every key, see
    /// [`Released`]): it can still hand it over or answer merges for a while, unless its copies
    /// are stale.
    pub(super) fn release(&self, g: u16, whole: bool) {
        if self.freshness.load(Ordering::Acquire) == FRESH {
            let at = Instant::now();
            self.released.lock().insert(g, Released { at, whole });
        }
    }

    /// A node catching up is fresh again once no range is left to pull (`imports`).
    pub(super) fn check_fresh(&self, imports: &HashMap<u16, Import>) {
        if imports.is_empty()
            && self
                .freshness
                .compare_exchange(CATCHING_UP, FRESH, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::info!("cache: caught up after being without a majority");
        }
    }

    /// A `Done` arrived from `peer` for `groups`: serve those it was pulling from `peer`.
    pub fn import_done(&self, peer: PeerId, groups: &[u16]) {
        tracing::debug!(%peer, ?groups, "cache: pull done");
        let mut imports = self.imports.lock();
        for g in groups {
            let from_peer = imports
                .get(g)
                .is_some_and(|i| i.asked.is_some_and(|(p, _)| p == peer));
            if from_peer && self.group_state(*g) == IMPORTING {
                imports.remove(g);
                self.state[usize::from(*g)].store(SERVING, Ordering::Release);
            }
        }
        if imports.is_empty() {
            tracing::info!("cache: every owned range is served");
        }
        self.check_fresh(&imports);
    }

    /// `peer` answered a pull of `groups`, refusing `refused`: it hands the others over.
    pub(super) fn pull_accepted(&self, peer: PeerId, groups: &[u16], refused: &[u16]) {
        let mut imports = self.imports.lock();
        for g in groups.iter().filter(|g| !refused.contains(g)) {
            if let Some(imp) = imports.get_mut(g)
                && imp.asked.is_some_and(|(p, _)| p == peer)
            {
                imp.accepted = Some(peer);
            }
        }
    }

    /// `peer` refused `groups` or could not be asked; of those, it holds no copy of `empty`.
    pub(super) fn pull_failed(&self, peer: PeerId, groups: &[u16], empty: &[u16]) {
        tracing::debug!(%peer, ?groups, ?empty, "cache: pull refused or failed");
        let mut imports = self.imports.lock();
        let mut again = false;
        for g in groups {
            if let Some(imp) = imports.get_mut(g)
                && imp.asked.is_some_and(|(p, _)| p == peer)
            {
                let answer = if empty.contains(g) {
                    Answer::Empty
                } else {
                    Answer::Refused
                };
                imp.refused_by(peer, answer);
                again |= imp.round < KICKED_ROUNDS;
            }
        }
        // Until every source was tried for every kind of copy, ask the next one now rather
        // than at the next poll: meanwhile the range's requests go to whichever source is
        // being asked, or are run here on a copy that may lack keys. Later rounds wait for
        // the poll, so a range nobody holds is not asked for in a tight loop.
        if again {
            self.kick.notify_one();
        }
    }

    /// Which ranges to ask from which source now, and which copies each ask takes (served
    /// ones in a first round over the sources, then released ones, then kept ones).
    pub(super) fn due_pulls(&self) -> HashMap<(PeerId, Accept), Vec<u16>> {
        let mut due: HashMap<(PeerId, Accept), Vec<u16>> = HashMap::new();
        let mut give_up = Vec::new();
        let mut next_round = Vec::new();
        let mut imports = self.imports.lock();
        for (g, imp) in imports.iter_mut() {
            match imp.asked {
                Some((_, t)) if t.elapsed() < PULL_TIMEOUT => continue,
                Some((p, _)) => imp.refused_by(p, Answer::Refused),
                None => {}
            }
            if imp.sources.is_empty()
                || imp.nobody_holds()
                || (imp.round >= KICKED_ROUNDS
                    && imp.attempts >= MAX_ATTEMPTS
                    && imp.since.elapsed() >= MIN_TRYING)
            {
                give_up.push(*g);
                continue;
            }
            // The first source not asked in this round that is not suspected. A suspect is
            // postponed, not passed over: right after a restart or a heal a source may be
            // suspected for a few seconds, and a round that ended without it would settle
            // for a worse copy (a released one, missing the writes it served meanwhile) or
            // serve the range without its keys. A round ends when every source answered, or
            // when those left stayed suspected for [`POSTPONE`] after others answered.
            let pick = |imp: &Import| imp.untried(|p| self.is_suspect(p));
            let mut src = pick(imp);
            if src.is_none() {
                let answered = imp.answered();
                if answered == imp.sources.len()
                    || (answered > 0 && imp.round_since.elapsed() >= POSTPONE)
                {
                    imp.next_round();
                    next_round.push((*g, imp.round));
                    src = pick(imp);
                }
            }
            if let Some(p) = src {
                imp.asked = Some((p, Instant::now()));
                due.entry((p, imp.accept())).or_default().push(*g);
            }
        }
        if !next_round.is_empty() {
            tracing::debug!(
                ?next_round,
                "cache: every source asked; next pull round (range, round)"
            );
        }
        let v = self.view();
        for &g in &give_up {
            let nobody = imports.get(&g).is_some_and(Import::nobody_holds);
            tracing::info!(
                range = g,
                nobody,
                "cache: no member could hand this range over; serving it as it is"
            );
            imports.remove(&g);
            self.state[usize::from(g)].store(SERVING, Ordering::Release);
        }
        self.check_fresh(&imports);
        drop(imports);
        // A copy the range's co-owners gain or serve later (their view differed, they were
        // starting) reaches this one by merges.
        for &g in &give_up {
            self.queue_merges(&self.co_owners(&v, g), &[g]);
        }
        due
    }
}

/// Asks `src` for `groups`, taking the copies `accept` names; false if it could not be asked
/// (the ranges it refused are marked as such).
pub(super) async fn ask(cl: &Cluster, src: PeerId, groups: &[u16], accept: Accept) -> bool {
    // Ranges kept over a cut or a rejoin need only the writes made since this node was last
    // in touch; the merge queued with the source finds any older difference.
    let kept = groups
        .iter()
        .all(|g| cl.kept[usize::from(*g)].load(Ordering::Acquire));
    let since = if kept { cl.kept_since() } else { 0 };
    if since > 0 {
        cl.queue_merges(&[src], groups);
    }
    let res = tokio::time::timeout(Duration::from_secs(5), async {
        let (mut send, mut recv) = cl.mesh.open_bi(src, proto::ALPN).await.ok()?;
        let hello = proto::encode_pull(accept.kind(), groups, since, cl.view().digest);
        mesh::frame::write(&mut send, &hello).await.ok()?;
        let _ = send.finish();
        let ans = mesh::frame::FrameDecoder::new(proto::MAX_REFUSAL)
            .read(&mut recv)
            .await
            .ok()??;
        proto::decode_refusal(&ans).ok()
    })
    .await
    .ok()
    .flatten();
    match res {
        Some((refused, empty)) => {
            cl.pull_accepted(src, groups, &refused);
            if !refused.is_empty() {
                cl.pull_failed(src, &refused, &empty);
            }
            true
        }
        None => false,
    }
}

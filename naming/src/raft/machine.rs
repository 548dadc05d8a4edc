//! The registrar group's state machine: the embedded ledger itself.
//!
//! Applying an entry is [`EmbeddedLedger::apply_sealed`]: deterministic (the rules are checked
//! at the record's own timestamp, never against a local clock), so every member that applies the
//! same entries in the same order holds the same hash-chained log. A snapshot is that log's
//! bytes; installing one appends the records this member lacks, verified like a follow stream.
//!
//! The applied log id is written after the ledger has the record. A crash between the two
//! re-applies the entry after restart, which [`Applied::Held`] makes harmless.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use redb::Database;
use serde::{Deserialize, Serialize};

use super::store::{APPLIED, io_error, read_meta, write_meta};
use super::{Entry, GroupConfig, Member, NodeId, Outcome};
use crate::embedded::{Applied, EmbeddedLedger};
use crate::ledger::LedgerError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Member>,
}

/// The state machine of one member. Clones share the ledger and the database.
#[derive(Clone)]
pub(super) struct Machine {
    ledger: EmbeddedLedger,
    db: Arc<Database>,
    state: Arc<parking_lot::Mutex<AppliedState>>,
}

impl Machine {
    pub(super) fn open(ledger: EmbeddedLedger, db: Arc<Database>) -> Result<Self, LedgerError> {
        let state = read_meta::<AppliedState>(&db, APPLIED)
            .map_err(|e| LedgerError::Storage(format!("raft state: {e}")))?
            .unwrap_or_default();
        Ok(Self {
            ledger,
            db,
            state: Arc::new(parking_lot::Mutex::new(state)),
        })
    }

    fn save(&self, state: AppliedState) -> Result<(), StorageError<NodeId>> {
        write_meta(&self.db, APPLIED, &state).map_err(StorageIOError::write_state_machine)?;
        *self.state.lock() = state;
        Ok(())
    }

    /// A snapshot of the ledger as applied now.
    fn snapshot(&self) -> Result<Snapshot<GroupConfig>, StorageError<NodeId>> {
        // The applied state is read before the log: the log may hold more records than the
        // id says (applied meanwhile), never fewer, and extra records are held harmlessly by
        // whoever installs it.
        let state = self.state.lock().clone();
        let log = self
            .ledger
            .read_log()
            .map_err(|e| StorageIOError::read_state_machine(io_error(e)))?;
        let id = match &state.last {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.ledger.len()),
            None => format!("none-{}", self.ledger.len()),
        };
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: state.last,
                last_membership: state.membership,
                snapshot_id: id,
            },
            snapshot: Box::new(Cursor::new(log)),
        })
    }
}

impl RaftSnapshotBuilder<GroupConfig> for Machine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<GroupConfig>, StorageError<NodeId>> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.snapshot())
            .await
            .map_err(|e| StorageIOError::read_state_machine(io_error(e)))?
    }
}

impl RaftStateMachine<GroupConfig> for Machine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), StorageError<NodeId>>
    {
        let s = self.state.lock().clone();
        Ok((s.last, s.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut state = self.state.lock().clone();
        let mut out = Vec::new();
        for entry in entries {
            state.last = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Outcome::Nothing,
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m);
                    Outcome::Nothing
                }
                EntryPayload::Normal(p) => match self.ledger.apply_sealed(p.record).await {
                    Ok(Applied::Appended { records, .. }) => Outcome::Appended { records },
                    Ok(Applied::Held { records }) => Outcome::Held { records },
                    // Storage failures stop this member (openraft shuts it down): the ledger
                    // file can no longer follow the log, and a restart reopens both.
                    Err(LedgerError::Storage(e)) => {
                        return Err(StorageIOError::apply(entry.log_id, io_error(e)).into());
                    }
                    // Refused by the rules or sealed on another tip: the same on every member.
                    Err(e) => Outcome::Refused {
                        error: super::WireError::from(&e),
                    },
                },
            };
            out.push(outcome);
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.save(state))
            .await
            .map_err(|e| StorageIOError::write_state_machine(io_error(e)))??;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let log = snapshot.into_inner();
        // Verified like a follow stream: chain, owner signatures, seals by the group as the
        // log itself sets it. A snapshot that does not continue this replica's log is refused.
        self.ledger
            .append_replicated(&log)
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), io_error(e)))?;
        let state = AppliedState {
            last: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.save(state))
            .await
            .map_err(|e| StorageIOError::write_state_machine(io_error(e)))??;
        tracing::info!(
            records = self.ledger.len(),
            "installed a registrar-group snapshot"
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<GroupConfig>>, StorageError<NodeId>> {
        // Built fresh from the ledger: a snapshot of a later point is as good, and nothing has
        // to be kept beside the log the ledger already keeps.
        let me = self.clone();
        let snap = tokio::task::spawn_blocking(move || me.snapshot())
            .await
            .map_err(|e| StorageIOError::read_state_machine(io_error(e)))??;
        Ok(snap.meta.last_log_id.is_some().then_some(snap))
    }
}

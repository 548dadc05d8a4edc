//! Durable state of one registrar-group member, in one redb file (`raft.redb`): the Raft log,
//! the vote, and how far the state machine (the embedded ledger) has applied it.
//!
//! Every append and vote is committed with redb's default durability (fsynced) before openraft
//! is told it is durable: a member acknowledges an entry to the leader only once it survives a
//! crash, which is what makes "a majority has it durably" true.

use std::fmt::Display;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Entry, GroupConfig, NodeId};

/// Log entries by index (JSON).
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("raft_log_v1");
/// Vote, committed id, last purged id, applied state (JSON).
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta_v1");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "purged";
/// The state machine's applied log id and membership.
pub(super) const APPLIED: &str = "applied";

pub(super) fn io_error(e: impl Display) -> AnyError {
    AnyError::error(e.to_string())
}

/// The Raft log and vote of one member. Clones share the database.
#[derive(Clone)]
pub(super) struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Opens (or creates) the store at `path`.
    pub(super) fn open(path: &Path) -> Result<Self, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The shared database (the state machine keeps its applied state in it too).
    pub(super) fn db(&self) -> Arc<Database> {
        self.db.clone()
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError<NodeId>> {
        read_meta(&self.db, key).map_err(|e| StorageIOError::read(e).into())
    }

    fn write_meta<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StorageError<NodeId>> {
        write_meta(&self.db, key, value).map_err(|e| StorageIOError::write(e).into())
    }
}

pub(super) fn read_meta<T: serde::de::DeserializeOwned>(
    db: &Database,
    key: &str,
) -> Result<Option<T>, AnyError> {
    let txn = db.begin_read().map_err(io_error)?;
    let table = txn.open_table(META).map_err(io_error)?;
    match table.get(key).map_err(io_error)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(io_error)?)),
        None => Ok(None),
    }
}

pub(super) fn write_meta<T: serde::Serialize>(
    db: &Database,
    key: &str,
    value: &T,
) -> Result<(), AnyError> {
    let bytes = serde_json::to_vec(value).map_err(io_error)?;
    let txn = db.begin_write().map_err(io_error)?;
    {
        let mut table = txn.open_table(META).map_err(io_error)?;
        table.insert(key, bytes.as_slice()).map_err(io_error)?;
    }
    txn.commit().map_err(io_error)
}

impl RaftLogReader<GroupConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let db = self.db.clone();
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        let read = move || -> Result<Vec<Entry>, AnyError> {
            let txn = db.begin_read().map_err(io_error)?;
            let table = txn.open_table(LOG).map_err(io_error)?;
            let mut out = Vec::new();
            for row in table.range(range).map_err(io_error)? {
                let (_, v) = row.map_err(io_error)?;
                out.push(serde_json::from_slice(v.value()).map_err(io_error)?);
            }
            Ok(out)
        };
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| StorageIOError::read_logs(io_error(e)))?
            .map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl RaftLogStorage<GroupConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<GroupConfig>, StorageError<NodeId>> {
        let purged: Option<LogId<NodeId>> = self.read_meta(PURGED)?;
        let last = {
            let txn = self
                .db
                .begin_read()
                .map_err(|e| StorageIOError::read_logs(io_error(e)))?;
            let table = txn
                .open_table(LOG)
                .map_err(|e| StorageIOError::read_logs(io_error(e)))?;
            match table
                .last()
                .map_err(|e| StorageIOError::read_logs(io_error(e)))?
            {
                Some((_, v)) => {
                    let entry: Entry = serde_json::from_slice(v.value())
                        .map_err(|e| StorageIOError::read_logs(io_error(e)))?;
                    Some(entry.log_id)
                }
                None => None,
            }
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let (db, vote) = (self.db.clone(), *vote);
        tokio::task::spawn_blocking(move || write_meta(&db, VOTE, &vote))
            .await
            .map_err(|e| StorageIOError::write_vote(io_error(e)))?
            .map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read_meta(VOTE)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.write_meta(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .read_meta::<Option<LogId<NodeId>>>(COMMITTED)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<GroupConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let rows = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, serde_json::to_vec(&e)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| StorageIOError::write_logs(io_error(e)))?;
        let db = self.db.clone();
        // One transaction, one fsync, for the whole batch; off the async workers.
        let write = move || -> Result<(), AnyError> {
            let txn = db.begin_write().map_err(io_error)?;
            {
                let mut table = txn.open_table(LOG).map_err(io_error)?;
                for (index, bytes) in &rows {
                    table.insert(*index, bytes.as_slice()).map_err(io_error)?;
                }
            }
            txn.commit().map_err(io_error)
        };
        let result = tokio::task::spawn_blocking(write)
            .await
            .map_err(|e| StorageIOError::write_logs(io_error(e)))?;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.remove_range(log_id.index..)
            .await
            .map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // The purged id first: a crash between the two leaves extra entries, never a gap.
        self.write_meta(PURGED, &log_id)?;
        self.remove_range(..=log_id.index)
            .await
            .map_err(|e| StorageIOError::write_logs(e).into())
    }
}

impl LogStore {
    async fn remove_range(
        &self,
        range: impl RangeBounds<u64> + Send + 'static,
    ) -> Result<(), AnyError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), AnyError> {
            let txn = db.begin_write().map_err(io_error)?;
            {
                let mut table = txn.open_table(LOG).map_err(io_error)?;
                table.retain_in(range, |_, _| false).map_err(io_error)?;
            }
            txn.commit().map_err(io_error)
        })
        .await
        .map_err(io_error)?
    }
}

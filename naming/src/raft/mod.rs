//! The registrar group: the embedded ledger replicated by Raft (`openraft`) among the members
//! that hold the `registrar` role, so that no single machine's death stops registration.
//!
//! # What is replicated
//!
//! The Raft log orders *sealed records*: the leader checks an owner-signed transaction against
//! its applied ledger (rules, tip, clock), seals it with its own key
//! ([`EmbeddedLedger::seal_signed`]) and proposes it; every member applies committed records in
//! order with [`EmbeddedLedger::apply_sealed`], which is deterministic, so all members hold the
//! same hash-chained log. The leader proposes one record at a time and only once its ledger has
//! applied everything in its Raft log, so each record is sealed on the tip it will be applied to.
//!
//! # Guarantees
//!
//! - A transaction is acknowledged once a majority of the group has its Raft entry fsynced and
//!   the leader has applied it (its ledger frame fdatasync'ed). An acknowledged registration
//!   survives the loss of any minority.
//! - A minority side of a partition cannot register anything: its proposals time out
//!   ([`SUBMIT_TIMEOUT`]) and are reported as unreachable (their outcome unknown: one may still
//!   commit if its leader regains a majority before it is replaced). The majority side elects a
//!   leader within the election bound and goes on.
//! - After a leader dies, a new one is elected within `election_max` plus one round of votes
//!   (3 s + the old leader's lease + a few RTTs with the defaults; measured 4-10 s, stated bound
//!   15 s); [`GroupSettings`] states the timings.
//! - Who may seal is written into the log itself (group records, see [`crate::embedded`]), so
//!   followers that pin only the founder's key verify every record.
//!
//! # Network
//!
//! The group does not talk to the network: [`GroupTransport`] carries [`GroupMessage`]s between
//! members, named by their Ed25519 keys. The node implements it over the mesh and hands
//! incoming messages to [`RegistrarGroup::handle`].

// openraft's storage and network traits return its (large) error types by value.
#![allow(clippy::result_large_err)]

mod machine;
mod router;
mod store;
#[cfg(feature = "test-utils")]
pub mod testing;

pub use router::{GroupRouter, ROUTE_TIMEOUT, SubmitPath};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError,
    RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{ChangeMembers, Raft, RaftMetrics, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::embedded::EmbeddedLedger;
use crate::ledger::{LedgerError, hex32};
use crate::name::Name;

/// Raft node ids: the first 8 bytes of BLAKE3 of the member's Ed25519 key (the key itself is
/// carried in [`Member`]; members are named by keys everywhere else).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The registrar group's Raft types.
    pub GroupConfig:
        D = Proposal,
        R = Outcome,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<GroupConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft log entry of the group.
pub type Entry = openraft::Entry<GroupConfig>;

/// A group member as Raft knows it: its Ed25519 key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's node key (its mesh identity).
    #[serde(with = "hex32")]
    pub key: [u8; 32],
}

/// The Raft node id of the member with `key`.
pub fn node_id(key: &[u8; 32]) -> NodeId {
    let h = blake3::hash(key);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_be_bytes(b)
}

/// A proposed log entry: one sealed ledger record body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The record, as [`EmbeddedLedger::seal_signed`] or [`EmbeddedLedger::seal_group`] made it.
    #[serde(with = "hex_bytes")]
    pub record: Vec<u8>,
}

/// What applying an entry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A Raft-internal entry (blank or membership).
    Nothing,
    /// The record was appended; the log holds `records` records.
    Appended {
        /// Records in the log.
        records: u64,
    },
    /// The log already held that record.
    Held {
        /// Records in the log.
        records: u64,
    },
    /// The record was refused by every member alike.
    Refused {
        /// Why.
        error: WireError,
    },
}

/// A [`LedgerError`] on the wire (between members, and between a follower and the group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Which error (`taken`, `not_owner`, `out_of_step`, `not_leader`, ...).
    pub kind: String,
    /// The name it is about, if any.
    pub name: Option<String>,
    /// Records the sender holds (`out_of_step`).
    pub records: Option<u64>,
    /// The leader's key, hex (`not_leader`).
    pub leader: Option<String>,
    /// The error as text.
    pub message: String,
}

impl From<&LedgerError> for WireError {
    fn from(e: &LedgerError) -> Self {
        let (kind, name, records, leader) = match e {
            LedgerError::Taken(n) => ("taken", Some(n.to_string()), None, None),
            LedgerError::Expired(n) => ("expired", Some(n.to_string()), None, None),
            LedgerError::NotRegistered(n) => ("not_registered", Some(n.to_string()), None, None),
            LedgerError::NotOwner(n) => ("not_owner", Some(n.to_string()), None, None),
            LedgerError::InvalidTerm(_) => ("invalid_term", None, None, None),
            LedgerError::InvalidZoneKey => ("invalid_zone_key", None, None, None),
            LedgerError::OutOfStep(n) => ("out_of_step", None, Some(*n), None),
            LedgerError::NotLeader { leader } => {
                ("not_leader", None, None, leader.map(hex::encode))
            }
            LedgerError::Unreachable(_) => ("unreachable", None, None, None),
            _ => ("refused", None, None, None),
        };
        Self {
            kind: kind.into(),
            name,
            records,
            leader,
            message: e.to_string(),
        }
    }
}

impl WireError {
    /// The error it stands for (unknown kinds become [`LedgerError::Refused`]).
    pub fn into_error(self) -> LedgerError {
        let name = self.name.as_deref().and_then(|n| Name::parse(n).ok());
        match (self.kind.as_str(), name, self.records) {
            ("taken", Some(n), _) => LedgerError::Taken(n),
            ("expired", Some(n), _) => LedgerError::Expired(n),
            ("not_registered", Some(n), _) => LedgerError::NotRegistered(n),
            ("not_owner", Some(n), _) => LedgerError::NotOwner(n),
            ("invalid_term", _, _) => LedgerError::InvalidTerm(self.message),
            ("invalid_zone_key", _, _) => LedgerError::InvalidZoneKey,
            ("out_of_step", _, Some(n)) => LedgerError::OutOfStep(n),
            ("not_leader", _, _) => LedgerError::NotLeader {
                leader: self
                    .leader
                    .and_then(|l| hex::decode(l).ok())
                    .and_then(|b| b.try_into().ok()),
            },
            ("unreachable", _, _) => LedgerError::Unreachable(self.message),
            _ => LedgerError::Refused(format!("registrar: {}", self.message)),
        }
    }
}

/// A message between members, or from a node to a member.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupMessage {
    /// The founder of the ledger the sender belongs to; a member refuses messages about
    /// another ledger (two groups that met by accident never mix).
    #[serde(with = "hex32")]
    pub founder: [u8; 32],
    /// What is asked.
    pub request: GroupRequest,
}

/// What a [`GroupMessage`] asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", content = "rpc", rename_all = "snake_case")]
pub enum GroupRequest {
    /// Raft: append entries (and heartbeats).
    Append(AppendEntriesRequest<GroupConfig>),
    /// Raft: request a vote.
    Vote(VoteRequest<NodeId>),
    /// Raft: one chunk of a snapshot.
    Snapshot(InstallSnapshotRequest<GroupConfig>),
    /// An owner-signed transaction for the leader to seal and propose.
    Submit {
        /// The transaction ([`EmbeddedLedger::owner_tx`]).
        #[serde(with = "hex_bytes")]
        tx: Vec<u8>,
    },
    /// Add the member with this key (for the leader).
    Add {
        /// The new member's key.
        #[serde(with = "hex32")]
        key: [u8; 32],
    },
    /// Remove the member with this key (for the leader).
    Remove {
        /// The member's key.
        #[serde(with = "hex32")]
        key: [u8; 32],
    },
}

/// The answer to a [`GroupRequest`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", content = "result", rename_all = "snake_case")]
pub enum GroupReply {
    /// To [`GroupRequest::Append`].
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// To [`GroupRequest::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// To [`GroupRequest::Snapshot`].
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// A transaction was appended; the leader's log holds this many records.
    Submitted(u64),
    /// The group after an add or remove.
    Changed(GroupStatus),
    /// The request failed.
    Failed(WireError),
}

/// Carries messages to members; implemented by the node over the mesh.
#[async_trait]
pub trait GroupTransport: Send + Sync + 'static {
    /// Sends `message` to the member whose key is `to` and returns its reply, or why none
    /// came within `timeout`.
    async fn call(
        &self,
        to: [u8; 32],
        message: GroupMessage,
        timeout: Duration,
    ) -> Result<GroupReply, String>;
}

/// Sends the owner-signed `tx` to `member` as a [`GroupRequest::Submit`] over `transport`, for
/// transports that reach members directly (tests and benchmarks). A node submits over its own
/// protocol instead (`proxima/ledger/1`), which nodes outside the group may use too.
pub async fn submit_over(
    transport: &dyn GroupTransport,
    founder: [u8; 32],
    member: [u8; 32],
    tx: &[u8],
) -> Result<u64, LedgerError> {
    let message = GroupMessage {
        founder,
        request: GroupRequest::Submit { tx: tx.to_vec() },
    };
    match transport.call(member, message, ROUTE_TIMEOUT).await {
        Ok(GroupReply::Submitted(n)) => Ok(n),
        Ok(GroupReply::Failed(e)) => Err(e.into_error()),
        Ok(other) => Err(LedgerError::Refused(format!("unexpected reply {other:?}"))),
        Err(e) => Err(LedgerError::Unreachable(e)),
    }
}

/// Timings of the group.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// How often the leader sends heartbeats.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in `[election_min, election_max]`
    /// starts an election.
    pub election_min: Duration,
    /// See `election_min`.
    pub election_max: Duration,
    /// A snapshot is built after this many log entries (older entries are then purged).
    pub snapshot_every: u64,
}

impl Default for GroupSettings {
    fn default() -> Self {
        // openraft gives each AppendEntries (and each leadership confirmation) the heartbeat
        // interval as its timeout, so the interval must exceed the RTT between members: at
        // 200 ms a group spread over a WAN (PlanetLab RTTs of 100-400 ms) never committed. A
        // heartbeat every 500 ms keeps members up to ~400 ms apart working; elections after
        // 1.5-3 s of silence (three to six missed heartbeats) replace a dead leader in about
        // 4-10 s (a follower refuses votes while its leader's lease lasts).
        Self {
            heartbeat: Duration::from_millis(500),
            election_min: Duration::from_millis(1500),
            election_max: Duration::from_millis(3000),
            snapshot_every: 1000,
        }
    }
}

/// How long a proposal may take to commit before the submitter is told the group is
/// unreachable (no majority, or an election under way).
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a leader may take to hear from a majority that it still leads.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an added member may take to catch up before it becomes a voter.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest snapshot a member takes (the ledger's log: at most 1 KiB a record, so a million
/// registrations).
pub const MAX_SNAPSHOT: u64 = 1 << 30;
/// Most voters a group may have.
pub const MAX_VOTERS: usize = 5;

/// The group as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// The ledger's founder key (hex).
    pub founder: String,
    /// This member's key (hex).
    pub me: String,
    /// The leader's key, if known.
    pub leader: Option<String>,
    /// Voting members' keys.
    pub voters: Vec<String>,
    /// Members catching up before they vote.
    pub learners: Vec<String>,
    /// Keys that may seal records, as the ledger says.
    pub sealers: Vec<String>,
    /// Raft term.
    pub term: u64,
    /// Raft state of this member (`Leader`, `Follower`, `Candidate`, `Learner`).
    pub state: String,
    /// Last applied Raft log index.
    pub applied: Option<u64>,
    /// Records in this member's ledger.
    pub records: u64,
}

/// One member of the registrar group (or a node that may become one).
pub struct RegistrarGroup {
    raft: Raft<GroupConfig>,
    transport: Arc<dyn GroupTransport>,
    ledger: EmbeddedLedger,
    me: [u8; 32],
    founder: [u8; 32],
    /// One proposal at a time: each is sealed on the tip left by the one before.
    propose: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RegistrarGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrarGroup")
            .field("me", &hex::encode(self.me))
            .field("founder", &hex::encode(self.founder))
            .finish()
    }
}

impl RegistrarGroup {
    /// Starts the Raft node of this member over `ledger` (a replica opened with this node's
    /// key as signer), keeping its log in `store` (`raft.redb`). It serves messages at once but
    /// belongs to no group until [`RegistrarGroup::found`] or a leader adds it.
    pub async fn start(
        ledger: EmbeddedLedger,
        me: [u8; 32],
        store: &Path,
        transport: Arc<dyn GroupTransport>,
        settings: GroupSettings,
    ) -> Result<Arc<Self>, LedgerError> {
        let storage = |e: &dyn std::fmt::Display| LedgerError::Storage(format!("raft: {e}"));
        let logs = store::LogStore::open(store).map_err(|e| storage(&e))?;
        let machine = machine::Machine::open(ledger.clone(), logs.db())?;
        let config = openraft::Config {
            cluster_name: "proxima-registrars".into(),
            heartbeat_interval: settings.heartbeat.as_millis() as u64,
            election_timeout_min: settings.election_min.as_millis() as u64,
            election_timeout_max: settings.election_max.as_millis() as u64,
            // A record is at most 1 KiB (2 in hex): 64 entries fit a message easily.
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            snapshot_max_chunk_size: 256 * 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| storage(&e))?;
        let founder = ledger.registrar_key();
        let network = Network {
            transport: transport.clone(),
            founder,
        };
        let raft = Raft::new(node_id(&me), Arc::new(config), network, logs, machine)
            .await
            .map_err(|e| storage(&e))?;
        Ok(Arc::new(Self {
            raft,
            transport,
            ledger,
            me,
            founder,
            propose: tokio::sync::Mutex::new(()),
        }))
    }

    /// Makes this node a group of one if it belongs to no group yet (the founder, or a node
    /// that kept the ledger alone before groups existed: its log becomes the group's first
    /// state). Records already in the ledger are put in a snapshot at once, so members added
    /// later receive them even though no Raft entry carries them.
    pub async fn found(&self) -> Result<(), LedgerError> {
        let failed = |e: &dyn std::fmt::Display| LedgerError::Storage(format!("raft: {e}"));
        if self.raft.is_initialized().await.map_err(|e| failed(&e))? {
            return Ok(());
        }
        let members = BTreeMap::from([(node_id(&self.me), Member { key: self.me })]);
        self.raft
            .initialize(members)
            .await
            .map_err(|e| failed(&e))?;
        // Alone, it elects itself at once; wait so the caller can propose right away.
        let me = node_id(&self.me);
        let mut metrics = self.raft.metrics();
        tokio::time::timeout(
            SUBMIT_TIMEOUT,
            metrics.wait_for(|m| m.current_leader == Some(me)),
        )
        .await
        .map_err(|_| failed(&"a group of one did not elect itself"))?
        .map_err(|e| failed(&e))?;
        if self.ledger.is_empty() {
            return Ok(());
        }
        let applied = metrics
            .wait_for(|m| m.last_applied.is_some())
            .await
            .map_err(|e| failed(&e))?
            .last_applied;
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| failed(&e))?;
        let index = applied.map_or(0, |l| l.index);
        metrics
            .wait_for(|m| m.snapshot.is_some_and(|s| s.index >= index))
            .await
            .map_err(|e| failed(&e))?;
        self.raft
            .trigger()
            .purge_log(index)
            .await
            .map_err(|e| failed(&e))?;
        tracing::info!(
            records = self.ledger.len(),
            "founded the registrar group with the existing ledger as its first state"
        );
        Ok(())
    }

    /// The ledger this member applies to.
    pub fn ledger(&self) -> &EmbeddedLedger {
        &self.ledger
    }

    /// This member's key.
    pub fn key(&self) -> [u8; 32] {
        self.me
    }

    /// True once this node belongs to a group (founded it or was added).
    pub fn is_member(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .get_node(&node_id(&self.me))
            .is_some()
    }

    /// The key of the member this one believes leads the group.
    pub fn leader(&self) -> Option<[u8; 32]> {
        leader_key(&self.raft.metrics().borrow())
    }

    /// Watches Raft's view (leader changes, applied index).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<RaftMetrics<NodeId, Member>> {
        self.raft.metrics()
    }

    /// The group as this member sees it.
    pub fn status(&self) -> GroupStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let keys = |ids: &mut dyn Iterator<Item = NodeId>| -> Vec<String> {
            ids.filter_map(|id| membership.get_node(&id).map(|n| hex::encode(n.key)))
                .collect()
        };
        GroupStatus {
            founder: hex::encode(self.founder),
            me: hex::encode(self.me),
            leader: leader_key(&m).map(hex::encode),
            voters: keys(&mut membership.voter_ids()),
            learners: keys(&mut membership.learner_ids()),
            sealers: self.ledger.group().iter().map(hex::encode).collect(),
            term: m.current_term,
            state: format!("{:?}", m.state),
            applied: m.last_applied.map(|l| l.index),
            records: self.ledger.len(),
        }
    }

    /// Serves one message from the member (or node) with key `from` (the node's transport has
    /// checked it holds the `registrar` role). Raft messages must come from the node they name
    /// as sender, so one certified node cannot speak for another; votes are taken only from
    /// members of this node's group (a removed member, or a certified node outside the group,
    /// cannot start elections); additions and removals only from voters.
    pub async fn handle(&self, from: [u8; 32], message: GroupMessage) -> GroupReply {
        if message.founder != self.founder {
            return GroupReply::Failed(WireError::from(&LedgerError::Refused(format!(
                "this member keeps the ledger founded by {}, not {}",
                hex::encode(self.founder),
                hex::encode(message.founder)
            ))));
        }
        let impostor = |claimed: Option<NodeId>| claimed != Some(node_id(&from));
        let refused = || {
            GroupReply::Failed(WireError::from(&LedgerError::Refused(
                "a Raft message must come from the member it names".into(),
            )))
        };
        match message.request {
            GroupRequest::Append(rpc) => {
                if impostor(rpc.vote.leader_id().voted_for()) {
                    return refused();
                }
                GroupReply::Append(self.raft.append_entries(rpc).await)
            }
            GroupRequest::Vote(rpc) => {
                if impostor(rpc.vote.leader_id().voted_for()) {
                    return refused();
                }
                if !self.knows(&from) {
                    return GroupReply::Failed(WireError::from(&LedgerError::Refused(
                        "votes are taken only from members of the group".into(),
                    )));
                }
                GroupReply::Vote(self.raft.vote(rpc).await)
            }
            GroupRequest::Snapshot(rpc) => {
                if impostor(rpc.vote.leader_id().voted_for()) {
                    return refused();
                }
                // Chunks are gathered in memory before they are verified: bound the whole.
                let end = rpc.offset.saturating_add(rpc.data.len() as u64);
                if end > MAX_SNAPSHOT {
                    return GroupReply::Failed(WireError::from(&LedgerError::Refused(format!(
                        "a snapshot of more than {MAX_SNAPSHOT} bytes"
                    ))));
                }
                GroupReply::Snapshot(self.raft.install_snapshot(rpc).await)
            }
            GroupRequest::Submit { tx } => match self.submit(&tx).await {
                Ok(records) => GroupReply::Submitted(records),
                Err(e) => GroupReply::Failed(WireError::from(&e)),
            },
            GroupRequest::Add { .. } | GroupRequest::Remove { .. } if !self.votes(&from) => {
                GroupReply::Failed(WireError::from(&LedgerError::Refused(
                    "only a voting member may change the group (run the command on one)".into(),
                )))
            }
            GroupRequest::Add { key } => match self.add_here(key).await {
                Ok(s) => GroupReply::Changed(s),
                Err(e) => GroupReply::Failed(WireError::from(&e)),
            },
            GroupRequest::Remove { key } => match self.remove_here(key).await {
                Ok(s) => GroupReply::Changed(s),
                Err(e) => GroupReply::Failed(WireError::from(&e)),
            },
        }
    }

    /// Leader side of a transaction: seals the owner-signed `tx` on the applied tip and
    /// proposes it; returns the number of records once a majority has it and it is applied
    /// here. [`LedgerError::NotLeader`] on a member that does not lead.
    pub async fn submit(&self, tx: &[u8]) -> Result<u64, LedgerError> {
        let _turn = self.propose.lock().await;
        self.caught_up_leader().await?;
        let record = self.ledger.seal_signed(tx).await?;
        self.write(record).await
    }

    /// Adds the member with `key`, through the leader: the leader names it in a group record
    /// (so followers accept records it seals), lets it catch up as a learner, then makes it a
    /// voter. Returns the group as the leader sees it after the change.
    pub async fn add_member(&self, key: [u8; 32]) -> Result<GroupStatus, LedgerError> {
        self.change(GroupRequest::Add { key }).await
    }

    /// Removes the member with `key`, through the leader (which cannot remove itself: stop
    /// it, and remove it through the next leader).
    pub async fn remove_member(&self, key: [u8; 32]) -> Result<GroupStatus, LedgerError> {
        self.change(GroupRequest::Remove { key }).await
    }

    async fn change(&self, request: GroupRequest) -> Result<GroupStatus, LedgerError> {
        let leader = self.leader().ok_or_else(|| {
            LedgerError::Unreachable("the registrar group has no leader right now".into())
        })?;
        if leader == self.me {
            return match request {
                GroupRequest::Add { key } => self.add_here(key).await,
                GroupRequest::Remove { key } => self.remove_here(key).await,
                _ => Err(LedgerError::Refused("not a change of the group".into())),
            };
        }
        let message = GroupMessage {
            founder: self.founder,
            request,
        };
        match self
            .transport
            .call(leader, message, CATCH_UP_TIMEOUT + SUBMIT_TIMEOUT * 2)
            .await
        {
            Ok(GroupReply::Changed(s)) => Ok(s),
            Ok(GroupReply::Failed(e)) => Err(e.into_error()),
            Ok(other) => Err(LedgerError::Refused(format!("unexpected reply {other:?}"))),
            Err(e) => Err(LedgerError::Unreachable(format!(
                "the group's leader {}: {e}",
                hex::encode(leader)
            ))),
        }
    }

    async fn add_here(&self, key: [u8; 32]) -> Result<GroupStatus, LedgerError> {
        let _turn = self.propose.lock().await;
        self.caught_up_leader().await?;
        let id = node_id(&key);
        let voters = self.voters();
        if voters.contains(&id) {
            return Ok(self.status());
        }
        if voters.len() >= MAX_VOTERS {
            return Err(LedgerError::Refused(format!(
                "the registrar group already has {MAX_VOTERS} members"
            )));
        }
        let mut sealers = self.ledger.group();
        if !sealers.contains(&key) {
            sealers.push(key);
            let record = self.ledger.seal_group(&sealers)?;
            self.write(record).await?;
        }
        let added = tokio::time::timeout(
            CATCH_UP_TIMEOUT,
            self.raft.add_learner(id, Member { key }, true),
        )
        .await
        .map_err(|_| {
            LedgerError::Unreachable(format!(
                "{} did not catch up within {} s; it stays a learner",
                hex::encode(key),
                CATCH_UP_TIMEOUT.as_secs()
            ))
        })?;
        added.map_err(raft_error)?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(raft_error)?;
        tracing::info!(member = %hex::encode(key), "registrar added to the group");
        Ok(self.status())
    }

    async fn remove_here(&self, key: [u8; 32]) -> Result<GroupStatus, LedgerError> {
        let _turn = self.propose.lock().await;
        self.caught_up_leader().await?;
        if key == self.me {
            return Err(LedgerError::Refused(
                "the leader cannot remove itself; stop it, and remove it through the next leader"
                    .into(),
            ));
        }
        let id = node_id(&key);
        let voters = self.voters();
        if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(LedgerError::Refused(
                    "the last member of the group cannot be removed".into(),
                ));
            }
            self.raft
                .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                .await
                .map_err(raft_error)?;
        } else if self.learners().contains(&id) {
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await
                .map_err(raft_error)?;
        }
        let sealers: Vec<[u8; 32]> = self
            .ledger
            .group()
            .into_iter()
            .filter(|k| *k != key)
            .collect();
        if sealers.len() != self.ledger.group().len() {
            self.caught_up_leader().await?;
            let record = self.ledger.seal_group(&sealers)?;
            self.write(record).await?;
        }
        tracing::info!(member = %hex::encode(key), "registrar removed from the group");
        Ok(self.status())
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "registrar group did not stop cleanly");
        }
    }

    /// True if `key` is a voter or learner of this node's group, or this node belongs to no
    /// group yet (a node being added hears from the leader before it knows the membership).
    fn knows(&self, key: &[u8; 32]) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        membership.nodes().next().is_none() || membership.get_node(&node_id(key)).is_some()
    }

    /// True if `key` is a voter of this node's group.
    fn votes(&self, key: &[u8; 32]) -> bool {
        self.voters().contains(&node_id(key))
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    fn learners(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .learner_ids()
            .collect()
    }

    /// Succeeds on the leader once a majority confirmed it still leads and its ledger has
    /// applied its whole Raft log (entries of earlier leaders included), so the next record is
    /// sealed on the tip it will follow. A member that only believes it leads (restarted as the
    /// leader of an old term, or cut off from its majority) answers "not the leader" within
    /// [`CONFIRM_TIMEOUT`] instead of sealing on a stale tip.
    async fn caught_up_leader(&self) -> Result<(), LedgerError> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(node_id(&self.me)) {
            return Err(LedgerError::NotLeader {
                leader: leader_key(&m),
            });
        }
        match tokio::time::timeout(CONFIRM_TIMEOUT, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                return Err(LedgerError::NotLeader {
                    leader: f.leader_node.map(|n| n.key),
                });
            }
            Ok(Err(e)) => {
                return Err(LedgerError::Unreachable(format!("registrar group: {e}")));
            }
            Err(_) => return Err(LedgerError::NotLeader { leader: None }),
        }
        let m = self.raft.metrics().borrow().clone();
        let Some(last) = m.last_log_index else {
            return Ok(());
        };
        self.raft
            .wait(Some(SUBMIT_TIMEOUT))
            .applied_index_at_least(Some(last), "seal on the applied tip")
            .await
            .map(|_| ())
            .map_err(|e| LedgerError::Unreachable(format!("registrar group: {e}")))
    }

    /// Proposes one sealed record and waits until it is applied here.
    async fn write(&self, record: Vec<u8>) -> Result<u64, LedgerError> {
        let written = tokio::time::timeout(
            SUBMIT_TIMEOUT,
            self.raft.client_write(Proposal { record }),
        )
        .await
        .map_err(|_| {
            LedgerError::Unreachable(format!(
                "the registrar group did not commit within {} s (no majority reachable, or an \
                 election under way); the outcome is unknown",
                SUBMIT_TIMEOUT.as_secs()
            ))
        })?;
        match written.map_err(raft_error)?.data {
            Outcome::Appended { records } | Outcome::Held { records } => Ok(records),
            Outcome::Refused { error } => Err(error.into_error()),
            Outcome::Nothing => Err(LedgerError::Storage("a proposal applied as nothing".into())),
        }
    }
}

fn leader_key(m: &RaftMetrics<NodeId, Member>) -> Option<[u8; 32]> {
    let id = m.current_leader?;
    m.membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.key)
}

fn raft_error(e: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> LedgerError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => LedgerError::NotLeader {
            leader: f.leader_node.map(|n| n.key),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            LedgerError::Refused(format!("registrar group: {c}"))
        }
        RaftError::Fatal(f) => LedgerError::Storage(format!("registrar group stopped: {f}")),
    }
}

/// openraft's network over a [`GroupTransport`].
struct Network {
    transport: Arc<dyn GroupTransport>,
    founder: [u8; 32],
}

impl RaftNetworkFactory<GroupConfig> for Network {
    type Network = Client;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Client {
        Client {
            transport: self.transport.clone(),
            founder: self.founder,
            target,
            to: node.key,
        }
    }
}

/// The client side of one member's link to another.
struct Client {
    transport: Arc<dyn GroupTransport>,
    founder: [u8; 32],
    target: NodeId,
    to: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl Client {
    async fn call<E: std::error::Error>(
        &self,
        request: GroupRequest,
        option: &RPCOption,
    ) -> Result<GroupReply, RPCError<NodeId, Member, E>> {
        let message = GroupMessage {
            founder: self.founder,
            request,
        };
        match self
            .transport
            .call(self.to, message, option.hard_ttl())
            .await
        {
            Ok(GroupReply::Failed(e)) => Err(RPCError::Network(NetworkError::new(
                &TransportError(e.message),
            ))),
            Ok(reply) => Ok(reply),
            Err(e) => Err(RPCError::Unreachable(Unreachable::new(&TransportError(e)))),
        }
    }

    fn unexpected<E: std::error::Error>(reply: &GroupReply) -> RPCError<NodeId, Member, E> {
        RPCError::Network(NetworkError::new(&TransportError(format!(
            "unexpected reply {reply:?}"
        ))))
    }
}

impl RaftNetwork<GroupConfig> for Client {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<GroupConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self.call(GroupRequest::Append(rpc), &option).await? {
            GroupReply::Append(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<GroupConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(GroupRequest::Snapshot(rpc), &option).await? {
            GroupReply::Snapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self.call(GroupRequest::Vote(rpc), &option).await? {
            GroupReply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(&other)),
        }
    }
}

/// Bytes as hex in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

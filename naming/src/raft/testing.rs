//! An in-process transport for the registrar group, for tests and benchmarks: members are
//! joined by calls, every message and reply is round-tripped through its JSON encoding (what the
//! mesh transport sends), and a member can be taken down (it neither sends nor receives).
//! Everything else is real: openraft, the redb log, the embedded ledger.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;

use futures::stream::BoxStream;

use super::{
    GroupMessage, GroupReply, GroupRouter, GroupSettings, GroupTransport, RegistrarGroup,
    SubmitPath, submit_over,
};
use crate::embedded::{EmbeddedConfig, EmbeddedLedger};
use crate::follow::LedgerNetwork;
use crate::ledger::{Clock, LedgerError};

/// Members by key; a member in the down set neither sends nor receives.
#[derive(Default)]
pub struct LocalNet {
    members: parking_lot::Mutex<HashMap<[u8; 32], Arc<RegistrarGroup>>>,
    down: parking_lot::Mutex<HashSet<[u8; 32]>>,
    silent: parking_lot::Mutex<HashSet<[u8; 32]>>,
    submits: parking_lot::Mutex<HashMap<[u8; 32], usize>>,
}

/// How long a call to a silent member waits before it fails (at most the call's own timeout).
pub const SILENT_WAIT: Duration = Duration::from_secs(2);

impl LocalNet {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Takes the member with `key` down (or up again).
    pub fn set_down(&self, key: [u8; 32], down: bool) {
        if down {
            self.down.lock().insert(key);
        } else {
            self.down.lock().remove(&key);
        }
    }

    /// Makes the member with `key` silent (or not): calls to it wait [`SILENT_WAIT`] and fail,
    /// as calls to a host that died without closing its connections wait for their timeout.
    pub fn set_silent(&self, key: [u8; 32], silent: bool) {
        if silent {
            self.silent.lock().insert(key);
        } else {
            self.silent.lock().remove(&key);
        }
    }

    /// How many transactions were sent to the member with `key` so far.
    pub fn submits_to(&self, key: [u8; 32]) -> usize {
        self.submits.lock().get(&key).copied().unwrap_or(0)
    }

    /// Stops the member with `key` and forgets it.
    pub async fn stop(&self, key: [u8; 32]) {
        self.set_down(key, true);
        let group = self.members.lock().remove(&key);
        if let Some(g) = group {
            g.shutdown().await;
        }
    }
}

/// One member's end of a [`LocalNet`].
#[derive(Clone)]
pub struct Link {
    net: Arc<LocalNet>,
    me: [u8; 32],
    founder: [u8; 32],
}

#[async_trait]
impl GroupTransport for Link {
    async fn call(
        &self,
        to: [u8; 32],
        message: GroupMessage,
        timeout: Duration,
    ) -> Result<GroupReply, String> {
        if matches!(message.request, super::GroupRequest::Submit { .. }) {
            *self.net.submits.lock().entry(to).or_default() += 1;
        }
        let silent = {
            let silent = self.net.silent.lock();
            silent.contains(&self.me) || silent.contains(&to)
        };
        if silent {
            tokio::time::sleep(timeout.min(SILENT_WAIT)).await;
            return Err("no reply".into());
        }
        {
            let down = self.net.down.lock();
            if down.contains(&self.me) || down.contains(&to) {
                return Err("member down".into());
            }
        }
        let group = self
            .net
            .members
            .lock()
            .get(&to)
            .cloned()
            .ok_or("unknown member")?;
        let json = |e: serde_json::Error| e.to_string();
        let message: GroupMessage =
            serde_json::from_slice(&serde_json::to_vec(&message).map_err(json)?).map_err(json)?;
        let reply = tokio::time::timeout(timeout, group.handle(self.me, message))
            .await
            .map_err(|_| "timed out".to_string())?;
        serde_json::from_slice(&serde_json::to_vec(&reply).map_err(json)?).map_err(json)
    }
}

#[async_trait]
impl SubmitPath for Link {
    async fn submit_to(&self, member: [u8; 32], tx: &[u8]) -> Result<u64, LedgerError> {
        submit_over(self, self.founder, member, tx).await
    }
}

/// A node's way to the group through a router only, with no follow stream: for a ledger on a
/// member, whose copy its member applies itself.
pub struct Routed<P>(pub GroupRouter<P>);

#[async_trait]
impl<P: SubmitPath> LedgerNetwork for Routed<P> {
    async fn submit(&self, tx: &[u8]) -> Result<u64, LedgerError> {
        self.0.submit(tx).await
    }
    async fn follow(
        &self,
        _from: u64,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, LedgerError>>, LedgerError> {
        Ok(Box::pin(futures::stream::pending()))
    }
    fn registrar(&self) -> String {
        "the registrar group".into()
    }
    fn registrar_admin(&self) -> String {
        "unknown".into()
    }
}

/// One member started on a [`LocalNet`]: its ledger, its group member and a router.
pub struct LocalMember {
    /// Its copy of the log.
    pub ledger: EmbeddedLedger,
    /// Its group member.
    pub group: Arc<RegistrarGroup>,
    /// Takes its transactions to the leader.
    pub router: GroupRouter<Link>,
    /// Its end of the network.
    pub link: Link,
}

/// Starts the member keyed `signer` in `dir` (its ledger in `dir/ledger`, its Raft log in
/// `dir/raft.redb`) on `net`, for the ledger founded by `founder`.
pub async fn start_member(
    net: &Arc<LocalNet>,
    dir: &Path,
    founder: [u8; 32],
    signer: SigningKey,
    config: EmbeddedConfig,
    clock: Arc<dyn Clock>,
    settings: GroupSettings,
) -> Result<LocalMember, LedgerError> {
    let me = signer.verifying_key().to_bytes();
    let (ledger, _) =
        EmbeddedLedger::open_replica(&dir.join("ledger"), founder, Some(signer), config, clock)?;
    let link = Link {
        net: net.clone(),
        me,
        founder,
    };
    let group = RegistrarGroup::start(
        ledger.clone(),
        me,
        &dir.join("raft.redb"),
        Arc::new(link.clone()),
        settings,
    )
    .await?;
    net.members.lock().insert(me, group.clone());
    net.set_down(me, false);
    let router = GroupRouter::new(ledger.clone(), Some(group.clone()), link.clone());
    Ok(LocalMember {
        ledger,
        group,
        router,
        link,
    })
}

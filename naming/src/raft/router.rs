//! Getting a transaction to the group's leader from any node, member or not.
//!
//! The router tries, in order: the member that answered last time, this node's own group
//! member (if it leads), then every key the ledger names as a sealer. A member that does not
//! lead answers [`LedgerError::NotLeader`] with the leader it knows, and the router goes there
//! next. It gives up after [`ROUTE_TIMEOUT`], which covers an election (4-10 s) and one
//! proposal's own timeout.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::RegistrarGroup;
use crate::embedded::EmbeddedLedger;
use crate::ledger::LedgerError;

/// How long a transaction may look for a leader and wait for its commit.
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(12);
/// Pause after every member was tried without finding a leader (an election under way).
const RETRY_PAUSE: Duration = Duration::from_millis(150);
/// A member whose ask failed after this long is not asked again in the same call.
const SLOW_FAILURE: Duration = Duration::from_secs(1);

/// How a transaction reaches another member (over the mesh, or in tests in-process).
#[async_trait]
pub trait SubmitPath: Send + Sync + 'static {
    /// Sends the owner-signed `tx` to the member with key `member`; returns the number of
    /// records its log holds once the transaction is applied there.
    async fn submit_to(&self, member: [u8; 32], tx: &[u8]) -> Result<u64, LedgerError>;
}

/// Routes transactions to the leader of the group whose log `ledger` replicates.
pub struct GroupRouter<P> {
    ledger: EmbeddedLedger,
    local: Option<Arc<RegistrarGroup>>,
    path: P,
    /// The member that last took a transaction (most likely still the leader).
    last: parking_lot::Mutex<Option<[u8; 32]>>,
}

impl<P: SubmitPath> GroupRouter<P> {
    /// A router for a node whose replica is `ledger`, with its own group member `local` (if
    /// it runs one), reaching other members through `path`.
    pub fn new(ledger: EmbeddedLedger, local: Option<Arc<RegistrarGroup>>, path: P) -> Self {
        Self {
            ledger,
            local,
            path,
            last: parking_lot::Mutex::new(None),
        }
    }

    /// The member that took the last transaction, if any.
    pub fn last_leader(&self) -> Option<[u8; 32]> {
        *self.last.lock()
    }

    /// Sends `tx` to the leader; see the module doc for the order. Errors other than
    /// "not the leader" and "unreachable" are the leader's answer and returned at once.
    pub async fn submit(&self, tx: &[u8]) -> Result<u64, LedgerError> {
        let deadline = tokio::time::Instant::now() + ROUTE_TIMEOUT;
        let mut next: Option<[u8; 32]> = *self.last.lock();
        let mut last_error = None;
        // Members that did not answer during this call after a wait ([`SLOW_FAILURE`]) are not
        // asked again in it unless no other member is left: each ask of a dead member can cost
        // a whole exchange timeout, and the followers keep naming their old leader until a new
        // one is elected (seconds after it died). Asked again at every pass, the dead leader
        // cost two timeouts, and registration came back 16.6 s after its death instead of right
        // after the election (the churn scenario, 3 reduced runs in 12). A member that failed
        // at once (not yet seen alive after a restart) costs nothing to ask again, and may be
        // elected during the call.
        let mut unreachable: Vec<[u8; 32]> = Vec::new();
        loop {
            let mut candidates: Vec<[u8; 32]> = Vec::new();
            if let Some(group) = &self.local
                && let Some(leader) = group.leader()
            {
                candidates.push(leader);
            }
            candidates.extend(self.ledger.group());
            if let Some(first) = next.take() {
                candidates.insert(0, first);
            }
            if candidates.iter().all(|c| unreachable.contains(c)) {
                unreachable.clear();
            }
            let mut tried: Vec<[u8; 32]> = unreachable.clone();
            let mut i = 0;
            while i < candidates.len() {
                let member = candidates[i];
                i += 1;
                if tried.contains(&member) {
                    continue;
                }
                tried.push(member);
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                let asked = tokio::time::Instant::now();
                match self.submit_once(member, tx).await {
                    Ok(records) => {
                        *self.last.lock() = Some(member);
                        return Ok(records);
                    }
                    Err(LedgerError::NotLeader { leader }) => {
                        if let Some(l) = leader
                            && !tried.contains(&l)
                        {
                            // Ask the leader it named next.
                            candidates.insert(i, l);
                        }
                        last_error = Some(LedgerError::NotLeader { leader });
                    }
                    Err(e @ LedgerError::Unreachable(_)) => {
                        // Do not start the next transaction at a member that did not answer.
                        let mut last = self.last.lock();
                        if *last == Some(member) {
                            *last = None;
                        }
                        if asked.elapsed() >= SLOW_FAILURE {
                            unreachable.push(member);
                        }
                        last_error = Some(e);
                    }
                    // A member behind this node's own copy (which holds only committed records)
                    // cannot be the leader it believes it is: try the others.
                    Err(LedgerError::OutOfStep(n)) if n < self.ledger.len() => {
                        last_error = Some(LedgerError::OutOfStep(n));
                    }
                    Err(e) => return Err(e),
                }
            }
            if tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
                return Err(LedgerError::Unreachable(format!(
                    "no leader of the registrar group took the transaction within {} s{}",
                    ROUTE_TIMEOUT.as_secs(),
                    last_error
                        .map(|e| format!(" (last: {e})"))
                        .unwrap_or_default()
                )));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn submit_once(&self, member: [u8; 32], tx: &[u8]) -> Result<u64, LedgerError> {
        match &self.local {
            Some(group) if group.key() == member => group.submit(tx).await,
            _ => self.path.submit_to(member, tx).await,
        }
    }
}

//! One client as the commands see it: who it authenticated as, its transaction, its
//! subscriptions, its routing flags. No I/O here: a socket connection (`conn`), a peer's
//! proxied session and a replication applier each own one.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use hashbrown::HashSet;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cmd::BlockRequest;
use crate::pubsub::{PubMsg, QUEUE, Subscriber};
use crate::shared::{ClientInfo, Shared};
use crate::value::Bytes;

/// Who a client authenticated as (`AUTH`, `HELLO ... AUTH`). A proxied session carries it
/// to the node that runs the client's commands, which checks it against its own ACL users
/// (`default` has `requirepass`) and runs the session as that user: the client is who it is
/// on every node it reaches.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user (`default`: the only one).
    pub user: Vec<u8>,
    /// The password.
    pub pass: Vec<u8>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &String::from_utf8_lossy(&self.user))
            .finish_non_exhaustive()
    }
}

/// What a client told the server about routing with commands (`READONLY`, `ASKING`,
/// `CLUSTER SLOTS`); the placement reads it.
#[derive(Debug, Default, Clone, Copy)]
pub struct RoutingFlags {
    /// The client asked for the map (or sent ASKING): it gets MOVED, not proxying.
    pub aware: bool,
    /// `READONLY`: replicas may answer reads.
    pub readonly: bool,
    /// `ASKING` before this command.
    pub asking: bool,
}

/// The placement's own per-client state (forwards of the batch, replication waits, proxy
/// sessions), opaque to every layer but the placement that made it.
#[derive(Default)]
pub struct PlacementState(Option<Box<dyn Any + Send>>);

impl PlacementState {
    /// The state, made with `T::default()` on first use.
    pub fn get<T: Default + Send + 'static>(&mut self) -> &mut T {
        let slot = self.0.get_or_insert_with(|| Box::new(T::default()));
        if !slot.is::<T>() {
            *slot = Box::new(T::default());
        }
        slot.downcast_mut::<T>()
            .expect("the slot was just made a T")
    }

    /// The state if one of type `T` was made.
    pub fn peek<T: 'static>(&self) -> Option<&T> {
        self.0.as_ref()?.downcast_ref::<T>()
    }
}

impl std::fmt::Debug for PlacementState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PlacementState(..)"
        } else {
            "PlacementState(None)"
        })
    }
}

/// Per-client state the commands can change.
#[derive(Debug)]
pub struct ConnState {
    /// Client id.
    pub id: u64,
    /// What `CLIENT LIST` shows.
    pub info: Arc<ClientInfo>,
    /// Whether AUTH succeeded (or no password is set).
    pub authenticated: bool,
    /// The credential of the last successful `AUTH`/`HELLO ... AUTH` (for a proxied session:
    /// the one the forwarding node passed on), carried with the sessions this client opens to
    /// peers.
    pub credential: Option<Credential>,
    /// Queued commands inside MULTI.
    pub multi: Option<Vec<Vec<Vec<u8>>>>,
    /// A command failed to queue: EXEC will abort.
    pub multi_failed: bool,
    /// Keys under WATCH.
    pub watched: Vec<Bytes>,
    /// Subscribed channels.
    pub channels: HashSet<Bytes>,
    /// Subscribed patterns.
    pub patterns: HashSet<Bytes>,
    /// Subscribed shard channels (`SSUBSCRIBE`).
    pub shard_channels: HashSet<Bytes>,
    /// This client's pub/sub queue.
    pub sub: Subscriber,
    /// Close after writing the replies.
    pub close: bool,
    /// Close without writing anything (the client looks like an HTTP client).
    pub hangup: bool,
    /// A blocking command waiting for data.
    pub block: Option<BlockRequest>,
    /// The waiter registered with the keyspace while blocked.
    pub waiter: Arc<Notify>,
    /// While a woken blocking command runs again: its original deadline, so that losing the
    /// race for an element does not extend the wait.
    pub retry_deadline: Option<u64>,
    /// Routing flags set by the client's commands.
    pub routing: RoutingFlags,
    /// The placement's per-client state.
    pub placement: PlacementState,
    /// `CLIENT REPLY OFF|SKIP` and `MONITOR` state.
    pub replies: ReplyMode,
    /// Client-side caching mode (`CLIENT TRACKING ON`).
    pub tracking: Option<crate::tracking::ClientTracking>,
}

/// Whether replies are sent (`CLIENT REPLY`) and the feed of a `MONITOR` client.
#[derive(Debug, Default)]
pub struct ReplyMode {
    /// `CLIENT REPLY OFF`.
    pub off: bool,
    /// The reply of the command running now is dropped (the one after `CLIENT REPLY SKIP`).
    pub skip: bool,
    /// `CLIENT REPLY SKIP` ran: the next command's reply is dropped.
    pub skip_next: bool,
    /// The commands a `MONITOR` client receives, as ready RESP lines.
    pub monitor: Option<mpsc::Receiver<Bytes>>,
}

impl ConnState {
    /// A client with a fresh id, registered nowhere; `kill` disconnects it. Authenticated iff
    /// the server needs no password. Returns its pub/sub queue too.
    pub fn new(
        shared: &Shared,
        addr: SocketAddr,
        laddr: SocketAddr,
        kill: CancellationToken,
    ) -> (Self, mpsc::Receiver<PubMsg>) {
        let id = shared.next_client_id();
        let (tx, rx) = mpsc::channel(QUEUE);
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            created: std::time::Instant::now(),
            name: Default::default(),
            lib: Default::default(),
            kill: kill.clone(),
            subs: Default::default(),
            resp3: Default::default(),
            activity: Default::default(),
            user: parking_lot::Mutex::new(b"default".to_vec()),
            queue: Subscriber {
                id,
                tx: tx.clone(),
                kill: kill.clone(),
            },
        });
        let waiter = info.activity.waiter.clone();
        let conn = Self {
            id,
            info,
            authenticated: !shared.needs_auth(),
            credential: None,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            sub: Subscriber { id, tx, kill },
            close: false,
            hangup: false,
            block: None,
            waiter,
            retry_deadline: None,
            routing: RoutingFlags::default(),
            placement: PlacementState::default(),
            replies: ReplyMode::default(),
            tracking: None,
        };
        (conn, rx)
    }

    /// A client without a socket (a peer's proxied session, a replication applier), trusted
    /// as the server itself.
    pub fn detached(shared: &Shared) -> (Self, mpsc::Receiver<PubMsg>) {
        let (mut conn, rx) = Self::new(shared, shared.addr, shared.addr, CancellationToken::new());
        conn.authenticated = true;
        (conn, rx)
    }

    /// A detached client for commands run on a client's behalf (a peer's proxied session, a
    /// fallback): authenticated only if this node needs no password or `credential` passes
    /// this node's ACL users, as the client's own connection here would be.
    pub fn detached_as(
        shared: &Shared,
        credential: Option<Credential>,
    ) -> (Self, mpsc::Receiver<PubMsg>) {
        let (mut conn, rx) = Self::detached(shared);
        conn.authenticated = !shared.needs_auth()
            || credential
                .as_ref()
                .is_some_and(|c| shared.password_ok(&c.user, &c.pass));
        // The session runs as the client's ACL user here too.
        if conn.authenticated
            && let Some(c) = &credential
        {
            *conn.info.user.lock() = c.user.clone();
        }
        conn.credential = credential;
        (conn, rx)
    }

    /// Subscriptions (channels + patterns + shard channels).
    pub fn sub_count(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// Releases what the client holds (its registration, subscriptions, watches, a blocked
    /// wait).
    pub fn release(&mut self, shared: &Shared) {
        shared.clients.lock().remove(&self.id);
        if self.replies.monitor.take().is_some() {
            shared.intro.remove_monitor(self.id);
        }
        if self.tracking.take().is_some() {
            crate::tracking::forget(shared, self.id);
        }
        if self.sub_count() > 0 {
            let mut ps = shared.pubsub.lock();
            for c in self.channels.drain() {
                ps.unsubscribe(false, &c, self.id);
            }
            for p in self.patterns.drain() {
                ps.unsubscribe(true, &p, self.id);
            }
            for c in self.shard_channels.drain() {
                ps.unsubscribe_shard(&c, self.id);
            }
        }
        if !self.watched.is_empty() || self.block.is_some() {
            let mut db = shared.db.lock();
            db.unwatch(self.id, &self.watched);
            if let Some(b) = self.block.take() {
                // It may have been woken and not run yet: its turn goes to the next in line.
                db.pass_on(&b.keys, &self.waiter);
                db.unblock(&b.keys, &self.waiter);
                shared.intro.unpostpone(&self.waiter);
            }
        }
    }
}

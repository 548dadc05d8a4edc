//! Where keys live: the narrow interface the cluster plugs into the session and the commands
//! through. A server alone has no placement (every slot is here); on a mesh,
//! [`crate::cluster::Cluster`] is one.
//!
//! The session asks [`Placement::route`] before it runs a command, the command layer tells
//! [`Placement::capture`] after a write ran here and [`Placement::publish`] after a
//! publication, and the connection lets [`Placement::finish`] complete a batch (forwarded
//! replies spliced in, replication acknowledgements awaited) before it writes the replies.
//! Nothing below this trait knows about peers, links or views.

use std::future::Future;
use std::pin::Pin;

use crate::client::ConnState;
use crate::cmd::table::Command;
use crate::db::Db;
use crate::reply::Reply;
use crate::shared::Shared;

/// Where a command runs.
#[derive(Debug)]
pub enum Route {
    /// Here.
    Local,
    /// Nowhere: answer with this error (`MOVED ...`, `CROSSSLOT ...`, `CLUSTERDOWN ...`).
    Refused(String),
    /// On a peer: queued, its reply is spliced in where the batch's replies stood when it was
    /// routed ([`Placement::finish`]). For `EXEC`, the whole transaction was taken.
    Forwarded,
}

/// A future borrowed from its placement and client.
pub type Finishing<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// How a server's keyspace is spread over other nodes.
pub trait Placement: Send + Sync + std::fmt::Debug {
    /// Where `cmd` runs for `conn`. `offset` is where its reply would start in the batch's
    /// output. Inside `MULTI`, `EXEC` routes the queued transaction as a whole.
    fn route(
        &self,
        conn: &mut ConnState,
        cmd: &'static Command,
        args: &[&[u8]],
        offset: usize,
    ) -> Route;

    /// Whether `cmd` would run here for `conn`, without queueing anything (a script's keys
    /// must all be served where the script runs).
    fn serves_here(&self, conn: &mut ConnState, cmd: &Command, args: &[&[u8]]) -> bool;

    /// A write ran here: version the keys it touched and send their states to the other
    /// nodes that hold them. `keys` are the command's keys (`table::keys_of`), and `existed`
    /// says, per key, whether it held a value before the write ran (a key absent before and
    /// after was not written).
    fn capture(
        &self,
        db: &mut Db,
        now: u64,
        cmd: &'static Command,
        keys: &[&[u8]],
        existed: &[bool],
        conn: &mut ConnState,
    );

    /// Completes a batch: runs its forwarded commands and splices their replies into `out`,
    /// then waits for the acknowledgements its writes need.
    fn finish<'a>(
        &'a self,
        shared: &'a Shared,
        conn: &'a mut ConnState,
        out: &'a mut Reply,
    ) -> Finishing<'a>;

    /// Delivers a publication to the other nodes' subscribers (a shard channel's only to the
    /// nodes holding its slot).
    fn publish(&self, shard: bool, channel: &[u8], message: &[u8]);

    /// Answers a `CLUSTER` subcommand about the map (`cluster|info`, `myid`, `slots`,
    /// `shards`, `nodes`); false if it is not one.
    fn describe(&self, sub: &str, conn: &mut ConnState, out: &mut Reply) -> bool;

    /// The lines `INFO cluster` adds.
    fn info(&self) -> String;

    /// How many other nodes receive a copy of each write run here (the replication factor
    /// less this node, bounded by the members in the view): what `min-replicas-to-write`
    /// compares.
    fn replicas(&self) -> usize;

    /// Whether this node is the only member, holding every slot: it then answers as a
    /// standalone Redis does where Redis Cluster refuses what could reach other nodes (`SORT`
    /// `BY`/`GET` patterns, a script's keys of several slots), since every key is here.
    fn alone(&self) -> bool;
}

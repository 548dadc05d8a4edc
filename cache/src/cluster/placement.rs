//! The cluster as the session and the commands see it: [`Placement`] for [`Cluster`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::forward::{self, Pending};
use super::{Cluster, ConnCluster, Decision, proto};
use crate::client::ConnState;
use crate::cmd::lower;
use crate::cmd::table::{self, Command};
use crate::db::Db;
use crate::placement::{Finishing, Placement, Route};
use crate::reply::Reply;
use crate::shared::Shared;
use crate::slot::key_slot;

impl Placement for Cluster {
    fn route(
        &self,
        conn: &mut ConnState,
        cmd: &'static Command,
        args: &[&[u8]],
        offset: usize,
    ) -> Route {
        route_conn(self, conn, cmd, args, offset)
    }

    fn capture(
        &self,
        db: &mut Db,
        now: u64,
        cmd: &'static Command,
        keys: &[&[u8]],
        existed: &[bool],
        conn: &mut ConnState,
    ) {
        let cc = conn.placement.get::<ConnCluster>();
        self.capture_write(db, now, cmd, keys, existed, cc);
    }

    fn finish<'a>(
        &'a self,
        shared: &'a Shared,
        conn: &'a mut ConnState,
        out: &'a mut Reply,
    ) -> Finishing<'a> {
        Box::pin(async move {
            let readonly = conn.routing.readonly;
            let credential = conn.credential.clone();
            let cc = conn.placement.get::<ConnCluster>();
            if !cc.pending.is_empty() {
                let offsets: Vec<usize> = cc.pending.iter().map(|p| p.offset).collect();
                let replies = forward::run_pending(
                    shared,
                    self,
                    cc,
                    readonly,
                    credential.as_ref(),
                    out.resp3,
                )
                .await;
                forward::splice(&mut out.buf, &offsets, replies);
            }
            if !cc.waits.is_empty() {
                let waits = std::mem::take(&mut cc.waits);
                self.wait_acks(waits).await;
            }
            // A client's own connection runs writes only where their slot is owned (routing).
            cc.unowned.clear();
        })
    }

    fn serves_here(&self, conn: &mut ConnState, cmd: &Command, args: &[&[u8]]) -> bool {
        let routing = conn.routing;
        matches!(
            self.route(conn.placement.get::<ConnCluster>(), routing, cmd, args),
            Decision::Local
        )
    }

    fn publish(&self, shard: bool, channel: &[u8], message: &[u8]) {
        let mut b = BytesMut::new();
        let name: &[u8] = if shard { b"SPUBLISH" } else { b"PUBLISH" };
        proto::command(&mut b, &[name, channel, message]);
        let rec = proto::Record::Publish(b.freeze());
        let links = if shard {
            self.repl_targets(key_slot(channel))
        } else {
            self.all_links()
        };
        for l in links {
            l.push(rec.clone());
        }
    }

    fn describe(&self, sub: &str, conn: &mut ConnState, out: &mut Reply) -> bool {
        let v = self.view();
        match sub {
            "cluster|info" => out.verbatim(v.info_text(self.has_majority()).as_bytes()),
            "cluster|myid" => out.bulk(v.me().id.as_bytes()),
            "cluster|slots" => {
                conn.routing.aware = true;
                v.write_slots(out);
            }
            "cluster|shards" => {
                conn.routing.aware = true;
                v.write_shards(out);
            }
            "cluster|nodes" => {
                conn.routing.aware = true;
                out.verbatim(v.nodes_text().as_bytes());
            }
            _ => return false,
        }
        true
    }

    fn info(&self) -> String {
        let v = self.view();
        let mut t = String::new();
        let _ = write!(
            t,
            "proxima_members:{}\r\nproxima_replication_factor:{}\r\nproxima_sync_replication:{}\r\nproxima_importing_ranges:{}\r\nproxima_exporting_ranges:{}\r\nproxima_majority:{}\r\nproxima_stale:{}\r\nproxima_nearness_measured:{}\r\n",
            v.nodes.len(),
            v.rf,
            u8::from(self.sync),
            self.importing(),
            self.exporting(),
            u8::from(self.has_majority()),
            u8::from(self.is_stale()),
            self.nearness_measured()
        );
        let _ = write!(
            t,
            "proxima_state_bytes_received_link:{}\r\nproxima_state_bytes_received_merge:{}\r\nproxima_tree_bytes_received:{}\r\n",
            self.received.link.load(Ordering::Relaxed),
            self.received.merge.load(Ordering::Relaxed),
            self.received.tree.load(Ordering::Relaxed)
        );
        t
    }

    fn alone(&self) -> bool {
        self.view().nodes.len() <= 1
    }

    fn replicas(&self) -> usize {
        let v = self.view();
        v.rf.min(v.nodes.len()).saturating_sub(1)
    }
}

/// Where a command runs for `conn` (see [`Placement::route`]): a plain client's transaction
/// is routed as a whole at `EXEC`, a cluster-aware one's commands at queue time, as Redis
/// does.
fn route_conn(
    cl: &Cluster,
    conn: &mut ConnState,
    cmd: &'static Command,
    args: &[&[u8]],
    offset: usize,
) -> Route {
    let asking = std::mem::replace(&mut conn.routing.asking, false);
    let in_multi = conn.multi.is_some();
    if in_multi
        && !matches!(
            cmd.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
    {
        // A plain client's transaction is routed as a whole at EXEC; a cluster-aware one is
        // told at queue time, as Redis does.
        if !conn.routing.aware {
            return Route::Local;
        }
    }
    let decision = if cmd.name == "exec" && in_multi && !conn.routing.aware {
        match exec_slot(conn) {
            Ok(None) => Decision::Local,
            Ok(Some(_)) if conn.multi_failed => Decision::Local,
            Ok(Some(slot)) => {
                // Route as a read of the slot's first queued key would be, but as a write.
                let q = conn
                    .multi
                    .as_ref()
                    .map(|q| q[0].clone())
                    .unwrap_or_default();
                let v: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
                let c = lower(v[0], &mut [0u8; 32]).and_then(table::lookup);
                match c {
                    Some(c) => {
                        match cl.route(conn.placement.get::<ConnCluster>(), conn.routing, c, &v) {
                            Decision::Error(e) if e.starts_with("MOVED") => Decision::Local,
                            d => d,
                        }
                    }
                    None => {
                        let _ = slot;
                        Decision::Local
                    }
                }
            }
            Err(e) => Decision::Error(e.into()),
        }
    } else {
        let mut d = cl.route(conn.placement.get::<ConnCluster>(), conn.routing, cmd, args);
        if asking
            && let Decision::Error(e) = &d
            && e.starts_with("MOVED")
        {
            d = Decision::Local;
        }
        d
    };
    match decision {
        Decision::Local => Route::Local,
        Decision::Error(e) => Route::Refused(e),
        Decision::Forward {
            peer,
            exec,
            hops,
            slot,
        } => {
            let mut req = BytesMut::new();
            let (ncmds, take_last) = if cmd.name == "exec" {
                let queued = conn.multi.take().unwrap_or_default();
                proto::command(&mut req, &[b"MULTI"]);
                for q in &queued {
                    let v: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
                    proto::command(&mut req, &v);
                }
                proto::command(&mut req, &[b"EXEC"]);
                (queued.len() + 2, true)
            } else {
                proto::command(&mut req, args);
                (1, false)
            };
            conn.placement.get::<ConnCluster>().pending.push(Pending {
                offset,
                peer,
                exec,
                hops,
                slot,
                req,
                ncmds,
                take_last,
            });
            Route::Forwarded
        }
    }
}

/// The one slot a queued transaction addresses (`None`: no keys).
fn exec_slot(conn: &ConnState) -> Result<Option<u16>, &'static str> {
    let mut slot = None;
    for q in conn.multi.iter().flatten() {
        let v: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
        let Some(c) = lower(v[0], &mut [0u8; 32]).and_then(table::lookup) else {
            continue;
        };
        match (table::command_slot(c, &v)?, slot) {
            (Some(s), None) => slot = Some(s),
            (Some(s), Some(x)) if s != x => {
                return Err("CROSSSLOT Keys in request don't hash to the same slot");
            }
            _ => {}
        }
    }
    Ok(slot)
}

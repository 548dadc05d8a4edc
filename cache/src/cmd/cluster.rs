//! Cluster commands: CLUSTER (the map from the placement, or one node owning every slot),
//! READONLY, READWRITE, ASKING.

use super::{CmdResult, Ctx, eq_ic, help, int_arg, sub};
use crate::slot::key_slot;

/// READONLY / READWRITE: whether replicas may answer this connection's reads (a proxied
/// plain client's reads then go to the nearest holder of the slot).
pub fn readonly(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ctx.conn.routing.readonly = eq_ic(args[0], "readonly");
    ctx.out.ok();
    Ok(())
}

/// ASKING: the next command runs here even if this node would redirect it.
pub fn asking(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.conn.routing.asking = true;
    ctx.conn.routing.aware = true;
    ctx.out.ok();
    Ok(())
}

/// CLUSTER subcommands of a single node owning all 16384 slots.
pub fn cluster(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "cluster")?;
    let port = i64::from(ctx.shared.addr.port());
    let id = ctx.shared.node_id.clone();
    if let Some(p) = ctx.shared.placement.get()
        && p.describe(s.name, ctx.conn, ctx.out)
    {
        return Ok(());
    }
    match s.name {
        "cluster|info" => {
            let t = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:1\r\ncluster_size:1\r\ncluster_current_epoch:1\r\ncluster_my_epoch:1\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n";
            ctx.out.verbatim(t.as_bytes());
        }
        "cluster|myid" => ctx.out.bulk(id.as_bytes()),
        "cluster|slots" => {
            let out = &mut *ctx.out;
            out.array(1);
            out.array(3);
            out.int(0);
            out.int(16383);
            out.array(4);
            out.bulk(b"");
            out.int(port);
            out.bulk(id.as_bytes());
            out.map(0);
        }
        "cluster|shards" => {
            let out = &mut *ctx.out;
            out.array(1);
            out.map(2);
            out.bulk(b"slots");
            out.array(2);
            out.int(0);
            out.int(16383);
            out.bulk(b"nodes");
            out.array(1);
            out.map(7);
            out.bulk(b"id");
            out.bulk(id.as_bytes());
            out.bulk(b"port");
            out.int(port);
            out.bulk(b"ip");
            out.bulk(b"");
            out.bulk(b"endpoint");
            out.bulk(b"");
            out.bulk(b"role");
            out.bulk(b"master");
            out.bulk(b"replication-offset");
            out.int(0);
            out.bulk(b"health");
            out.bulk(b"online");
        }
        "cluster|nodes" => {
            let line = format!(
                "{id} :{port}@{} myself,master - 0 0 1 connected 0-16383\n",
                port + 10000
            );
            ctx.out.verbatim(line.as_bytes());
        }
        "cluster|keyslot" => ctx.out.int(i64::from(key_slot(args[2]))),
        "cluster|countkeysinslot" => {
            let slot = int_arg(args[2])?;
            if !(0..16384).contains(&slot) {
                return Err("ERR Invalid slot".into());
            }
            let (db, out, now) = ctx.split();
            let mut n = 0;
            db.for_each_key(now, |k| {
                if i64::from(key_slot(k)) == slot {
                    n += 1;
                }
            });
            out.int(n);
        }
        "cluster|getkeysinslot" => {
            let slot = int_arg(args[2])?;
            let count = int_arg(args[3])?;
            if !(0..16384).contains(&slot) {
                return Err("ERR Invalid slot".into());
            }
            if count < 0 {
                return Err("ERR Invalid number of keys".into());
            }
            let (db, out, now) = ctx.split();
            let mut keys: Vec<Box<[u8]>> = Vec::new();
            db.for_each_key(now, |k| {
                if (keys.len() as i64) < count && i64::from(key_slot(k)) == slot {
                    keys.push(k.into());
                }
            });
            out.array(keys.len());
            for k in &keys {
                out.bulk(k);
            }
        }
        // Membership and slots come from the mesh and the node's certificate, not from a
        // node-local cluster state a client could wipe.
        "cluster|reset" => {
            return Err(
                "ERR CLUSTER RESET is not supported: a node's slots follow the mesh (leave it with `proxima cluster leave`)"
                    .into(),
            );
        }
        _ => help(
            ctx,
            &[
                "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "INFO",
                "KEYSLOT <key>",
                "MYID",
                "NODES",
                "SHARDS",
                "SLOTS",
                "COUNTKEYSINSLOT <slot>",
                "GETKEYSINSLOT <slot> <count>",
                "HELP",
            ],
        ),
    }
    Ok(())
}

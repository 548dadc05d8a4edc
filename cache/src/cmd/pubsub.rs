//! Pub/Sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB. A
//! publication reaches this node's subscribers, and the placement carries it to other nodes.

use std::sync::atomic::Ordering;

use super::{CmdResult, Ctx, arity_error, eq_ic, help, sub};

fn sub_reply(ctx: &mut Ctx<'_>, kind: &[u8], name: Option<&[u8]>, count: usize) {
    ctx.out.push(3);
    ctx.out.bulk(kind);
    match name {
        Some(n) => ctx.out.bulk(n),
        None => ctx.out.null(),
    }
    ctx.out.int(count as i64);
}

pub(super) fn unsubscribe_all(ctx: &mut Ctx<'_>, pattern: bool, reply: bool) {
    let names: Vec<Box<[u8]>> = if pattern {
        ctx.conn.patterns.iter().cloned().collect()
    } else {
        ctx.conn.channels.iter().cloned().collect()
    };
    let kind: &[u8] = if pattern {
        b"punsubscribe"
    } else {
        b"unsubscribe"
    };
    if names.is_empty() && reply {
        let n = ctx.conn.sub_count();
        sub_reply(ctx, kind, None, n);
    }
    for n in names {
        ctx.shared
            .pubsub
            .lock()
            .unsubscribe(pattern, &n, ctx.conn.id);
        if pattern {
            ctx.conn.patterns.remove(&n);
        } else {
            ctx.conn.channels.remove(&n);
        }
        if reply {
            let c = ctx.conn.sub_count();
            sub_reply(ctx, kind, Some(&n), c);
        }
    }
    ctx.conn
        .info
        .subs
        .store(ctx.conn.sub_count(), Ordering::Relaxed);
}

/// SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE / PUNSUBSCRIBE
pub fn subscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let pattern = name[0] == b'p';
    let unsub = name.starts_with(b"unsub") || name.starts_with(b"punsub");
    if ctx.conn.multi.is_some() && !unsub {
        // Redis refuses these inside MULTI at EXEC time; keep it simple and refuse.
        return Err(format!(
            "ERR Command not allowed inside a transaction: {}",
            String::from_utf8_lossy(&name)
        )
        .into());
    }
    if unsub {
        if args.len() == 1 {
            unsubscribe_all(ctx, pattern, true);
            return Ok(());
        }
        for n in &args[1..] {
            ctx.shared
                .pubsub
                .lock()
                .unsubscribe(pattern, n, ctx.conn.id);
            if pattern {
                ctx.conn.patterns.remove(*n);
            } else {
                ctx.conn.channels.remove(*n);
            }
            let c = ctx.conn.sub_count();
            sub_reply(ctx, &name, Some(n), c);
        }
    } else {
        for n in &args[1..] {
            ctx.shared
                .pubsub
                .lock()
                .subscribe(pattern, n, &ctx.conn.sub);
            if pattern {
                ctx.conn.patterns.insert((*n).into());
            } else {
                ctx.conn.channels.insert((*n).into());
            }
            let c = ctx.conn.sub_count();
            sub_reply(ctx, &name, Some(n), c);
        }
    }
    ctx.conn
        .info
        .subs
        .store(ctx.conn.sub_count(), Ordering::Relaxed);
    Ok(())
}

/// PUBLISH channel message
pub fn publish(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let n = ctx.shared.pubsub.lock().publish(args[1], args[2]);
    // Every other member delivers it to its own subscribers, in order per publisher; the
    // count is this node's receivers, as Redis Cluster answers.
    if let Some(p) = ctx.shared.placement.get() {
        p.publish(false, args[1], args[2]);
    }
    ctx.out.int(n as i64);
    Ok(())
}

/// SSUBSCRIBE / SUNSUBSCRIBE: shard channels, served by the nodes that hold the channel's
/// slot (cluster routing sends other clients there with MOVED).
pub fn ssubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let unsub = eq_ic(args[0], "sunsubscribe");
    let kind: &[u8] = if unsub {
        b"sunsubscribe"
    } else {
        b"ssubscribe"
    };
    if ctx.conn.multi.is_some() && !unsub {
        return Err("ERR Command not allowed inside a transaction: ssubscribe".into());
    }
    let names: Vec<Box<[u8]>> = if unsub && args.len() == 1 {
        ctx.conn.shard_channels.iter().cloned().collect()
    } else {
        args[1..].iter().map(|n| Box::<[u8]>::from(*n)).collect()
    };
    if names.is_empty() {
        sub_reply(ctx, kind, None, ctx.conn.shard_channels.len());
    }
    for n in names {
        if unsub {
            ctx.shared.pubsub.lock().unsubscribe_shard(&n, ctx.conn.id);
            ctx.conn.shard_channels.remove(&n);
        } else {
            ctx.shared.pubsub.lock().subscribe_shard(&n, &ctx.conn.sub);
            ctx.conn.shard_channels.insert(n.clone());
        }
        let c = ctx.conn.shard_channels.len();
        sub_reply(ctx, kind, Some(&n), c);
    }
    ctx.conn
        .info
        .subs
        .store(ctx.conn.sub_count(), Ordering::Relaxed);
    Ok(())
}

/// SPUBLISH shardchannel message: delivered on every node that holds the channel's slot.
pub fn spublish(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let n = ctx.shared.pubsub.lock().publish_shard(args[1], args[2]);
    if let Some(p) = ctx.shared.placement.get() {
        p.publish(true, args[1], args[2]);
    }
    ctx.out.int(n as i64);
    Ok(())
}

/// PUBSUB CHANNELS|NUMSUB|NUMPAT|HELP
pub fn pubsub(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "pubsub")?;
    match s.name {
        "pubsub|channels" => {
            if args.len() > 3 {
                return Err(arity_error("pubsub|channels"));
            }
            let chans = ctx.shared.pubsub.lock().channels(args.get(2).copied());
            ctx.out.array(chans.len());
            for c in &chans {
                ctx.out.bulk(c);
            }
        }
        "pubsub|numsub" => {
            let counts: Vec<usize> = {
                let ps = ctx.shared.pubsub.lock();
                args[2..].iter().map(|c| ps.numsub(c)).collect()
            };
            ctx.out.map(counts.len());
            for (c, n) in args[2..].iter().zip(counts) {
                ctx.out.bulk(c);
                ctx.out.int(n as i64);
            }
        }
        "pubsub|shardchannels" => {
            if args.len() > 3 {
                return Err(arity_error("pubsub|shardchannels"));
            }
            let chans = ctx
                .shared
                .pubsub
                .lock()
                .shard_channel_names(args.get(2).copied());
            ctx.out.array(chans.len());
            for c in &chans {
                ctx.out.bulk(c);
            }
        }
        "pubsub|shardnumsub" => {
            let counts: Vec<usize> = {
                let ps = ctx.shared.pubsub.lock();
                args[2..].iter().map(|c| ps.shard_numsub(c)).collect()
            };
            ctx.out.map(counts.len());
            for (c, n) in args[2..].iter().zip(counts) {
                ctx.out.bulk(c);
                ctx.out.int(n as i64);
            }
        }
        "pubsub|numpat" => {
            let n = ctx.shared.pubsub.lock().numpat();
            ctx.out.int(n as i64);
        }
        _ => help(
            ctx,
            &[
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "NUMPAT",
                "NUMSUB [<channel> ...]",
                "SHARDCHANNELS [<pattern>]",
                "SHARDNUMSUB [<shardchannel> ...]",
                "HELP",
            ],
        ),
    }
    Ok(())
}

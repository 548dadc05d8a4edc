//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.

use super::table;
use super::{CmdResult, Ctx, lower};

/// MULTI
pub fn multi(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    if ctx.conn.multi.is_some() {
        return Err("ERR MULTI calls can not be nested".into());
    }
    ctx.conn.multi = Some(Vec::new());
    ctx.conn.multi_failed = false;
    ctx.out.ok();
    Ok(())
}

/// EXEC: runs the queued commands atomically (under one keyspace lock), unless a WATCHed key
/// changed or a command failed to queue.
pub fn exec(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let Some(queued) = ctx.conn.multi.take() else {
        return Err("ERR EXEC without MULTI".into());
    };
    let watched = std::mem::take(&mut ctx.conn.watched);
    let id = ctx.conn.id;
    let dirty = ctx.db().unwatch(id, &watched);
    if ctx.conn.multi_failed {
        ctx.conn.multi_failed = false;
        return Err("EXECABORT Transaction discarded because of previous errors.".into());
    }
    if dirty {
        ctx.out.null_array();
        return Ok(());
    }
    ctx.out.array(queued.len());
    let may_block = std::mem::replace(&mut ctx.may_block, false);
    for q in &queued {
        let v: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
        // Every queued command was found, arity-checked and routed when it was queued.
        match lower(v[0], &mut [0u8; 32]).and_then(table::lookup) {
            // Permissions may have changed since the command was queued: checked again.
            Some(cmd) => match crate::acl::check_queued(ctx, cmd, &v) {
                Ok(()) => ctx.run(cmd, &v),
                Err(e) => ctx.out.error(&e),
            },
            None => ctx.out.error("ERR unknown command"),
        }
    }
    ctx.may_block = may_block;
    Ok(())
}

/// DISCARD
pub fn discard(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    if ctx.conn.multi.take().is_none() {
        return Err("ERR DISCARD without MULTI".into());
    }
    ctx.conn.multi_failed = false;
    let watched = std::mem::take(&mut ctx.conn.watched);
    let id = ctx.conn.id;
    ctx.db().unwatch(id, &watched);
    ctx.out.ok();
    Ok(())
}

/// WATCH key [key ...]
pub fn watch(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if ctx.conn.multi.is_some() {
        return Err("ERR WATCH inside MULTI is not allowed".into());
    }
    let id = ctx.conn.id;
    for k in &args[1..] {
        ctx.db().watch(id, k);
        if !ctx.conn.watched.iter().any(|w| &**w == *k) {
            ctx.conn.watched.push((*k).into());
        }
    }
    ctx.out.ok();
    Ok(())
}

/// UNWATCH
pub fn unwatch(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let watched = std::mem::take(&mut ctx.conn.watched);
    let id = ctx.conn.id;
    ctx.db().unwatch(id, &watched);
    ctx.out.ok();
    Ok(())
}

//! Scripting commands: `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO`, `SCRIPT`, `FUNCTION`,
//! `FCALL`, `FCALL_RO`. The Lua engine is `crate::script`; this file gives it the commands a
//! script runs, checked as a client's are (lookup, arity, `noscript`, read-only scripts) and
//! then run with `Ctx::run`, so a write made by a script is replicated as any write.

use std::sync::Arc;

use super::table::{self, Command};
use super::{CmdError, CmdResult, Ctx, eq_ic, lower};
use crate::reply::Reply;
use crate::script::{self, Host, HostReply, RestorePolicy, RunState, flags};

/// The largest script body or library accepted (Redis bounds it by `proto-max-bulk-len`;
/// this bounds what the Lua compiler is handed).
const MAX_SCRIPT: usize = 512 * 1024 * 1024;

/// Runs a script's commands on the calling connection's context.
struct ScriptHost<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    read_only: bool,
    /// `allow-cross-slot-keys`: the script may touch keys of several (local) slots.
    cross_slot: bool,
    /// In a cluster, the slot of the first key the script declared or touched.
    slot: Option<u16>,
    run: Arc<RunState>,
}

impl ScriptHost<'_, '_> {
    /// Redis's `scriptVerifyClusterState`: a script touches only keys this node serves, and
    /// only of one slot unless it declared `allow-cross-slot-keys`. A node alone holds every
    /// slot and runs scripts as a standalone Redis does.
    fn check_cluster(&mut self, cmd: &Command, args: &[&[u8]]) -> Result<(), String> {
        let Some(placement) = self.ctx.shared.placement.get().filter(|p| !p.alone()) else {
            return Ok(());
        };
        const SAME_SLOT: &str = "Script attempted to access keys that do not hash to the same slot";
        let slot = match table::command_slot(cmd, args) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(_) if self.cross_slot => return Ok(()),
            Err(_) => return Err(SAME_SLOT.into()),
        };
        if !placement.serves_here(self.ctx.conn, cmd, args) {
            return Err("Script attempted to access a non local key in a cluster node".into());
        }
        if !self.cross_slot {
            match self.slot {
                None => self.slot = Some(slot),
                Some(s) if s != slot => return Err(SAME_SLOT.into()),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl Host for ScriptHost<'_, '_> {
    fn call(&mut self, argv: &[Vec<u8>], resp3: bool) -> HostReply {
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let mut lb = [0u8; 32];
        let Some(cmd) = lower(args[0], &mut lb).and_then(table::lookup) else {
            return Err("Unknown Redis command called from script".into());
        };
        if !table::arity_ok(cmd.arity, args.len()) {
            return Err("Wrong number of args calling Redis command from script".into());
        }
        // A container's subcommand carries the flags that matter (FUNCTION LOAD is noscript).
        let flags_of = table::effective(cmd, &args);
        let fl = flags_of.flags;
        // Redis 7.0 refuses blocking commands in scripts as it refuses `noscript` ones.
        // Refused before it ran: a rejected call of the command, as Redis counts it.
        let refuse = |ctx: &Ctx<'_>, msg: &'static str| -> HostReply {
            ctx.shared
                .intro
                .rejected(Some(flags_of.name), format!("ERR {msg}").as_bytes());
            Err(msg.into())
        };
        // XREAD and XREADGROUP run in scripts, without their BLOCK option (Redis 7.0).
        let stream_read = matches!(cmd.name, "xread" | "xreadgroup");
        if stream_read
            && args[1..]
                .iter()
                .take_while(|a| !eq_ic(a, "STREAMS"))
                .any(|a| eq_ic(a, "BLOCK"))
        {
            return refuse(
                self.ctx,
                if cmd.name == "xread" {
                    "xread command is not allowed with BLOCK option from scripts"
                } else {
                    "xreadgroup command is not allowed with BLOCK option from scripts"
                },
            );
        }
        if fl.contains(&"noscript") || (fl.contains(&"blocking") && !stream_read) {
            return refuse(self.ctx, "This Redis command is not allowed from script");
        }
        let write = table::may_replicate(flags_of);
        if self.read_only && write {
            return refuse(
                self.ctx,
                "Write commands are not allowed from read-only scripts.",
            );
        }
        if fl.contains(&"write") {
            self.run.mark_written();
        }
        self.check_cluster(cmd, &args)?;
        // A script runs with its caller's permissions (logged with context `lua`).
        crate::acl::check_script(self.ctx, cmd, &args).map_err(|e| format!("-{e}"))?;
        let mut tmp = Reply::new();
        tmp.resp3 = resp3;
        std::mem::swap(self.ctx.out, &mut tmp);
        let may_block = std::mem::replace(&mut self.ctx.may_block, false);
        let in_script = std::mem::replace(&mut self.ctx.in_script, true);
        self.ctx.run(cmd, &args);
        self.ctx.may_block = may_block;
        self.ctx.in_script = in_script;
        std::mem::swap(self.ctx.out, &mut tmp);
        Ok(tmp.buf.to_vec())
    }

    fn acl_check(&mut self, argv: &[Vec<u8>]) -> Result<bool, String> {
        let cmd = Self::lookup_for_acl(argv)?;
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        Ok(crate::acl::allows(self.ctx, cmd, &args))
    }
}

impl ScriptHost<'_, '_> {
    fn lookup_for_acl(argv: &[Vec<u8>]) -> Result<&'static Command, String> {
        let mut lb = [0u8; 32];
        lower(&argv[0], &mut lb)
            .and_then(table::lookup)
            .ok_or_else(|| "ERR Invalid command passed to redis.acl_check_cmd()".to_owned())
    }
}

/// `busy-reply-threshold` (alias `lua-time-limit`): the smaller of the two as set. Also sets
/// the hard limit of the script about to run (`proxima-script-time-limit`, 0 by default:
/// like Redis, a script runs until it ends or `SCRIPT KILL`; a node shared by strangers, or a
/// fuzzer, may bound it).
fn threshold_ms(ctx: &Ctx<'_>) -> u64 {
    let p = ctx.shared.params.read();
    let get = |k: &str, d: u64| p.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(d);
    ctx.shared
        .scripting
        .run
        .set_stop_after(get("proxima-script-time-limit", 0));
    get("busy-reply-threshold", 5000).min(get("lua-time-limit", 5000))
}

/// A script's keys and arguments.
type KeysArgs<'b> = (Vec<&'b [u8]>, Vec<&'b [u8]>);

/// Parses `numkeys` and splits keys from arguments (`args[2]` is numkeys).
fn split_keys<'b>(args: &[&'b [u8]], bad_number: &'static str) -> Result<KeysArgs<'b>, CmdError> {
    let n = crate::resp::parse_i64(args[2]).ok_or(CmdError::Static(bad_number))?;
    if n > (args.len() - 3) as i64 {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    if n < 0 {
        return Err("ERR Number of keys can't be negative".into());
    }
    let n = n as usize;
    Ok((args[3..3 + n].to_vec(), args[3 + n..].to_vec()))
}

/// Runs `f` where a long script may block: on a multi-threaded runtime the worker hands its
/// other connections to another thread first, so they can be answered BUSY and send
/// `SCRIPT KILL` while this one runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Counts the scripting VMs' memory against `maxmemory`: no eviction frees it, so a node whose
/// keys are all evicted can still be over its limit and refuse writes (as Redis, whose
/// `used_memory` never drops to 0, does with `maxmemory 1`).
fn reserve(ctx: &mut Ctx<'_>, engine: &crate::script::Engine) {
    let (eval, functions) = engine.memory();
    ctx.db().reserved = eval + functions;
}

/// Whether a script command may write, for `CLIENT PAUSE WRITE` (Redis's
/// `evalGetCommandFlags`): a script declared `no-writes` (or run by a `*_RO` command) is not
/// held back; a script without a shebang, or one not known yet, may write. `None` for a
/// command that runs no script.
pub fn script_may_write(ctx: &Ctx<'_>, cmd: &Command, args: &[&[u8]]) -> Option<bool> {
    let f = match cmd.name {
        "eval_ro" | "evalsha_ro" | "fcall_ro" => return Some(false),
        "eval" => script::eval_shebang(args[1]).map(|(f, _)| f).ok(),
        "evalsha" => {
            let sha = String::from_utf8_lossy(args[1]).to_ascii_lowercase();
            ctx.shared.scripting.peek_flags(Some(&sha), None)
        }
        "fcall" => {
            let name = String::from_utf8_lossy(args[1]);
            ctx.shared.scripting.peek_flags(None, Some(&name))
        }
        _ => return None,
    };
    Some(f.is_none_or(|f| f & flags::EVAL_COMPAT != 0 || f & flags::NO_WRITES == 0))
}

/// Checks a script's flags against the caller (Redis's `scriptPrepareForRun`).
fn prepare(ctx: &mut Ctx<'_>, script_flags: u32, ro_cmd: bool) -> Result<bool, CmdError> {
    if script_flags & flags::EVAL_COMPAT != 0 {
        return Ok(ro_cmd);
    }
    if script_flags & flags::NO_CLUSTER != 0 && ctx.shared.placement.get().is_some() {
        return Err("ERR Can not run script on cluster, 'no-cluster' flag is set.".into());
    }
    if script_flags & flags::NO_WRITES == 0 {
        if ro_cmd {
            return Err("ERR Can not execute a script with write flag using *_ro command.".into());
        }
        ctx.shared.replicas_ok()?;
        if script_flags & flags::ALLOW_OOM == 0 {
            let now = ctx.now;
            if ctx.db().ensure_memory(now).is_err() {
                return Err("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'".into());
            }
        }
    }
    Ok(ro_cmd || script_flags & flags::NO_WRITES != 0)
}

/// EVAL / EVAL_RO script numkeys [key ...] [arg ...]
pub fn eval(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, args, false)
}

/// EVALSHA / EVALSHA_RO sha1 numkeys [key ...] [arg ...]
pub fn evalsha(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, args, true)
}

fn eval_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], by_sha: bool) -> CmdResult {
    let ro_cmd = args[0].len() > 3 && args[0][args[0].len() - 3..].eq_ignore_ascii_case(b"_ro");
    let (keys, argv) = split_keys(args, super::NOT_INT)?;
    if args[1].len() > MAX_SCRIPT {
        return Err("ERR script too large".into());
    }
    // The keyspace lock first, then the engine's: the order every scripting command keeps.
    ctx.db();
    let shared = ctx.shared;
    let run = shared.scripting.run.clone();
    let mut engine = shared.scripting.engine();
    let sha = if by_sha {
        if args[1].len() != 40 {
            return Err("NOSCRIPT No matching script. Please use EVAL.".into());
        }
        let sha = String::from_utf8_lossy(args[1]).to_ascii_lowercase();
        if !engine.script_exists(&sha) {
            return Err("NOSCRIPT No matching script. Please use EVAL.".into());
        }
        sha
    } else {
        engine.create_script(args[1]).map_err(CmdError::Owned)?
    };
    let script_flags = engine.script_flags(&sha).unwrap_or(flags::EVAL_COMPAT);
    let threshold = threshold_ms(ctx);
    reserve(ctx, &engine);
    run_with_host(
        ctx,
        args,
        &keys,
        script_flags,
        ro_cmd,
        run,
        |host, cmd_line, out| engine.run_script(&sha, &keys, &argv, cmd_line, threshold, host, out),
    )
}

/// Checks the flags, then runs `body` (the engine's run) with a host over `ctx` for the
/// script's `redis.call`s, off the async worker, and appends the script's reply to the batch's.
fn run_with_host(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    keys: &[&[u8]],
    script_flags: u32,
    ro_cmd: bool,
    run: Arc<RunState>,
    body: impl FnOnce(&mut ScriptHost<'_, '_>, Vec<Vec<u8>>, &mut Reply),
) -> CmdResult {
    let read_only = prepare(ctx, script_flags, ro_cmd)?;
    let cmd_line: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    let mut out = Reply::new();
    out.resp3 = ctx.out.resp3;
    {
        let mut host = ScriptHost {
            ctx: &mut *ctx,
            read_only,
            cross_slot: script_flags & flags::ALLOW_CROSS_SLOT != 0,
            slot: keys.first().map(|k| crate::slot::key_slot(k)),
            run,
        };
        blocking(|| body(&mut host, cmd_line, &mut out));
    }
    ctx.out.buf.extend_from_slice(&out.buf);
    ctx.out.error_counted = out.error_counted;
    Ok(())
}

/// FCALL / FCALL_RO function numkeys [key ...] [arg ...]
pub fn fcall(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let ro_cmd = eq_ic(args[0], "fcall_ro");
    let (keys, argv) = split_keys(args, "ERR Bad number of keys provided")?;
    ctx.db();
    let shared = ctx.shared;
    let run = shared.scripting.run.clone();
    let mut engine = shared.scripting.engine();
    let name = String::from_utf8_lossy(args[1]).into_owned();
    let Some(f) = engine.function(&name) else {
        return Err("ERR Function not found".into());
    };
    let fn_flags = f.flags;
    let threshold = threshold_ms(ctx);
    reserve(ctx, &engine);
    run_with_host(
        ctx,
        args,
        &keys,
        fn_flags,
        ro_cmd,
        run,
        |host, cmd_line, out| {
            engine.run_function(&name, &keys, &argv, cmd_line, threshold, host, out)
        },
    )
}

fn sub_error(args: &[&[u8]], container: &str) -> CmdError {
    CmdError::Owned(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {container} HELP.",
        String::from_utf8_lossy(args[1])
    ))
}

fn unknown_sub(args: &[&[u8]], container: &str) -> CmdError {
    CmdError::Owned(format!(
        "ERR unknown subcommand '{}'. Try {container} HELP.",
        String::from_utf8_lossy(args[1])
    ))
}

/// SCRIPT KILL (`is_eval`) or FUNCTION KILL: stops the running script of that kind.
fn kill(ctx: &mut Ctx<'_>, is_eval: bool) -> CmdResult {
    match ctx.shared.scripting.run.kill(is_eval) {
        Some(e) => Err(e.into()),
        None => {
            ctx.out.ok();
            Ok(())
        }
    }
}

/// SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP
pub fn script(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"kill" if args.len() == 2 => kill(ctx, true),
        b"load" if args.len() == 3 => {
            if args[2].len() > MAX_SCRIPT {
                return Err("ERR script too large".into());
            }
            ctx.db();
            let sha = ctx
                .shared
                .scripting
                .engine()
                .create_script(args[2])
                .map_err(CmdError::Owned)?;
            ctx.out.bulk(sha.as_bytes());
            Ok(())
        }
        b"exists" if args.len() >= 3 => {
            ctx.db();
            let engine = ctx.shared.scripting.engine();
            let found: Vec<bool> = args[2..]
                .iter()
                .map(|a| engine.script_exists(&String::from_utf8_lossy(a).to_ascii_lowercase()))
                .collect();
            drop(engine);
            ctx.out.array(found.len());
            for f in found {
                ctx.out.int(i64::from(f));
            }
            Ok(())
        }
        b"flush" if args.len() <= 3 => {
            if args.len() == 3 && !eq_ic(args[2], "sync") && !eq_ic(args[2], "async") {
                return Err("ERR SCRIPT FLUSH only support SYNC|ASYNC option".into());
            }
            ctx.db();
            ctx.shared.scripting.engine().flush_scripts();
            ctx.out.ok();
            Ok(())
        }
        b"help" if args.len() == 2 => {
            let lines = [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Print this help.",
            ];
            ctx.out.array(lines.len());
            for l in lines {
                ctx.out.simple(l);
            }
            Ok(())
        }
        b"debug" if args.len() == 3 => {
            if eq_ic(args[2], "no") {
                ctx.out.ok();
                Ok(())
            } else {
                Err("ERR SCRIPT DEBUG is not supported by this server".into())
            }
        }
        b"kill" | b"load" | b"exists" | b"flush" | b"help" | b"debug" => {
            Err(sub_error(args, "SCRIPT"))
        }
        _ => Err(unknown_sub(args, "SCRIPT")),
    }
}

/// A dump's header and version (`FUNCTION DUMP`); the checksum is the SHA1 of the rest.
const DUMP_MAGIC: &[u8] = b"PXFN\x01";

/// FUNCTION LOAD|LIST|DELETE|FLUSH|DUMP|RESTORE|STATS|KILL|HELP
pub fn function(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"kill" if args.len() == 2 => kill(ctx, false),
        b"stats" if args.len() == 2 => {
            let run = ctx.shared.scripting.run.clone();
            let (libs, funcs) = run.counts();
            ctx.out.map(2);
            ctx.out.bulk(b"running_script");
            match run.current() {
                Some((name, cmd, ms)) => {
                    ctx.out.map(3);
                    ctx.out.bulk(b"name");
                    ctx.out.bulk(name.as_bytes());
                    ctx.out.bulk(b"command");
                    ctx.out.array(cmd.len());
                    for a in &cmd {
                        ctx.out.bulk(a);
                    }
                    ctx.out.bulk(b"duration_ms");
                    ctx.out.int(ms as i64);
                }
                None => ctx.out.null(),
            }
            ctx.out.bulk(b"engines");
            ctx.out.map(1);
            ctx.out.bulk(b"LUA");
            ctx.out.map(2);
            ctx.out.bulk(b"libraries_count");
            ctx.out.int(libs as i64);
            ctx.out.bulk(b"functions_count");
            ctx.out.int(funcs as i64);
            Ok(())
        }
        b"load" if args.len() >= 3 => {
            let mut replace = false;
            for a in &args[2..args.len() - 1] {
                if eq_ic(a, "replace") {
                    replace = true;
                } else {
                    return Err(format!(
                        "ERR Unknown option given: {}",
                        String::from_utf8_lossy(a)
                    )
                    .into());
                }
            }
            let code = args[args.len() - 1];
            if code.len() > MAX_SCRIPT {
                return Err("ERR library too large".into());
            }
            ctx.db();
            let mut engine = ctx.shared.scripting.engine();
            let name = engine
                .load_library(code, replace)
                .map_err(CmdError::Owned)?;
            publish_counts(&engine, &ctx.shared.scripting.run);
            drop(engine);
            ctx.out.bulk(name.as_bytes());
            Ok(())
        }
        b"delete" if args.len() == 3 => {
            ctx.db();
            let mut engine = ctx.shared.scripting.engine();
            let ok = engine.delete_library(&String::from_utf8_lossy(args[2]));
            publish_counts(&engine, &ctx.shared.scripting.run);
            drop(engine);
            if !ok {
                return Err("ERR Library not found".into());
            }
            ctx.out.ok();
            Ok(())
        }
        b"flush" if args.len() <= 3 => {
            if args.len() == 3 && !eq_ic(args[2], "sync") && !eq_ic(args[2], "async") {
                return Err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option".into());
            }
            ctx.db();
            let mut engine = ctx.shared.scripting.engine();
            engine.flush_functions();
            publish_counts(&engine, &ctx.shared.scripting.run);
            drop(engine);
            ctx.out.ok();
            Ok(())
        }
        b"list" => function_list(ctx, args),
        b"dump" if args.len() == 2 => {
            ctx.db();
            let engine = ctx.shared.scripting.engine();
            let mut body = Vec::new();
            for lib in engine.libraries().values() {
                body.extend_from_slice(&(lib.code.len() as u64).to_le_bytes());
                body.extend_from_slice(&lib.code);
            }
            drop(engine);
            let mut payload = DUMP_MAGIC.to_vec();
            payload.extend_from_slice(&body);
            payload.extend_from_slice(&sha1_smol::Sha1::from(&body).digest().bytes());
            ctx.out.bulk(&payload);
            Ok(())
        }
        b"restore" if args.len() == 3 || args.len() == 4 => {
            let policy = match args.get(3) {
                None => RestorePolicy::Append,
                Some(p) if eq_ic(p, "append") => RestorePolicy::Append,
                Some(p) if eq_ic(p, "replace") => RestorePolicy::Replace,
                Some(p) if eq_ic(p, "flush") => RestorePolicy::Flush,
                Some(_) => {
                    return Err("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.".into());
                }
            };
            let codes = parse_dump(args[2]).ok_or(CmdError::Static(
                "ERR DUMP payload version or checksum are wrong",
            ))?;
            ctx.db();
            let mut engine = ctx.shared.scripting.engine();
            let r = engine.restore(codes, policy);
            publish_counts(&engine, &ctx.shared.scripting.run);
            drop(engine);
            r.map_err(CmdError::Owned)?;
            ctx.out.ok();
            Ok(())
        }
        b"help" if args.len() == 2 => {
            let lines = [
                "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "LOAD [REPLACE] <FUNCTION CODE>",
                "DELETE <LIBRARY NAME>",
                "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
                "FLUSH [ASYNC|SYNC]",
                "DUMP",
                "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
                "STATS",
                "KILL",
                "HELP",
                "    Print this help.",
            ];
            ctx.out.array(lines.len());
            for l in lines {
                ctx.out.simple(l);
            }
            Ok(())
        }
        b"kill" | b"stats" | b"load" | b"delete" | b"flush" | b"dump" | b"restore" | b"help" => {
            Err(sub_error(args, "FUNCTION"))
        }
        _ => Err(unknown_sub(args, "FUNCTION")),
    }
}

fn publish_counts(engine: &script::Engine, run: &RunState) {
    run.set_counts(engine.libraries().len(), engine.function_count());
}

/// The libraries of a `FUNCTION DUMP` payload, if its header and checksum hold.
fn parse_dump(p: &[u8]) -> Option<Vec<Vec<u8>>> {
    let rest = p.strip_prefix(DUMP_MAGIC)?;
    if rest.len() < 20 {
        return None;
    }
    let (body, sum) = rest.split_at(rest.len() - 20);
    if sha1_smol::Sha1::from(body).digest().bytes() != sum {
        return None;
    }
    let mut codes = Vec::new();
    let mut b = body;
    while !b.is_empty() {
        let len = u64::from_le_bytes(b.get(..8)?.try_into().ok()?) as usize;
        let code = b.get(8..8usize.checked_add(len)?)?;
        codes.push(code.to_vec());
        b = &b[8 + len..];
    }
    Some(codes)
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]
fn function_list(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        if eq_ic(args[i], "withcode") && !with_code {
            with_code = true;
        } else if eq_ic(args[i], "libraryname") && pattern.is_none() {
            let Some(p) = args.get(i + 1) else {
                return Err("ERR library name argument was not given".into());
            };
            pattern = Some(p);
            i += 1;
        } else {
            return Err(
                format!("ERR Unknown argument {}", String::from_utf8_lossy(args[i])).into(),
            );
        }
        i += 1;
    }
    ctx.db();
    let engine = ctx.shared.scripting.engine();
    let libs: Vec<&script::Library> = engine
        .libraries()
        .values()
        .filter(|l| pattern.is_none_or(|p| crate::glob::glob_match(p, l.name.as_bytes(), false)))
        .collect();
    let out = &mut *ctx.out;
    out.array(libs.len());
    for lib in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(lib.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for f in lib.functions.values() {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.desc {
                Some(d) => out.bulk(d.as_bytes()),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names: Vec<&str> = flags::NAMES
                .iter()
                .filter(|(_, b)| f.flags & b != 0)
                .map(|(n, _)| *n)
                .collect();
            out.set(names.len());
            for n in names {
                out.bulk(n.as_bytes());
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::session::Session;

    #[test]
    fn scripts_run_with_their_callers_permissions() {
        let mut s = Session::new();
        assert_eq!(
            s.cmd(&[
                "ACL",
                "SETUSER",
                "bob",
                "on",
                ">123",
                "+@scripting",
                "+set",
                "~x*"
            ]),
            "+OK\r\n"
        );
        assert_eq!(s.cmd(&["AUTH", "bob", "123"]), "+OK\r\n");
        let check = |s: &mut Session, cmd: &str, keys: &[&str]| {
            let mut a = vec!["EVAL", cmd, "0"];
            let n = keys.len().to_string();
            a[2] = &n;
            a.extend_from_slice(keys);
            s.cmd(&a)
        };
        assert_eq!(
            check(&mut s, "return redis.acl_check_cmd('set','xx',1)", &["xx"]),
            ":1\r\n"
        );
        assert_eq!(
            check(
                &mut s,
                "return redis.acl_check_cmd('hset','xx','f',1)",
                &["xx"]
            ),
            "$-1\r\n"
        );
        assert_eq!(
            check(&mut s, "return redis.acl_check_cmd('set','yy',1)", &[]),
            "$-1\r\n"
        );
        let r = check(&mut s, "return redis.acl_check_cmd('nosuch','a')", &[]);
        assert!(
            r.contains("Invalid command passed to redis.acl_check_cmd()"),
            "{r}"
        );
        // What the user may not run, a script it runs may not run either.
        let r = check(&mut s, "return redis.call('set','yy',1)", &[]);
        assert!(r.starts_with("-NOPERM"), "{r}");
        assert_eq!(
            check(&mut s, "return redis.call('set','xx',1)", &["xx"]),
            "+OK\r\n"
        );
    }

    #[test]
    fn min_replicas_to_write_refuses_writes_of_a_node_without_replicas() {
        let mut s = Session::new();
        s.cmd(&["SET", "x", "v"]);
        assert_eq!(
            s.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
            "+OK\r\n"
        );
        let ro = "#!lua flags=no-writes\nreturn redis.call('get','x')";
        assert_eq!(s.cmd(&["EVAL", ro, "1", "x"]), "$1\r\nv\r\n");
        assert_eq!(
            s.cmd(&["EVAL", "return redis.call('get','x')", "1", "x"]),
            "$1\r\nv\r\n"
        );
        for r in [
            s.cmd(&["EVAL", "#!lua\nreturn redis.call('get','x')", "1", "x"]),
            s.cmd(&["EVAL", "return redis.call('set','x',1)", "1", "x"]),
            s.cmd(&["SET", "x", "w"]),
        ] {
            assert!(r.starts_with("-NOREPLICAS"), "{r}");
        }
        assert_eq!(
            s.cmd(&["CONFIG", "GET", "min-slaves-to-write"]),
            "*2\r\n$19\r\nmin-slaves-to-write\r\n$1\r\n1\r\n"
        );
        s.cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"]);
        assert_eq!(s.cmd(&["SET", "x", "w"]), "+OK\r\n");
    }

    #[test]
    fn stream_reads_run_in_scripts_without_block() {
        let mut s = Session::new();
        s.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
        let eval = |s: &mut Session, code: &str| s.cmd(&["EVAL", code, "1", "s"]);
        assert_eq!(
            eval(&mut s, "return redis.pcall('xread','STREAMS','s','$')"),
            "$-1\r\n"
        );
        let r = eval(
            &mut s,
            "return redis.pcall('xread','BLOCK',0,'STREAMS','s','$')",
        );
        assert!(
            r.contains("xread command is not allowed with BLOCK option from scripts"),
            "{r}"
        );
        let r = eval(
            &mut s,
            "return redis.pcall('xreadgroup','group','g','c','BLOCK',0,'STREAMS','s','>')",
        );
        assert!(
            r.contains("xreadgroup command is not allowed with BLOCK option from scripts"),
            "{r}"
        );
        let r = s.cmd(&["EVAL", "return redis.pcall('cluster','reset')", "0"]);
        assert!(r.contains("not allowed from script"), "{r}");
        let r = s.cmd(&["EVAL", "return redis.pcall('blpop','x',0)", "0"]);
        assert!(r.contains("not allowed"), "{r}");
    }

    #[test]
    fn a_script_past_the_hard_limit_is_stopped_even_after_writing() {
        let mut s = Session::new();
        assert_eq!(
            s.cmd(&["CONFIG", "SET", "proxima-script-time-limit", "50"]),
            "+OK\r\n"
        );
        for script in [
            "while true do end",
            "redis.call('SET', 'k', 'v') while true do pcall(function() end) end",
        ] {
            let r = s.cmd(&["EVAL", script, "0"]);
            assert!(r.starts_with("-ERR Script killed"), "{r}");
        }
        // The server is not busy afterwards, and the write made before the stop stays.
        assert_eq!(s.cmd(&["GET", "k"]), "$1\r\nv\r\n");
        assert_eq!(s.cmd(&["EVAL", "return 1", "0"]), ":1\r\n");
    }

    #[test]
    fn eval_converts_both_ways() {
        let mut s = Session::new();
        assert_eq!(s.cmd(&["EVAL", "return 'hello'", "0"]), "$5\r\nhello\r\n");
        assert_eq!(s.cmd(&["EVAL", "return 100.5", "0"]), ":100\r\n");
        assert_eq!(s.cmd(&["EVAL", "return true", "0"]), ":1\r\n");
        assert_eq!(s.cmd(&["EVAL", "return false", "0"]), "$-1\r\n");
        assert_eq!(s.cmd(&["EVAL", "return {ok='fine'}", "0"]), "+fine\r\n");
        assert_eq!(
            s.cmd(&["EVAL", "return {err='ERR this is an error'}", "0"]),
            "-ERR this is an error\r\n"
        );
        assert_eq!(
            s.cmd(&["EVAL", "return {1,2,3,'ciao',{1,2}}", "0"]),
            "*5\r\n:1\r\n:2\r\n:3\r\n$4\r\nciao\r\n*2\r\n:1\r\n:2\r\n"
        );
        assert_eq!(
            s.cmd(&["EVAL", "return {KEYS[1],ARGV[1]}", "1", "k", "a"]),
            "*2\r\n$1\r\nk\r\n$1\r\na\r\n"
        );
        s.cmd(&["SET", "x", "0"]);
        assert_eq!(
            s.cmd(&[
                "EVAL",
                "local v = redis.call('incr', KEYS[1]) return {type(v), v}",
                "1",
                "x"
            ]),
            "*2\r\n$6\r\nnumber\r\n:1\r\n"
        );
        assert_eq!(
            s.cmd(&["EVAL", "return redis.pcall('get', 'nokey') == false", "0"]),
            ":1\r\n"
        );
        // RESP3 from a command, as the script asked for it.
        assert_eq!(
            s.cmd(&[
                "EVAL",
                "redis.setresp(3) return redis.call('hgetall', 'nohash')",
                "0"
            ]),
            "*0\r\n"
        );
    }

    #[test]
    fn errors_have_redis_shape() {
        let mut s = Session::new();
        let r = s.cmd(&["EVAL", "return a", "0"]);
        assert!(
            r.starts_with(
                "-ERR user_script:1: Script attempted to access nonexistent global variable 'a'"
            ),
            "{r}"
        );
        let r = s.cmd(&["EVAL", "a = 10", "0"]);
        assert!(r.contains("Attempt to modify a readonly table"), "{r}");
        let r = s.cmd(&["EVAL", "redis.call = function() end", "0"]);
        assert!(r.contains("Attempt to modify a readonly table"), "{r}");
        let r = s.cmd(&["EVAL", "return redis.call('nosuchcommand')", "0"]);
        assert!(
            r.starts_with("-ERR Unknown Redis command called from script"),
            "{r}"
        );
        s.cmd(&["SET", "foo", "bar"]);
        let r = s.cmd(&[
            "EVAL",
            "return redis.call('lpush', KEYS[1], 'v')",
            "1",
            "foo",
        ]);
        assert!(r.starts_with("-WRONGTYPE"), "{r}");
        assert_eq!(
            s.cmd(&["EVAL", "return redis.pcall('incr', KEYS[1])", "1", "foo"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        let r = s.cmd(&["EVAL", "return redis.call('blpop', 'l', 0)", "0"]);
        assert!(r.contains("not allowed from script"), "{r}");
        for trick in [
            "setfenv(0, {})",
            "table.insert(_G, 1)",
            "rawset(_G, 'x', 1)",
            "setmetatable(_G, {})",
            "getmetatable(_G).__index = {}",
            "getmetatable('').__index.upper = nil",
        ] {
            let r = s.cmd(&["EVAL", trick, "0"]);
            assert!(
                r.contains("Attempt to modify a readonly table"),
                "{trick}: {r}"
            );
        }
        assert_eq!(
            s.cmd(&["EVAL", "return string.upper('a')", "0"]),
            "$1\r\nA\r\n"
        );
        let r = s.cmd(&["EVAL", "print('x')", "0"]);
        assert!(r.contains("nonexistent global variable 'print'"), "{r}");
        let r = s.cmd(&["EVAL", "return 'x", "0"]);
        assert!(
            r.starts_with("-ERR Error compiling script (new function): user_script:1:"),
            "{r}"
        );
        assert_eq!(
            s.cmd(&["EVAL", "return 1", "2", "a"]),
            "-ERR Number of keys can't be greater than number of args\r\n"
        );
        assert_eq!(
            s.cmd(&["EVAL", "return 1", "-1"]),
            "-ERR Number of keys can't be negative\r\n"
        );
    }

    #[test]
    fn script_cache_and_evalsha() {
        let mut s = Session::new();
        let sha = crate::script::sha1_hex(b"return 'ok'");
        assert_eq!(
            s.cmd(&["SCRIPT", "LOAD", "return 'ok'"]),
            format!("$40\r\n{sha}\r\n")
        );
        assert_eq!(s.cmd(&["EVALSHA", &sha, "0"]), "$2\r\nok\r\n");
        assert_eq!(
            s.cmd(&["EVALSHA", &sha.to_uppercase(), "0"]),
            "$2\r\nok\r\n"
        );
        assert_eq!(
            s.cmd(&["SCRIPT", "EXISTS", &sha, "ffff"]),
            "*2\r\n:1\r\n:0\r\n"
        );
        // INFO from a script must not wait for the engine the script holds.
        let r = s.cmd(&["EVAL", "return redis.call('info', 'memory')", "0"]);
        assert!(r.contains("number_of_cached_scripts:"), "{r}");
        assert_eq!(s.cmd(&["SCRIPT", "FLUSH"]), "+OK\r\n");
        assert!(s.cmd(&["EVALSHA", &sha, "0"]).starts_with("-NOSCRIPT"));
        assert_eq!(
            s.cmd(&["SCRIPT", "KILL"]),
            "-NOTBUSY No scripts in execution right now.\r\n"
        );
    }

    #[test]
    fn read_only_scripts_refuse_writes() {
        let mut s = Session::new();
        let r = s.cmd(&["EVAL_RO", "return redis.call('set', 'k', 'v')", "1", "k"]);
        assert!(
            r.contains("Write commands are not allowed from read-only scripts"),
            "{r}"
        );
        let r = s.cmd(&[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('set', 'k', 'v')",
            "1",
            "k",
        ]);
        assert!(
            r.contains("Write commands are not allowed from read-only scripts"),
            "{r}"
        );
        let r = s.cmd(&["EVAL_RO", "#!lua\nreturn 1", "0"]);
        assert!(
            r.contains("Can not execute a script with write flag using *_ro command"),
            "{r}"
        );
        let r = s.cmd(&["EVAL", "#!lua flags=bogus\nreturn 1", "0"]);
        assert_eq!(r, "-ERR Unexpected flag in script shebang: bogus\r\n");
        assert_eq!(s.cmd(&["EXISTS", "k"]), ":0\r\n");
    }

    #[test]
    fn libraries_json_and_bit() {
        let mut s = Session::new();
        assert_eq!(
            s.cmd(&["EVAL", "return cjson.encode({1,2,{a='x/y'}})", "0"]),
            "$18\r\n[1,2,{\"a\":\"x\\/y\"}]\r\n"
        );
        assert_eq!(
            s.cmd(&[
                "EVAL",
                "return table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')",
                "0"
            ]),
            "$26\r\n0 -5000 -1 0.0003 1023.2 0\r\n"
        );
        assert_eq!(
            s.cmd(&["EVAL", "return bit.bor(1,2,4,8,16,32,64,128)", "0"]),
            ":255\r\n"
        );
        assert_eq!(
            s.cmd(&["EVAL", "return bit.tohex(255, 4)", "0"]),
            "$4\r\n00ff\r\n"
        );
        let hex = "local e = cmsgpack.pack(0.1) local h = '' for i = 1, #e do h = h .. string.format('%02x', string.byte(e, i)) end return h";
        assert_eq!(s.cmd(&["EVAL", hex, "0"]), "$18\r\ncb3fb999999999999a\r\n");
        assert_eq!(
            s.cmd(&[
                "EVAL",
                "return cmsgpack.unpack(cmsgpack.pack({1,2,'x'}))[3]",
                "0"
            ]),
            "$1\r\nx\r\n"
        );
        assert_eq!(
            s.cmd(&["EVAL", "local p = struct.pack('>I2i4', 258, -2) local a, b, pos = struct.unpack('>I2i4', p) return {#p, a, b, pos, struct.size('<!4bi4d')}", "0"]),
            "*5\r\n:6\r\n:258\r\n:-2\r\n:7\r\n:16\r\n"
        );
        assert_eq!(
            s.cmd(&[
                "EVAL",
                "return {struct.unpack('<s', struct.pack('<s', 'ab'))}",
                "0"
            ]),
            "*2\r\n$2\r\nab\r\n:4\r\n"
        );
        // Values nest as deep as cjson allows (1000) without exhausting the stack.
        let r = s.cmd(&["EVAL", "local t = cjson.decode(string.rep('[', 999) .. string.rep(']', 999)) return #cmsgpack.pack(t) .. ' ' .. #cjson.encode(t)", "0"]);
        assert_eq!(r, "$7\r\n17 1998\r\n");
        // A hostile payload of nested arrays is refused, not recursed into.
        let r = s.cmd(&[
            "EVAL",
            "return cmsgpack.unpack(string.rep(string.char(0x91), 100000))",
            "0",
        ]);
        assert!(r.contains("too many nested data structures"), "{r}");
        assert_eq!(
            s.cmd(&["EVAL", "return redis.sha1hex('Pizza & Mandolino')", "0"]),
            "$40\r\n74822d82031af7493c20eefa13bd07ec4fada82f\r\n"
        );
    }

    #[test]
    fn functions_load_call_list_dump_restore() {
        let mut s = Session::new();
        let code = "#!lua name=lib\nredis.register_function('f', function(keys, args) return redis.call('set', keys[1], args[1]) end)\nredis.register_function{function_name='g', callback=function() return 'ro' end, flags={'no-writes'}, description='read'}";
        assert_eq!(s.cmd(&["FUNCTION", "LOAD", code]), "$3\r\nlib\r\n");
        assert!(
            s.cmd(&["FUNCTION", "LOAD", code])
                .contains("already exists")
        );
        assert_eq!(
            s.cmd(&["FUNCTION", "LOAD", "REPLACE", code]),
            "$3\r\nlib\r\n"
        );
        assert_eq!(s.cmd(&["FCALL", "f", "1", "k", "v"]), "+OK\r\n");
        assert_eq!(s.cmd(&["GET", "k"]), "$1\r\nv\r\n");
        assert_eq!(s.cmd(&["FCALL", "F", "1", "k", "w"]), "+OK\r\n");
        assert_eq!(s.cmd(&["FCALL_RO", "g", "0"]), "$2\r\nro\r\n");
        assert!(
            s.cmd(&["FCALL_RO", "f", "1", "k", "v"])
                .contains("*_ro command")
        );
        assert_eq!(
            s.cmd(&["FCALL", "nope", "0"]),
            "-ERR Function not found\r\n"
        );
        let list = s.cmd(&["FUNCTION", "LIST"]);
        assert!(
            list.contains("library_name") && list.contains("no-writes") && list.contains("read"),
            "{list}"
        );
        let dump = s.feed(b"*2\r\n$8\r\nFUNCTION\r\n$4\r\nDUMP\r\n");
        // The payload is the bulk string's body.
        let body_start = dump.iter().position(|&b| b == b'\n').unwrap() + 1;
        let payload = &dump[body_start..dump.len() - 2];
        assert_eq!(s.cmd(&["FUNCTION", "FLUSH"]), "+OK\r\n");
        assert_eq!(s.cmd(&["FUNCTION", "LIST"]), "*0\r\n");
        let mut req = format!(
            "*3\r\n$8\r\nFUNCTION\r\n$7\r\nRESTORE\r\n${}\r\n",
            payload.len()
        )
        .into_bytes();
        req.extend_from_slice(payload);
        req.extend_from_slice(b"\r\n");
        assert_eq!(s.feed(&req), b"+OK\r\n");
        assert_eq!(s.cmd(&["FCALL_RO", "g", "0"]), "$2\r\nro\r\n");
        assert_eq!(
            s.cmd(&["FUNCTION", "RESTORE", "bad"]),
            "-ERR DUMP payload version or checksum are wrong\r\n"
        );
        assert_eq!(s.cmd(&["FUNCTION", "DELETE", "lib"]), "+OK\r\n");
        assert_eq!(
            s.cmd(&["FUNCTION", "DELETE", "lib"]),
            "-ERR Library not found\r\n"
        );
        let r = s.cmd(&["FUNCTION", "LOAD", "#!lua name=x\nreturn 1"]);
        assert_eq!(r, "-ERR No functions registered\r\n");
        let r = s.cmd(&["FUNCTION", "LOAD", "#!lua name=x\nredis.call('ping')"]);
        assert!(
            r.contains("attempted to access nonexistent global variable 'call'"),
            "{r}"
        );
    }

    /// The BullMQ pattern: a job moves from `wait` to `active` and its hash is updated in
    /// one atomic script.
    #[test]
    fn bullmq_style_move_is_atomic() {
        let mut s = Session::new();
        let script = "\
            local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])\n\
            if not id then return nil end\n\
            redis.call('HSET', KEYS[3] .. id, 'processedOn', ARGV[1])\n\
            return {id, redis.call('HGET', KEYS[3] .. id, 'data')}";
        s.cmd(&["LPUSH", "{q}:wait", "1", "2"]);
        s.cmd(&["HSET", "{q}:1", "data", "payload-1"]);
        let r = s.cmd(&[
            "EVAL",
            script,
            "3",
            "{q}:wait",
            "{q}:active",
            "{q}:",
            "1700000000",
        ]);
        assert_eq!(r, "*2\r\n$1\r\n1\r\n$9\r\npayload-1\r\n");
        assert_eq!(
            s.cmd(&["LRANGE", "{q}:active", "0", "-1"]),
            "*1\r\n$1\r\n1\r\n"
        );
        assert_eq!(
            s.cmd(&["HGET", "{q}:1", "processedOn"]),
            "$10\r\n1700000000\r\n"
        );
        s.cmd(&["RPOP", "{q}:wait"]);
        assert_eq!(
            s.cmd(&["EVAL", script, "3", "{q}:wait", "{q}:active", "{q}:", "1"]),
            "$-1\r\n"
        );
    }

    #[test]
    fn busy_script_answers_others_and_can_be_killed() {
        let s = Session::new();
        let shared = s.shared().clone();
        shared
            .params
            .write()
            .insert("busy-reply-threshold".into(), "1".into());
        let runner = std::thread::spawn(move || {
            let mut s = s;
            s.cmd(&["EVAL", "local a = 0 while true do a = a + 1 end", "0"])
        });
        let mut other = Session::on(shared.clone());
        // Wait for the hook to flag BUSY (no sleeps: spin on the shared flag).
        while !shared.scripting.run.busy() {
            std::thread::yield_now();
        }
        assert!(
            other
                .cmd(&["PING"])
                .starts_with("-BUSY Redis is busy running a script")
        );
        assert_eq!(other.cmd(&["SCRIPT", "KILL"]), "+OK\r\n");
        let reply = runner.join().unwrap();
        assert!(
            reply.starts_with("-ERR Script killed by user with SCRIPT KILL..."),
            "{reply}"
        );
        assert_eq!(other.cmd(&["PING"]), "+PONG\r\n");
    }
}

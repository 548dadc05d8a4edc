//! Server commands: COMMAND, CONFIG, INFO, TIME, LASTSAVE, ROLE, SAVE, WAIT, MEMORY.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::table::{self, COMMANDS, Command};
use super::{CmdError, CmdResult, Ctx, SYNTAX, arity_error, eq_ic, help, int_arg, sub};
use crate::glob::glob_match;

/// The Redis version whose semantics this server implements (client libraries read it).
pub const REDIS_VERSION: &str = "7.2.4";

fn write_command_info(out: &mut crate::reply::Reply, c: &Command) {
    out.array(10);
    out.bulk(c.name.as_bytes());
    out.int(i64::from(c.arity));
    out.set(c.flags.len());
    for f in c.flags {
        out.simple(f);
    }
    out.int(i64::from(c.first));
    out.int(i64::from(c.last));
    out.int(i64::from(c.step));
    out.set(c.acl.len());
    for a in c.acl {
        out.simple(a);
    }
    out.array(0); // tips
    write_key_specs(out, c);
    out.array(c.subcommands.len());
    for s in c.subcommands {
        write_command_info(out, s);
    }
}

/// Key specifications equivalent to the legacy range (Redis 7's `key_specs`).
fn write_key_specs(out: &mut crate::reply::Reply, c: &Command) {
    if c.first == 0 {
        out.array(0);
        return;
    }
    let access = if c.flags.contains(&"write") {
        "RW"
    } else {
        "RO"
    };
    out.array(1);
    out.map(3);
    out.bulk(b"flags");
    out.set(1);
    out.simple(access);
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"index");
    out.bulk(b"spec");
    out.map(1);
    out.bulk(b"index");
    out.int(i64::from(c.first));
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"range");
    out.bulk(b"spec");
    out.map(3);
    out.bulk(b"lastkey");
    out.int(if c.last < 0 {
        i64::from(c.last)
    } else {
        i64::from(c.last - c.first)
    });
    out.bulk(b"keystep");
    out.int(i64::from(c.step));
    out.bulk(b"limit");
    out.int(0);
}

fn write_command_docs(out: &mut crate::reply::Reply, c: &Command) {
    out.bulk(c.name.as_bytes());
    let n = if c.subcommands.is_empty() { 4 } else { 5 };
    out.map(n);
    out.bulk(b"summary");
    out.bulk(c.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(b"1.0.0");
    out.bulk(b"group");
    out.bulk(c.group.as_bytes());
    out.bulk(b"complexity");
    out.bulk(b"O(1)");
    if !c.subcommands.is_empty() {
        out.bulk(b"subcommands");
        out.map(c.subcommands.len());
        for s in c.subcommands {
            write_command_docs(out, s);
        }
    }
}

fn find_command(name: &[u8]) -> Option<&'static Command> {
    let lower = name.to_ascii_lowercase();
    if let Some(c) = table::lookup(&lower) {
        return Some(c);
    }
    // "config|get" style names.
    let bar = lower.iter().position(|&c| c == b'|')?;
    let parent = table::lookup(&lower[..bar])?;
    table::lookup_sub(parent, &lower[bar + 1..])
}

/// COMMAND [COUNT | INFO | DOCS | GETKEYS | LIST | HELP]
pub fn command(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() == 1 {
        ctx.out.array(COMMANDS.len());
        for c in COMMANDS {
            write_command_info(ctx.out, c);
        }
        return Ok(());
    }
    let s = sub(args, "command")?;
    match s.name {
        "command|count" => ctx.out.int(COMMANDS.len() as i64),
        "command|info" => {
            if args.len() == 2 {
                ctx.out.array(COMMANDS.len());
                for c in COMMANDS {
                    write_command_info(ctx.out, c);
                }
            } else {
                ctx.out.array(args.len() - 2);
                for name in &args[2..] {
                    match find_command(name) {
                        Some(c) => write_command_info(ctx.out, c),
                        None => ctx.out.null_array(),
                    }
                }
            }
        }
        "command|docs" => {
            let list: Vec<&Command> = if args.len() == 2 {
                COMMANDS.iter().collect()
            } else {
                args[2..].iter().filter_map(|n| find_command(n)).collect()
            };
            ctx.out.map(list.len());
            for c in list {
                write_command_docs(ctx.out, c);
            }
        }
        "command|list" => {
            let mut pattern = None;
            if args.len() == 5 && eq_ic(args[2], "FILTERBY") && eq_ic(args[3], "PATTERN") {
                pattern = Some(args[4]);
            } else if args.len() != 2 {
                return Err(SYNTAX.into());
            }
            let names: Vec<&str> = COMMANDS
                .iter()
                .map(|c| c.name)
                .filter(|n| pattern.is_none_or(|p| glob_match(p, n.as_bytes(), true)))
                .collect();
            ctx.out.array(names.len());
            for n in names {
                ctx.out.bulk(n.as_bytes());
            }
        }
        "command|getkeys" => {
            let target = &args[2..];
            let Some(c) = find_command(target[0]) else {
                return Err("ERR Invalid command specified".into());
            };
            let c = if !c.subcommands.is_empty() && target.len() > 1 {
                table::lookup_sub(c, target[1]).unwrap_or(c)
            } else {
                c
            };
            if !table::arity_ok(c.arity, target.len()) {
                return Err("ERR Invalid number of arguments specified for command".into());
            }
            let keys = table::keys_of(c, target).ok_or(CmdError::Static(
                "ERR Invalid arguments specified for command",
            ))?;
            if keys.is_empty() {
                return Err("ERR The command has no key arguments".into());
            }
            ctx.out.array(keys.len());
            for k in keys {
                ctx.out.bulk(k);
            }
        }
        _ => help(
            ctx,
            &[
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "COUNT",
                "DOCS [<command-name> ...]",
                "GETKEYS <full-command>",
                "INFO [<command-name> ...]",
                "LIST [FILTERBY PATTERN <pattern>]",
                "HELP",
            ],
        ),
    }
    Ok(())
}

/// CONFIG GET|SET|RESETSTAT|REWRITE|HELP
pub fn config(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "config")?;
    match s.name {
        "config|get" => {
            let params = ctx.shared.params.read();
            let mut found: Vec<(&String, &String)> = Vec::new();
            for pat in &args[2..] {
                for (k, v) in params.iter() {
                    if glob_match(&pat.to_ascii_lowercase(), k.as_bytes(), true)
                        && !found.iter().any(|(f, _)| *f == k)
                    {
                        found.push((k, v));
                    }
                }
            }
            ctx.out.map(found.len());
            for (k, v) in found {
                ctx.out.bulk(k.as_bytes());
                ctx.out.bulk(v.as_bytes());
            }
        }
        "config|set" => {
            if !args.len().is_multiple_of(2) {
                return Err(arity_error("config|set"));
            }
            ctx.release();
            for kv in args[2..].chunks_exact(2) {
                let k = String::from_utf8_lossy(kv[0]);
                let v = String::from_utf8_lossy(kv[1]);
                ctx.shared.set_param(&k, &v)?;
            }
            ctx.out.ok();
        }
        "config|resetstat" => {
            ctx.db().stats = Default::default();
            ctx.out.ok();
        }
        "config|rewrite" => return Err("ERR The server is running without a config file".into()),
        _ => help(
            ctx,
            &[
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "SET <directive> <value>",
                "RESETSTAT",
                "REWRITE",
                "HELP",
            ],
        ),
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else {
        format!("{bytes}B")
    }
}

/// Resident set size of this process (the node), from /proc.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn cpu_times() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0;
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    // Fields after ")" start at index 0 = state; utime is field 14 overall -> index 11.
    (get(12), get(11))
}

/// The text of `INFO` for the given sections.
pub fn info_text(ctx: &mut Ctx<'_>, sections: &[String]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| s == "all" || s == "everything" || s == "default");
    let want = |name: &str| all || sections.iter().any(|s| s == name);
    let shared = ctx.shared;
    let now = ctx.now;
    let mut t = String::new();
    let uptime = shared.started.elapsed().as_secs();
    if want("server") {
        let _ = write!(
            t,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:cluster\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nexecutable:proxima\r\nconfig_file:\r\nproxima_version:{}\r\n\r\n",
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            shared.node_id,
            shared.addr.port(),
            now * 1000,
            uptime / 86400,
            env!("CARGO_PKG_VERSION"),
        );
    }
    if want("clients") {
        let n = shared.clients.lock().len();
        let blocked = ctx.db().blocked_clients();
        let _ = write!(
            t,
            "# Clients\r\nconnected_clients:{n}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{blocked}\r\ntracking_clients:{}\r\nclients_in_timeout_table:0\r\n\r\n",
            shared.maxclients.load(Ordering::Relaxed),
            crate::tracking::stats(shared).0,
        );
    }
    let (used, maxmem, keys, volatile, stats, policy) = {
        let db = ctx.db();
        (
            db.used_memory() as u64,
            db.maxmemory as u64,
            db.len(),
            db.volatile_count(),
            db.stats.clone(),
            db.policy,
        )
    };
    if want("memory") {
        let rss = rss_bytes();
        let policy_name = shared
            .params
            .read()
            .get("maxmemory-policy")
            .cloned()
            .unwrap_or_else(|| format!("{policy:?}"));
        let _ = write!(
            t,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{used}\r\nused_memory_dataset:{used}\r\nmaxmemory:{maxmem}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy_name}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:libc\r\n{}\r\n",
            human(used),
            human(rss),
            human(maxmem),
            if used > 0 {
                rss as f64 / used as f64
            } else {
                0.0
            },
            crate::script::info_memory(&shared.scripting),
        );
    }
    if want("persistence") {
        let _ = write!(
            t,
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n\r\n",
            now / 1000 - uptime
        );
    }
    if want("stats") {
        let (chans, pats) = {
            let ps = shared.pubsub.lock();
            (ps.channels(None).len(), ps.numpat())
        };
        let s = &shared.stats;
        let tracked = crate::tracking::stats(shared);
        let _ = write!(
            t,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{chans}\r\npubsub_patterns:{pats}\r\nmigrate_cached_sockets:0\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\ntotal_error_replies:0\r\nunexpected_error_replies:{}\r\n\r\n",
            s.connections.load(Ordering::Relaxed),
            s.commands.load(Ordering::Relaxed),
            s.net_in.load(Ordering::Relaxed),
            s.net_out.load(Ordering::Relaxed),
            s.rejected.load(Ordering::Relaxed),
            stats.expired,
            stats.evicted,
            stats.hits,
            stats.misses,
            tracked.2,
            tracked.1,
            tracked.3,
            s.protocol_errors.load(Ordering::Relaxed),
        );
    }
    if want("replication") {
        let _ = write!(
            t,
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_repl_offset:0\r\n\r\n",
            shared.node_id
        );
    }
    if want("cpu") {
        let (sys, user) = cpu_times();
        let _ = write!(
            t,
            "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n\r\n"
        );
    }
    if want("modules") {
        t.push_str("# Modules\r\n\r\n");
    }
    if want("errorstats") {
        t.push_str("# Errorstats\r\n\r\n");
    }
    if want("cluster") {
        t.push_str("# Cluster\r\ncluster_enabled:1\r\n");
        if let Some(p) = ctx.shared.placement.get() {
            t.push_str(&p.info());
        }
        t.push_str("\r\n");
    }
    if want("keyspace") {
        t.push_str("# Keyspace\r\n");
        if keys > 0 {
            let _ = write!(t, "db0:keys={keys},expires={volatile},avg_ttl=0\r\n");
        }
        t.push_str("\r\n");
    }
    if t.ends_with("\r\n\r\n") {
        t.truncate(t.len() - 2);
    }
    t
}

/// INFO [section ...]
pub fn info(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sections: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let text = info_text(ctx, &sections);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// TIME
pub fn time(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk(d.as_secs().to_string().as_bytes());
    ctx.out.bulk(d.subsec_micros().to_string().as_bytes());
    Ok(())
}

/// LASTSAVE (nothing is saved: the start time)
pub fn lastsave(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let started = ctx.now / 1000 - ctx.shared.started.elapsed().as_secs();
    ctx.out.int(started as i64);
    Ok(())
}

/// ROLE
pub fn role(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.out.array(3);
    ctx.out.bulk(b"master");
    ctx.out.int(0);
    ctx.out.array(0);
    Ok(())
}

/// SAVE / BGSAVE: a cache keeps nothing on disk; accepted so tools that call them work.
pub fn save(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if eq_ic(args[0], "bgsave") {
        ctx.out.simple("Background saving started");
    } else {
        ctx.out.ok();
    }
    Ok(())
}

/// WAIT numreplicas timeout: no replicas on one node.
pub fn wait(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    int_arg(args[1])?;
    let t = int_arg(args[2])?;
    if t < 0 {
        return Err(super::TIMEOUT_NEG.into());
    }
    ctx.out.int(0);
    Ok(())
}

/// MEMORY USAGE|STATS|HELP
pub fn memory(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "memory")?;
    match s.name {
        "memory|usage" => {
            let (db, out, now) = ctx.split();
            match db.peek(args[2], now) {
                Some(e) => {
                    out.int((args[2].len() + e.value.mem() + crate::db::ENTRY_OVERHEAD) as i64)
                }
                None => out.null(),
            }
        }
        "memory|stats" => {
            let (db, out, _) = ctx.split();
            out.map(3);
            out.bulk(b"dataset.bytes");
            out.int(db.used_memory() as i64);
            out.bulk(b"keys.count");
            out.int(db.len() as i64);
            out.bulk(b"keys.bytes-per-key");
            out.int(if db.is_empty() {
                0
            } else {
                (db.used_memory() / db.len()) as i64
            });
        }
        _ => help(
            ctx,
            &[
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "STATS",
                "USAGE <key> [SAMPLES <count>]",
                "HELP",
            ],
        ),
    }
    Ok(())
}

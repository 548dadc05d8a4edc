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
            // Every command and subcommand, optionally filtered by one criterion.
            let all = COMMANDS
                .iter()
                .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()));
            let names: Vec<&str> = match &args[2..] {
                [] => all.map(|c| c.name).collect(),
                [f, kind, v] if eq_ic(f, "FILTERBY") && eq_ic(kind, "PATTERN") => all
                    .filter(|c| glob_match(v, c.name.as_bytes(), true))
                    .map(|c| c.name)
                    .collect(),
                [f, kind, v] if eq_ic(f, "FILTERBY") && eq_ic(kind, "ACLCAT") => {
                    let cat = format!("@{}", String::from_utf8_lossy(v).to_ascii_lowercase());
                    all.filter(|c| c.acl.contains(&cat.as_str()))
                        .map(|c| c.name)
                        .collect()
                }
                // No modules are loaded.
                [f, kind, _] if eq_ic(f, "FILTERBY") && eq_ic(kind, "MODULE") => Vec::new(),
                _ => return Err(SYNTAX.into()),
            };
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
            let c = table::effective(c, target);
            if !table::arity_ok(c.arity, target.len()) {
                return Err("ERR Invalid number of arguments specified for command".into());
            }
            let keys = table::keys_of(c, target).ok_or(CmdError::Static(
                "ERR Invalid arguments specified for command",
            ))?;
            // Keys given by a count (EVAL's numkeys) may be none at all: an empty answer.
            if keys.is_empty() && !c.flags.contains(&"no_mandatory_keys") {
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
            use crate::shared::{HIDDEN_PARAMS, PARAM_ALIASES};
            let params = ctx.shared.params.read();
            let mut found: Vec<(&str, &String)> = Vec::new();
            for pat in &args[2..] {
                let pat = pat.to_ascii_lowercase();
                let exact = !pat.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
                let names = params
                    .keys()
                    .map(|k| (k.as_str(), k.as_str()))
                    .chain(PARAM_ALIASES.iter().copied());
                for (shown, real) in names {
                    let hidden = HIDDEN_PARAMS.contains(&real) && !exact;
                    if !hidden
                        && glob_match(&pat, shown.as_bytes(), true)
                        && !found.iter().any(|(f, _)| *f == shown)
                        && let Some(v) = params.get(real)
                    {
                        found.push((shown, v));
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
            config_set(ctx.shared, &args[2..])?;
            ctx.out.ok();
        }
        "config|resetstat" => {
            ctx.db().stats = Default::default();
            ctx.shared.intro.reset_stats();
            let st = &ctx.shared.stats;
            for a in [
                &st.connections,
                &st.commands,
                &st.net_in,
                &st.net_out,
                &st.rejected,
                &st.protocol_errors,
            ] {
                a.store(0, Ordering::Relaxed);
            }
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

/// CONFIG SET name value [name value ...]: all or nothing. Names are checked first
/// (unknown, duplicate, immutable), then the values are applied in order; if one fails, the
/// ones applied before it are put back.
fn config_set(shared: &crate::shared::Shared, pairs: &[&[u8]]) -> CmdResult {
    use crate::shared::{IMMUTABLE_PARAMS, PARAM_ALIASES};
    let mut names: Vec<String> = Vec::with_capacity(pairs.len() / 2);
    {
        let params = shared.params.read();
        for kv in pairs.chunks_exact(2) {
            let raw = String::from_utf8_lossy(kv[0]).to_ascii_lowercase();
            let name = PARAM_ALIASES
                .iter()
                .find(|(alias, _)| *alias == raw)
                .map_or(raw.clone(), |(_, real)| (*real).to_owned());
            if !params.contains_key(&name) {
                return Err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{raw}'"
                )
                .into());
            }
            if IMMUTABLE_PARAMS.contains(&name.as_str()) {
                return Err(format!("ERR CONFIG SET failed (possibly related to argument '{raw}') - can't set immutable config").into());
            }
            if names.contains(&name) {
                return Err(format!("ERR CONFIG SET failed (possibly related to argument '{raw}') - duplicate parameter").into());
            }
            names.push(name);
        }
    }
    let old: Vec<Option<String>> = {
        let params = shared.params.read();
        names.iter().map(|n| params.get(n).cloned()).collect()
    };
    for (i, kv) in pairs.chunks_exact(2).enumerate() {
        let v = String::from_utf8_lossy(kv[1]);
        if let Err(e) = shared.set_param(&names[i], &v) {
            for (n, o) in names[..i].iter().zip(&old).rev() {
                if let Some(o) = o {
                    let _ = shared.set_param(n, o);
                }
            }
            return Err(e.into());
        }
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

/// Physical memory of the machine, from /proc.
fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
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
    // `default` (or no argument) is every section but the per-command ones; `all` and
    // `everything` add those.
    let everything = sections.iter().any(|s| s == "all" || s == "everything");
    let default = sections.is_empty() || sections.iter().any(|s| s == "default");
    let want = |name: &str| {
        let per_command = matches!(name, "commandstats" | "latencystats");
        everything || (default && !per_command) || sections.iter().any(|s| s == name)
    };
    let shared = ctx.shared;
    let now = ctx.now;
    let mut t = String::new();
    let uptime = shared.started.elapsed().as_secs();
    if want("server") {
        let _ = write!(
            t,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:cluster\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:{}\r\nexecutable:proxima\r\nconfig_file:\r\nio_threads_active:0\r\nshutdown_in_milliseconds:0\r\nproxima_version:{}\r\n\r\n",
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            shared.node_id,
            shared.addr.port(),
            now * 1000,
            uptime / 86400,
            (now / 1000) & ((1 << 24) - 1),
            env!("CARGO_PKG_VERSION"),
        );
    }
    if want("clients") {
        let blocked = ctx.db().blocked_clients() + shared.intro.postponed();
        let n = shared.clients.lock().len();
        let _ = write!(
            t,
            "# Clients\r\nconnected_clients:{n}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{blocked}\r\ntracking_clients:{}\r\nclients_in_timeout_table:0\r\n\r\n",
            shared.maxclients.load(Ordering::Relaxed),
            crate::tracking::stats(shared).0,
        );
    }
    let (used, maxmem, keys, volatile, stats, policy, changes) = {
        let db = ctx.db();
        (
            db.used_memory() as u64,
            db.maxmemory as u64,
            db.len(),
            db.volatile_count(),
            db.stats.clone(),
            db.policy,
            db.changes,
        )
    };
    // Beside the keys (the dataset), `used_memory` counts the scripting VMs, as `maxmemory`
    // does (so a limit set from `used_memory` means what it says). The clients' query buffers
    // are shown (`mem_clients_normal`) but counted in neither.
    let dataset = used;
    let clients_mem: u64 = shared
        .clients
        .lock()
        .values()
        .map(|c| {
            let a = &c.activity;
            (a.qbuf.load(Ordering::Relaxed) + a.qbuf_free.load(Ordering::Relaxed)) as u64
        })
        .sum();
    let overhead = ctx.db().reserved as u64;
    let used = dataset + overhead;
    if want("memory") {
        let rss = rss_bytes();
        let policy_name = shared
            .params
            .read()
            .get("maxmemory-policy")
            .cloned()
            .unwrap_or_else(|| format!("{policy:?}"));
        let frag = if used > 0 {
            rss as f64 / used as f64
        } else {
            0.0
        };
        let perc = |part: u64, whole: u64| {
            if whole > 0 {
                part as f64 * 100.0 / whole as f64
            } else {
                0.0
            }
        };
        // The node accounts keys and values only (`used_memory`); what Redis splits into
        // allocator, scripts and buffers is either not separate here or not kept (no
        // replication backlog, no AOF): those fields read 0.
        let _ = write!(
            t,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{used}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:100.00%\r\nused_memory_overhead:{overhead}\r\nused_memory_startup:0\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{used}\r\nallocator_active:{used}\r\nallocator_resident:{rss}\r\ntotal_system_memory:{}\r\ntotal_system_memory_human:{}\r\n{}maxmemory:{maxmem}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy_name}\r\nallocator_frag_ratio:1.00\r\nallocator_frag_bytes:0\r\nallocator_rss_ratio:{frag:.2}\r\nallocator_rss_bytes:{}\r\nrss_overhead_ratio:1.00\r\nrss_overhead_bytes:0\r\nmem_fragmentation_ratio:{frag:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:0\r\nmem_replication_backlog:0\r\nmem_total_replication_buffers:0\r\nmem_clients_slaves:0\r\nmem_clients_normal:{clients_mem}\r\nmem_cluster_links:0\r\nmem_aof_buffer:0\r\nmem_allocator:libc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n\r\n",
            human(used),
            human(rss),
            human(used),
            perc(dataset, used),
            total_memory(),
            human(total_memory()),
            crate::script::info_memory(&shared.scripting),
            human(maxmem),
            rss as i64 - used as i64,
            rss as i64 - used as i64,
        );
    }
    if want("persistence") {
        // Nothing is saved: no fork, no RDB or AOF; the start time stands for the last save.
        let _ = write!(
            t,
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:0\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\naof_rewrites_consecutive_failures:0\r\naof_last_write_status:ok\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n\r\n",
            changes,
            now / 1000 - uptime
        );
    }
    if want("stats") {
        let (chans, pats, shard) = {
            let ps = shared.pubsub.lock();
            (ps.channels(None).len(), ps.numpat(), ps.shard_channels())
        };
        let s = &shared.stats;
        let tracked = crate::tracking::stats(shared);
        let _ = write!(
            t,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:0.00\r\ninstantaneous_output_kbps:0.00\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:0\r\nsync_partial_ok:0\r\nsync_partial_err:0\r\nexpired_keys:{}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:0\r\nevicted_keys:{}\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{chans}\r\npubsub_patterns:{pats}\r\npubsubshard_channels:{shard}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\nunexpected_error_replies:{}\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\n\r\n",
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
            shared.intro.errors().1,
        );
    }
    if want("replication") {
        let _ = write!(
            t,
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n\r\n",
            shared.node_id
        );
    }
    if want("cpu") {
        let (sys, user) = cpu_times();
        let _ = write!(
            t,
            "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n\r\n"
        );
    }
    if want("modules") {
        t.push_str("# Modules\r\n\r\n");
    }
    if want("commandstats") {
        t.push_str("# Commandstats\r\n");
        for (name, st) in shared.intro.commands() {
            if st.calls == 0 && st.rejected == 0 && st.failed == 0 {
                continue;
            }
            let _ = write!(
                t,
                "cmdstat_{name}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                st.calls,
                st.usec,
                if st.calls > 0 {
                    st.usec as f64 / st.calls as f64
                } else {
                    0.0
                },
                st.rejected,
                st.failed
            );
        }
        t.push_str("\r\n");
    }
    if want("errorstats") {
        t.push_str("# Errorstats\r\n");
        for (code, n) in shared.intro.errors().0 {
            let _ = write!(t, "errorstat_{code}:count={n}\r\n");
        }
        t.push_str("\r\n");
    }
    if want("latencystats") {
        t.push_str("# Latencystats\r\n");
        if shared.intro.latency_tracking.load(Ordering::Relaxed) {
            let ps = shared.intro.percentiles.lock().clone();
            for (name, st) in shared.intro.commands() {
                if st.hist.iter().all(|&n| n == 0) {
                    continue;
                }
                let _ = write!(t, "latency_percentiles_usec_{name}:");
                for (i, p) in ps.iter().enumerate() {
                    let sep = if i > 0 { "," } else { "" };
                    let _ = write!(t, "{sep}p{p}={:.3}", st.percentile(*p));
                }
                t.push_str("\r\n");
            }
        }
        t.push_str("\r\n");
    }
    if want("cluster") {
        t.push_str("# Cluster\r\ncluster_enabled:1\r\n");
        if let Some(p) = ctx.shared.placement.get() {
            t.push_str(&p.info());
            let (n, bytes) = ctx.db().tombstones();
            let _ = write!(
                t,
                "proxima_tombstones:{n}\r\nproxima_tombstone_bytes:{bytes}\r\n"
            );
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
                Some(e) => out.int(i64::from(crate::db::Db::entry_mem(args[2], &e.value))),
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

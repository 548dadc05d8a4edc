//! Connection, server, pub/sub, transaction and one-node cluster commands.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::table::{self, COMMANDS, Command};
use super::{CmdError, CmdResult, Ctx, NOT_INT, SYNTAX, arity_error, eq_ic, int_arg};
use crate::glob::glob_match;
use crate::slot::key_slot;

/// The Redis version whose semantics this server implements (client libraries read it).
pub const REDIS_VERSION: &str = "7.2.4";

fn unknown_sub(args: &[&[u8]], container: &str) -> CmdError {
    CmdError::Owned(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(args[1]),
        container.to_uppercase()
    ))
}

/// Finds and arity-checks the subcommand `args[1]` of `container`.
fn sub(args: &[&[u8]], container: &str) -> Result<&'static Command, CmdError> {
    let cmd = table::lookup(container.as_bytes()).ok_or(CmdError::Static(SYNTAX))?;
    let s = table::lookup_sub(cmd, args[1]).ok_or_else(|| unknown_sub(args, container))?;
    if !table::arity_ok(s.arity, args.len()) {
        return Err(arity_error(s.name));
    }
    Ok(s)
}

fn help(ctx: &mut Ctx<'_>, lines: &[&str]) {
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.simple(l);
    }
}

/// PING [message]
pub fn ping(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 2 {
        return Err(arity_error("ping"));
    }
    if ctx.conn.sub_count() > 0 && !ctx.out.resp3 {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(args.get(1).copied().unwrap_or(b""));
    } else if let Some(m) = args.get(1) {
        ctx.out.bulk(m);
    } else {
        ctx.out.simple("PONG");
    }
    Ok(())
}

/// ECHO message
pub fn echo(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(args[1]);
    Ok(())
}

/// SELECT index (only database 0 exists)
pub fn select(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let i = int_arg(args[1]).map_err(|_| CmdError::Static(NOT_INT))?;
    if i != 0 {
        return Err("ERR DB index is out of range".into());
    }
    ctx.out.ok();
    Ok(())
}

/// QUIT
pub fn quit(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.out.ok();
    ctx.conn.close = true;
    Ok(())
}

/// RESET
pub fn reset(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.conn.multi = None;
    ctx.conn.multi_failed = false;
    let watched = std::mem::take(&mut ctx.conn.watched);
    let id = ctx.conn.id;
    ctx.db().unwatch(id, &watched);
    unsubscribe_all(ctx, false, false);
    unsubscribe_all(ctx, true, false);
    ctx.out.resp3 = false;
    ctx.conn.info.resp3.store(false, Ordering::Relaxed);
    ctx.conn.info.name.lock().clear();
    ctx.conn.authenticated = !ctx.shared.needs_auth();
    ctx.conn.credential = None;
    ctx.out.simple("RESET");
    Ok(())
}

fn check_password(ctx: &Ctx<'_>, user: &[u8], pass: &[u8]) -> Result<(), CmdError> {
    if ctx.shared.password_ok(user, pass) {
        Ok(())
    } else {
        Err("WRONGPASS invalid username-password pair or user is disabled.".into())
    }
}

/// Notes the credential a client authenticated with: its proxied sessions carry it.
fn authenticated_as(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) {
    ctx.conn.authenticated = true;
    ctx.conn.credential = Some(crate::conn::Credential {
        user: user.to_vec(),
        pass: pass.to_vec(),
    });
}

/// AUTH [username] password
pub fn auth(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(SYNTAX.into());
    }
    let (user, pass): (&[u8], &[u8]) = if args.len() == 3 {
        (args[1], args[2])
    } else {
        (b"default", args[1])
    };
    if args.len() == 2 && !ctx.shared.needs_auth() {
        return Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into());
    }
    if ctx.shared.needs_auth() {
        check_password(ctx, user, pass)?;
    } else if user != b"default" {
        return Err("WRONGPASS invalid username-password pair or user is disabled.".into());
    }
    authenticated_as(ctx, user, pass);
    ctx.out.ok();
    Ok(())
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut proto = None;
    if args.len() >= 2 {
        let v = int_arg(args[1]).map_err(|_| {
            CmdError::Static("ERR Protocol version is not an integer or out of range")
        })?;
        if !(2..=3).contains(&v) {
            return Err("NOPROTO unsupported protocol version".into());
        }
        proto = Some(v);
    }
    let mut i = 2;
    let mut setname = None;
    let mut authed = None;
    while i < args.len() {
        if eq_ic(args[i], "AUTH") && i + 2 < args.len() {
            if ctx.shared.needs_auth() {
                check_password(ctx, args[i + 1], args[i + 2])?;
            }
            authed = Some((args[i + 1], args[i + 2]));
            i += 3;
        } else if eq_ic(args[i], "SETNAME") && i + 1 < args.len() {
            setname = Some(args[i + 1]);
            i += 2;
        } else {
            return Err(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(args[i])
            )
            .into());
        }
    }
    if let Some((user, pass)) = authed {
        authenticated_as(ctx, user, pass);
    }
    if !ctx.conn.authenticated {
        return Err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    if let Some(name) = setname {
        set_name(ctx, name)?;
    }
    if let Some(p) = proto {
        ctx.out.resp3 = p == 3;
        ctx.conn.info.resp3.store(p == 3, Ordering::Relaxed);
    }
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if out.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(ctx.conn.id as i64);
    out.bulk(b"mode");
    out.bulk(b"cluster");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

fn set_name(ctx: &mut Ctx<'_>, name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        );
    }
    *ctx.conn.info.name.lock() = String::from_utf8_lossy(name).into_owned();
    Ok(())
}

fn client_line(c: &crate::shared::ClientInfo, me: u64, sub: usize) -> String {
    let (lib, ver) = c.lib.lock().clone();
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle=0 flags={} db=0 sub={} psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        c.id,
        c.addr,
        c.laddr,
        c.name.lock(),
        c.created.elapsed().as_secs(),
        if sub > 0 { "P" } else { "N" },
        sub,
        if c.id == me { "client|list" } else { "NULL" },
        if c.resp3.load(Ordering::Relaxed) {
            3
        } else {
            2
        },
        lib,
        ver
    )
}

/// CLIENT subcommands.
pub fn client(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "client")?;
    match s.name {
        "client|id" => ctx.out.int(ctx.conn.id as i64),
        "client|getname" => {
            let n = ctx.conn.info.name.lock().clone();
            if n.is_empty() {
                ctx.out.null();
            } else {
                ctx.out.bulk(n.as_bytes());
            }
        }
        "client|setname" => {
            set_name(ctx, args[2])?;
            ctx.out.ok();
        }
        "client|setinfo" => {
            let v = String::from_utf8_lossy(args[3]).into_owned();
            if v.contains([' ', '\n']) {
                return Err(
                    "ERR lib-name cannot contain spaces, newlines or special characters.".into(),
                );
            }
            let mut lib = ctx.conn.info.lib.lock();
            if eq_ic(args[2], "LIB-NAME") {
                lib.0 = v;
            } else if eq_ic(args[2], "LIB-VER") {
                lib.1 = v;
            } else {
                return Err(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(args[2])
                )
                .into());
            }
            drop(lib);
            ctx.out.ok();
        }
        "client|info" => {
            let line = client_line(&ctx.conn.info, 0, ctx.conn.sub_count());
            ctx.out.verbatim(line.as_bytes());
        }
        "client|list" => {
            let clients: Vec<_> = ctx.shared.clients.lock().values().cloned().collect();
            let mut text = String::new();
            for c in clients {
                let subs = c.subs.load(Ordering::Relaxed);
                text.push_str(&client_line(&c, ctx.conn.id, subs));
            }
            ctx.out.verbatim(text.as_bytes());
        }
        "client|kill" => {
            let clients: Vec<_> = ctx.shared.clients.lock().values().cloned().collect();
            if args.len() == 3 {
                let addr = String::from_utf8_lossy(args[2]);
                match clients.iter().find(|c| c.addr.to_string() == addr) {
                    Some(c) => {
                        c.kill.cancel();
                        ctx.out.ok();
                    }
                    None => return Err("ERR No such client".into()),
                }
                return Ok(());
            }
            let mut n = 0;
            for pair in args[2..].chunks(2) {
                if pair.len() != 2 {
                    return Err(SYNTAX.into());
                }
                let v = String::from_utf8_lossy(pair[1]);
                for c in &clients {
                    let hit = if eq_ic(pair[0], "ID") {
                        v.parse::<u64>().ok() == Some(c.id)
                    } else if eq_ic(pair[0], "ADDR") {
                        c.addr.to_string() == v
                    } else if eq_ic(pair[0], "LADDR") {
                        c.laddr.to_string() == v
                    } else if eq_ic(pair[0], "SKIPME") || eq_ic(pair[0], "USER") {
                        false
                    } else {
                        return Err(SYNTAX.into());
                    };
                    if hit {
                        c.kill.cancel();
                        n += 1;
                    }
                }
            }
            ctx.out.int(n);
        }
        "client|no-evict" => ctx.out.ok(),
        _ => help(
            ctx,
            &[
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "ID",
                "INFO",
                "KILL <ip:port> | ID <id> | ADDR <ip:port>",
                "LIST",
                "SETNAME <name>",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "HELP",
            ],
        ),
    }
    Ok(())
}

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
            "# Clients\r\nconnected_clients:{n}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{blocked}\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n\r\n",
            shared.maxclients.load(Ordering::Relaxed)
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
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{used}\r\nused_memory_dataset:{used}\r\nmaxmemory:{maxmem}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy_name}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:libc\r\n\r\n",
            human(used),
            human(rss),
            human(maxmem),
            if used > 0 {
                rss as f64 / used as f64
            } else {
                0.0
            },
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
        let _ = write!(
            t,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{chans}\r\npubsub_patterns:{pats}\r\nmigrate_cached_sockets:0\r\ntotal_error_replies:0\r\nunexpected_error_replies:{}\r\n\r\n",
            s.connections.load(Ordering::Relaxed),
            s.commands.load(Ordering::Relaxed),
            s.net_in.load(Ordering::Relaxed),
            s.net_out.load(Ordering::Relaxed),
            s.rejected.load(Ordering::Relaxed),
            stats.expired,
            stats.evicted,
            stats.hits,
            stats.misses,
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
        if let Some(cl) = ctx.shared.cluster.get() {
            let v = cl.view();
            let _ = write!(
                t,
                "proxima_members:{}\r\nproxima_replication_factor:{}\r\nproxima_sync_replication:{}\r\nproxima_importing_ranges:{}\r\nproxima_exporting_ranges:{}\r\nproxima_majority:{}\r\nproxima_stale:{}\r\nproxima_nearness_measured:{}\r\n",
                v.nodes.len(),
                v.rf,
                u8::from(cl.sync),
                cl.importing(),
                cl.exporting(),
                u8::from(cl.has_majority()),
                u8::from(cl.is_stale()),
                cl.nearness_measured()
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

/// READONLY / READWRITE: whether replicas may answer this connection's reads (a proxied
/// plain client's reads then go to the nearest holder of the slot).
pub fn readonly(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ctx.conn.cl.readonly = eq_ic(args[0], "readonly");
    ctx.out.ok();
    Ok(())
}

/// ASKING: the next command runs here even if this node would redirect it.
pub fn asking(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.conn.cl.asking = true;
    ctx.conn.cl.aware = true;
    ctx.out.ok();
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

/// CLUSTER subcommands of a single node owning all 16384 slots.
pub fn cluster(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "cluster")?;
    let port = i64::from(ctx.shared.addr.port());
    let id = ctx.shared.node_id.clone();
    if let Some(cl) = ctx.shared.cluster.get() {
        let v = cl.view();
        match s.name {
            "cluster|info" => {
                ctx.out.verbatim(v.info_text(cl.has_majority()).as_bytes());
                return Ok(());
            }
            "cluster|myid" => {
                ctx.out.bulk(v.me().id.as_bytes());
                return Ok(());
            }
            "cluster|slots" => {
                ctx.conn.cl.aware = true;
                v.write_slots(ctx.out);
                return Ok(());
            }
            "cluster|shards" => {
                ctx.conn.cl.aware = true;
                v.write_shards(ctx.out);
                return Ok(());
            }
            "cluster|nodes" => {
                ctx.conn.cl.aware = true;
                ctx.out.verbatim(v.nodes_text().as_bytes());
                return Ok(());
            }
            _ => {}
        }
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

fn sub_reply(ctx: &mut Ctx<'_>, kind: &[u8], name: Option<&[u8]>, count: usize) {
    ctx.out.push(3);
    ctx.out.bulk(kind);
    match name {
        Some(n) => ctx.out.bulk(n),
        None => ctx.out.null(),
    }
    ctx.out.int(count as i64);
}

fn unsubscribe_all(ctx: &mut Ctx<'_>, pattern: bool, reply: bool) {
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
    if let Some(cl) = ctx.shared.cluster.get()
        && !ctx.conn.cl.apply
    {
        let mut b = bytes::BytesMut::new();
        crate::cluster::proto::command(&mut b, &[b"PUBLISH", args[1], args[2]]);
        let rec = crate::cluster::proto::Record::Publish(b.freeze());
        for l in cl.all_links() {
            l.push(rec.clone());
        }
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
    if let Some(cl) = ctx.shared.cluster.get()
        && !ctx.conn.cl.apply
    {
        let mut b = bytes::BytesMut::new();
        crate::cluster::proto::command(&mut b, &[b"SPUBLISH", args[1], args[2]]);
        let rec = crate::cluster::proto::Record::Publish(b.freeze());
        for l in cl.repl_targets(crate::slot::key_slot(args[1])) {
            l.push(rec.clone());
        }
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
                "HELP",
            ],
        ),
    }
    Ok(())
}

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
    let routed = std::mem::replace(&mut ctx.routed, true);
    for q in &queued {
        let v: Vec<&[u8]> = q.iter().map(Vec::as_slice).collect();
        crate::conn::execute(ctx, &v);
    }
    ctx.may_block = may_block;
    ctx.routed = routed;
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

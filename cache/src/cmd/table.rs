//! The static command table: what `COMMAND` reports (arity, flags, key positions, ACL
//! categories, subcommands) and the handler each name dispatches to.
//!
//! Arity and legacy key positions follow Redis 7.2 (`COMMAND INFO`); cluster clients route by
//! them. Commands whose keys follow a `numkeys` argument are flagged `movablekeys` and answered
//! by `COMMAND GETKEYS` through [`keys_of`].

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{
    CmdResult, Ctx, bits, clients, cluster, connection, geo, hash, hll, introspect, keys, lcs,
    list, pubsub, scripting, server, set, sort, stream, strings, transactions, zset,
};

/// Whether `cmd` writes or reaches other nodes' state (Redis's `may_replicate`: PUBLISH,
/// SPUBLISH, PFCOUNT, which this table does not flag): what `CLIENT PAUSE WRITE` holds back
/// and a read-only script may not run.
pub fn may_replicate(cmd: &Command) -> bool {
    cmd.flags
        .iter()
        .any(|f| matches!(*f, "write" | "may_replicate"))
        || matches!(cmd.name, "publish" | "spublish" | "pfcount")
}

/// The command a request runs: the subcommand `args[1]` names (`config|get`), else `cmd`.
pub fn effective(cmd: &'static Command, args: &[&[u8]]) -> &'static Command {
    if !cmd.subcommands.is_empty()
        && let Some(sub) = args.get(1).and_then(|a| lookup_sub(cmd, a))
    {
        return sub;
    }
    cmd
}

/// A command handler; `args[0]` is the command name as sent.
pub type Handler = fn(&mut Ctx<'_>, &[&[u8]]) -> CmdResult;

/// One command of the table.
#[derive(Debug)]
pub struct Command {
    /// Lowercase name (`config|get` for subcommands).
    pub name: &'static str,
    /// Redis arity: exact if positive, minimum if negative; counts the name.
    pub arity: i32,
    /// Flags (`write`, `readonly`, `denyoom`, `fast`, ...).
    pub flags: &'static [&'static str],
    /// First key position (0 = none).
    pub first: i32,
    /// Last key position (negative from the end).
    pub last: i32,
    /// Step between keys.
    pub step: i32,
    /// ACL categories.
    pub acl: &'static [&'static str],
    /// The handler.
    pub handler: Handler,
    /// Group for `COMMAND DOCS`.
    pub group: &'static str,
    /// Summary for `COMMAND DOCS`.
    pub summary: &'static str,
    /// Subcommands (reported by `COMMAND`; dispatch happens in the container's handler).
    pub subcommands: &'static [Command],
}

#[allow(clippy::too_many_arguments)]
const fn c(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    first: i32,
    last: i32,
    step: i32,
    acl: &'static [&'static str],
    handler: Handler,
    group: &'static str,
    summary: &'static str,
) -> Command {
    Command {
        name,
        arity,
        flags,
        first,
        last,
        step,
        acl,
        handler,
        group,
        summary,
        subcommands: &[],
    }
}

const fn with_subs(mut cmd: Command, subs: &'static [Command]) -> Command {
    cmd.subcommands = subs;
    cmd
}

// Flag sets.
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const WDM: &[&str] = &["write", "denyoom", "movablekeys"];
const WM: &[&str] = &["write", "movablekeys"];
const RM: &[&str] = &["readonly", "movablekeys"];
const BLK: &[&str] = &["write", "blocking"];
const BLKM: &[&str] = &["write", "blocking", "movablekeys"];
const BLKD: &[&str] = &["write", "denyoom", "blocking"];
const PS: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const TX: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];
const NONE: &[&str] = &[];

// ACL category sets.
const A_SR: &[&str] = &["@read", "@string", "@fast"];
const A_SW: &[&str] = &["@write", "@string", "@fast"];
const A_SWS: &[&str] = &["@write", "@string", "@slow"];
const A_SRS: &[&str] = &["@read", "@string", "@slow"];
const A_KR: &[&str] = &["@keyspace", "@read", "@fast"];
const A_KRS: &[&str] = &["@keyspace", "@read", "@slow", "@dangerous"];
const A_KW: &[&str] = &["@keyspace", "@write", "@fast"];
const A_KWS: &[&str] = &["@keyspace", "@write", "@slow"];
const A_HR: &[&str] = &["@read", "@hash", "@fast"];
const A_HRS: &[&str] = &["@read", "@hash", "@slow"];
const A_HW: &[&str] = &["@write", "@hash", "@fast"];
const A_LR: &[&str] = &["@read", "@list", "@fast"];
const A_LRS: &[&str] = &["@read", "@list", "@slow"];
const A_LW: &[&str] = &["@write", "@list", "@fast"];
const A_LWS: &[&str] = &["@write", "@list", "@slow"];
const A_LB: &[&str] = &["@write", "@list", "@slow", "@blocking"];
const A_ER: &[&str] = &["@read", "@set", "@fast"];
const A_ERS: &[&str] = &["@read", "@set", "@slow"];
const A_EW: &[&str] = &["@write", "@set", "@fast"];
const A_EWS: &[&str] = &["@write", "@set", "@slow"];
const A_ZR: &[&str] = &["@read", "@sortedset", "@fast"];
const A_ZRS: &[&str] = &["@read", "@sortedset", "@slow"];
const A_ZW: &[&str] = &["@write", "@sortedset", "@fast"];
const A_ZWS: &[&str] = &["@write", "@sortedset", "@slow"];
const A_ZB: &[&str] = &["@write", "@sortedset", "@fast", "@blocking"];
const A_PS: &[&str] = &["@pubsub", "@slow"];
const A_CONN: &[&str] = &["@fast", "@connection"];
const A_CONNS: &[&str] = &["@slow", "@connection"];
const A_ADMIN: &[&str] = &["@admin", "@slow", "@dangerous"];
const A_TX: &[&str] = &["@fast", "@transaction"];
const A_TXS: &[&str] = &["@slow", "@transaction"];
const A_SLOW: &[&str] = &["@slow"];
const A_BR: &[&str] = &["@read", "@bitmap", "@fast"];
const A_BRS: &[&str] = &["@read", "@bitmap", "@slow"];
const A_BW: &[&str] = &["@write", "@bitmap", "@slow"];
const A_GR: &[&str] = &["@read", "@geo", "@slow"];
const A_GW: &[&str] = &["@write", "@geo", "@slow"];

// Scripting (cmd/scripting.rs).
const SCRIPT_RUN: &[&str] = &[
    "noscript",
    "skip_monitor",
    "may_replicate",
    "no_mandatory_keys",
    "movablekeys",
];
const SCRIPT_RUN_RO: &[&str] = &[
    "noscript",
    "skip_monitor",
    "no_mandatory_keys",
    "movablekeys",
];
const A_SCRIPT: &[&str] = &["@slow", "@scripting"];

static SCRIPT_SUBS: &[Command] = &[
    c(
        "script|debug",
        3,
        &["noscript"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::script,
        "scripting",
        "Sets the debug mode of server-side Lua scripts.",
    ),
    c(
        "script|exists",
        -3,
        &["noscript"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::script,
        "scripting",
        "Determines whether server-side Lua scripts exist in the script cache.",
    ),
    c(
        "script|flush",
        -2,
        &["noscript"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::script,
        "scripting",
        "Removes all server-side Lua scripts from the script cache.",
    ),
    c(
        "script|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::script,
        "scripting",
        "Returns helpful text about the different subcommands.",
    ),
    c(
        "script|kill",
        2,
        &["noscript", "allow_busy"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::script,
        "scripting",
        "Terminates a server-side Lua script during execution.",
    ),
    c(
        "script|load",
        3,
        &["noscript", "stale"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::script,
        "scripting",
        "Loads a server-side Lua script to the script cache.",
    ),
];

static FUNCTION_SUBS: &[Command] = &[
    c(
        "function|delete",
        3,
        &["noscript", "write"],
        0,
        0,
        0,
        &["@write", "@slow", "@scripting"],
        scripting::function,
        "scripting",
        "Deletes a library and its functions.",
    ),
    c(
        "function|dump",
        2,
        &["noscript"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::function,
        "scripting",
        "Dumps all libraries into a serialized binary payload.",
    ),
    c(
        "function|flush",
        -2,
        &["noscript", "write"],
        0,
        0,
        0,
        &["@write", "@slow", "@scripting"],
        scripting::function,
        "scripting",
        "Deletes all libraries and functions.",
    ),
    c(
        "function|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::function,
        "scripting",
        "Returns helpful text about the different subcommands.",
    ),
    c(
        "function|kill",
        2,
        &["noscript", "allow_busy"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::function,
        "scripting",
        "Terminates a function during execution.",
    ),
    c(
        "function|list",
        -2,
        &["noscript"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::function,
        "scripting",
        "Returns information about all libraries.",
    ),
    c(
        "function|load",
        -3,
        &["noscript", "write", "denyoom"],
        0,
        0,
        0,
        &["@write", "@slow", "@scripting"],
        scripting::function,
        "scripting",
        "Creates a library.",
    ),
    c(
        "function|restore",
        -3,
        &["noscript", "write", "denyoom"],
        0,
        0,
        0,
        &["@write", "@slow", "@scripting"],
        scripting::function,
        "scripting",
        "Restores all libraries from a payload.",
    ),
    c(
        "function|stats",
        2,
        &["noscript", "allow_busy"],
        0,
        0,
        0,
        A_SCRIPT,
        scripting::function,
        "scripting",
        "Returns information about a function during execution.",
    ),
];

static CONFIG_SUBS: &[Command] = &[
    c(
        "config|get",
        -3,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        A_ADMIN,
        server::config,
        "server",
        "Returns the effective values of configuration parameters.",
    ),
    c(
        "config|set",
        -4,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        A_ADMIN,
        server::config,
        "server",
        "Sets configuration parameters in-flight.",
    ),
    c(
        "config|resetstat",
        2,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        A_ADMIN,
        server::config,
        "server",
        "Resets the server's statistics.",
    ),
    c(
        "config|rewrite",
        2,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        A_ADMIN,
        server::config,
        "server",
        "Persists the effective configuration to file.",
    ),
    c(
        "config|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        server::config,
        "server",
        "Returns helpful text about the different subcommands.",
    ),
];

// SLOWLOG and LATENCY subcommands (cmd/introspect.rs).
const ADM: &[&str] = &["admin", "noscript", "loading", "stale"];
#[rustfmt::skip]
static SLOWLOG_SUBS: &[Command] = &[
    c("slowlog|get", -2, &["admin", "loading", "stale"], 0, 0, 0, A_ADMIN, introspect::slowlog, "server", "Returns the slow log's entries."),
    c("slowlog|len", 2, &["admin", "loading", "stale"], 0, 0, 0, A_ADMIN, introspect::slowlog, "server", "Returns the number of entries in the slow log."),
    c("slowlog|reset", 2, &["admin", "loading", "stale"], 0, 0, 0, A_ADMIN, introspect::slowlog, "server", "Clears all entries from the slow log."),
    c("slowlog|help", 2, &["loading", "stale"], 0, 0, 0, A_SLOW, introspect::slowlog, "server", "Show helpful text about the different subcommands"),
];
#[rustfmt::skip]
static LATENCY_SUBS: &[Command] = &[
    c("latency|doctor", 2, ADM, 0, 0, 0, A_ADMIN, introspect::latency, "server", "Returns a human-readable latency analysis report."),
    c("latency|graph", 3, ADM, 0, 0, 0, A_ADMIN, introspect::latency, "server", "Returns a latency graph for an event."),
    c("latency|help", 2, &["loading", "stale"], 0, 0, 0, A_SLOW, introspect::latency, "server", "Returns helpful text about the different subcommands."),
    c("latency|histogram", -2, ADM, 0, 0, 0, A_ADMIN, introspect::latency, "server", "Returns the cumulative distribution of latencies of a subset or all commands."),
    c("latency|history", 3, ADM, 0, 0, 0, A_ADMIN, introspect::latency, "server", "Returns timestamp-latency samples for an event."),
    c("latency|latest", 2, ADM, 0, 0, 0, A_ADMIN, introspect::latency, "server", "Returns the latest latency samples for all events."),
    c("latency|reset", -2, ADM, 0, 0, 0, A_ADMIN, introspect::latency, "server", "Resets the latency data for one or more events."),
];
// End of SLOWLOG and LATENCY subcommands.

// ACL users (acl.rs).
const A_ACL: &[&str] = &["@admin", "@slow", "@dangerous"];
const F_ACL: &[&str] = &["admin", "noscript", "loading", "stale"];
const F_ACLS: &[&str] = &["noscript", "loading", "stale"];
static ACL_SUBS: &[Command] = &[
    c(
        "acl|cat",
        -2,
        F_ACLS,
        0,
        0,
        0,
        A_SLOW,
        crate::acl::acl,
        "server",
        "Lists the ACL categories, or the commands inside a category.",
    ),
    c(
        "acl|deluser",
        -3,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Deletes ACL users, and terminates their connections.",
    ),
    c(
        "acl|dryrun",
        -4,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Simulates the execution of a command by a user, without executing the command.",
    ),
    c(
        "acl|genpass",
        -2,
        F_ACLS,
        0,
        0,
        0,
        A_SLOW,
        crate::acl::acl,
        "server",
        "Generates a pseudorandom, secure password that can be used to identify ACL users.",
    ),
    c(
        "acl|getuser",
        3,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Lists the ACL rules of a user.",
    ),
    c(
        "acl|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        crate::acl::acl,
        "server",
        "Returns helpful text about the different subcommands.",
    ),
    c(
        "acl|list",
        2,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Dumps the effective rules in ACL file format.",
    ),
    c(
        "acl|load",
        2,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Reloads the rules from the configured ACL file.",
    ),
    c(
        "acl|log",
        -2,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Lists recent security events generated due to ACL rules.",
    ),
    c(
        "acl|save",
        2,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Saves the effective ACL rules in the configured ACL file.",
    ),
    c(
        "acl|setuser",
        -3,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Creates and modifies an ACL user and its rules.",
    ),
    c(
        "acl|users",
        2,
        F_ACL,
        0,
        0,
        0,
        A_ACL,
        crate::acl::acl,
        "server",
        "Lists all ACL users.",
    ),
    c(
        "acl|whoami",
        2,
        F_ACLS,
        0,
        0,
        0,
        A_SLOW,
        crate::acl::acl,
        "server",
        "Returns the authenticated username of the current connection.",
    ),
];

static CLIENT_SUBS: &[Command] = &[
    // Client-side caching (tracking.rs).
    c(
        "client|tracking",
        -3,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Controls server-assisted client-side caching for the connection.",
    ),
    c(
        "client|caching",
        3,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Instructs the server whether to track the keys in the next request.",
    ),
    c(
        "client|getredir",
        2,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Returns the client ID to which the connection's tracking notifications are redirected.",
    ),
    c(
        "client|trackinginfo",
        2,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Returns information about server-assisted client-side caching for the connection.",
    ),
    c(
        "client|id",
        2,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Returns the unique client ID of the connection.",
    ),
    c(
        "client|getname",
        2,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Returns the name of the connection.",
    ),
    c(
        "client|setname",
        3,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Sets the connection name.",
    ),
    c(
        "client|setinfo",
        4,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Sets information specific to the client or connection.",
    ),
    c(
        "client|info",
        2,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Returns information about the connection.",
    ),
    c(
        "client|list",
        -2,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        &["@admin", "@slow", "@dangerous", "@connection"],
        connection::client,
        "connection",
        "Lists open connections.",
    ),
    c(
        "client|kill",
        -3,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        &["@admin", "@slow", "@dangerous", "@connection"],
        connection::client,
        "connection",
        "Terminates open connections.",
    ),
    c(
        "client|no-evict",
        3,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        &["@admin", "@slow", "@dangerous", "@connection"],
        connection::client,
        "connection",
        "Sets the client eviction mode of the connection.",
    ),
    // CLIENT REPLY, UNBLOCK, PAUSE and UNPAUSE (cmd/clients.rs)
    c(
        "client|pause",
        -3,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        &["@admin", "@slow", "@dangerous", "@connection"],
        connection::client,
        "connection",
        "Suspends commands processing.",
    ),
    c(
        "client|unpause",
        2,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        &["@admin", "@slow", "@dangerous", "@connection"],
        connection::client,
        "connection",
        "Resumes processing commands from paused clients.",
    ),
    c(
        "client|unblock",
        -3,
        &["admin", "noscript", "loading", "stale"],
        0,
        0,
        0,
        &["@admin", "@slow", "@dangerous", "@connection"],
        connection::client,
        "connection",
        "Unblocks a client blocked by a blocking command from a different connection.",
    ),
    c(
        "client|reply",
        3,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Instructs the server whether to reply to commands.",
    ),
    c(
        "client|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        connection::client,
        "connection",
        "Returns helpful text about the different subcommands.",
    ),
];

static CLUSTER_SUBS: &[Command] = &[
    c(
        "cluster|info",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns information about the state of a node.",
    ),
    c(
        "cluster|slots",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns the mapping of cluster slots to nodes.",
    ),
    c(
        "cluster|shards",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns the mapping of cluster slots to shards.",
    ),
    c(
        "cluster|nodes",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns the cluster configuration for a node.",
    ),
    c(
        "cluster|keyslot",
        3,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns the hash slot for a key.",
    ),
    c(
        "cluster|myid",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns the ID of a node.",
    ),
    c(
        "cluster|countkeysinslot",
        3,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns the number of keys in a hash slot.",
    ),
    c(
        "cluster|getkeysinslot",
        4,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns the key names in a hash slot.",
    ),
    c(
        "cluster|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        cluster::cluster,
        "cluster",
        "Returns helpful text about the different subcommands.",
    ),
    c(
        "cluster|reset",
        -2,
        &["admin", "stale", "noscript"],
        0,
        0,
        0,
        A_ADMIN,
        cluster::cluster,
        "cluster",
        "Resets a node.",
    ),
];

static COMMAND_SUBS: &[Command] = &[
    c(
        "command|count",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@slow", "@connection"],
        server::command,
        "server",
        "Returns a count of commands.",
    ),
    c(
        "command|info",
        -2,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@slow", "@connection"],
        server::command,
        "server",
        "Returns information about one, multiple or all commands.",
    ),
    c(
        "command|docs",
        -2,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@slow", "@connection"],
        server::command,
        "server",
        "Returns documentary information about one, multiple or all commands.",
    ),
    c(
        "command|getkeys",
        -3,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@slow", "@connection"],
        server::command,
        "server",
        "Extracts the key names from an arbitrary command.",
    ),
    c(
        "command|list",
        -2,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@slow", "@connection"],
        server::command,
        "server",
        "Returns a list of command names.",
    ),
    c(
        "command|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@slow", "@connection"],
        server::command,
        "server",
        "Returns helpful text about the different subcommands.",
    ),
];

static PUBSUB_SUBS: &[Command] = &[
    // Shard channels (pubsub.rs).
    c(
        "pubsub|shardchannels",
        -2,
        PS,
        0,
        0,
        0,
        A_PS,
        pubsub::pubsub,
        "pubsub",
        "Returns the active shard channels.",
    ),
    c(
        "pubsub|shardnumsub",
        -2,
        PS,
        0,
        0,
        0,
        A_PS,
        pubsub::pubsub,
        "pubsub",
        "Returns the count of subscribers of shard channels.",
    ),
    c(
        "pubsub|channels",
        -2,
        PS,
        0,
        0,
        0,
        A_PS,
        pubsub::pubsub,
        "pubsub",
        "Returns the active channels.",
    ),
    c(
        "pubsub|numsub",
        -2,
        PS,
        0,
        0,
        0,
        A_PS,
        pubsub::pubsub,
        "pubsub",
        "Returns a count of subscribers to channels.",
    ),
    c(
        "pubsub|numpat",
        2,
        PS,
        0,
        0,
        0,
        A_PS,
        pubsub::pubsub,
        "pubsub",
        "Returns a count of unique pattern subscriptions.",
    ),
    c(
        "pubsub|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        pubsub::pubsub,
        "pubsub",
        "Returns helpful text about the different subcommands.",
    ),
];

static OBJECT_SUBS: &[Command] = &[
    c(
        "object|encoding",
        3,
        R,
        2,
        2,
        1,
        A_KRS,
        keys::object,
        "generic",
        "Returns the internal encoding of a Redis object.",
    ),
    c(
        "object|freq",
        3,
        R,
        2,
        2,
        1,
        A_KRS,
        keys::object,
        "generic",
        "Returns the logarithmic access frequency counter of a Redis object.",
    ),
    c(
        "object|idletime",
        3,
        R,
        2,
        2,
        1,
        A_KRS,
        keys::object,
        "generic",
        "Returns the time since the last access to a Redis object.",
    ),
    c(
        "object|refcount",
        3,
        R,
        2,
        2,
        1,
        A_KRS,
        keys::object,
        "generic",
        "Returns the reference count of a value of a key.",
    ),
    c(
        "object|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@keyspace", "@slow"],
        keys::object,
        "generic",
        "Returns helpful text about the different subcommands.",
    ),
];

static MEMORY_SUBS: &[Command] = &[
    c(
        "memory|usage",
        -3,
        R,
        2,
        2,
        1,
        &["@read", "@slow"],
        server::memory,
        "server",
        "Estimates the memory usage of a key.",
    ),
    c(
        "memory|stats",
        2,
        NONE,
        0,
        0,
        0,
        A_SLOW,
        server::memory,
        "server",
        "Returns details about memory usage.",
    ),
    c(
        "memory|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_SLOW,
        server::memory,
        "server",
        "Returns helpful text about the different subcommands.",
    ),
];

/// Every top-level command.
#[rustfmt::skip]
pub static COMMANDS: &[Command] = &[
    // strings
    c("get", 2, RF, 1, 1, 1, A_SR, strings::get, "string", "Returns the string value of a key."),
    c("set", -3, WD, 1, 1, 1, A_SWS, strings::set, "string", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    c("setnx", 3, WDF, 1, 1, 1, A_SW, strings::setnx, "string", "Set the string value of a key only when the key doesn't exist."),
    c("setex", 4, WD, 1, 1, 1, A_SWS, strings::setex, "string", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    c("psetex", 4, WD, 1, 1, 1, A_SWS, strings::setex, "string", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    c("getset", 3, WDF, 1, 1, 1, A_SW, strings::getset, "string", "Returns the previous string value of a key after setting it to a new value."),
    c("getdel", 2, WF, 1, 1, 1, A_SW, strings::getdel, "string", "Returns the string value of a key after deleting the key."),
    c("getex", -2, WF, 1, 1, 1, A_SW, strings::getex, "string", "Returns the string value of a key after setting its expiration time."),
    c("mget", -2, RF, 1, -1, 1, A_SR, strings::mget, "string", "Atomically returns the string values of one or more keys."),
    c("mset", -3, WD, 1, -1, 2, A_SWS, strings::mset, "string", "Atomically creates or modifies the string values of one or more keys."),
    c("msetnx", -3, WD, 1, -1, 2, A_SWS, strings::msetnx, "string", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    c("append", 3, WDF, 1, 1, 1, A_SW, strings::append, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    c("strlen", 2, RF, 1, 1, 1, A_SR, strings::strlen, "string", "Returns the length of a string value."),
    c("getrange", 4, R, 1, 1, 1, A_SRS, strings::getrange, "string", "Returns a substring of the string stored at a key."),
    c("substr", 4, R, 1, 1, 1, A_SRS, strings::getrange, "string", "Returns a substring from a string value."),
    c("setrange", 4, WD, 1, 1, 1, A_SWS, strings::setrange, "string", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    c("incr", 2, WDF, 1, 1, 1, A_SW, strings::incr, "string", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    c("decr", 2, WDF, 1, 1, 1, A_SW, strings::incr, "string", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    c("incrby", 3, WDF, 1, 1, 1, A_SW, strings::incr, "string", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    c("decrby", 3, WDF, 1, 1, 1, A_SW, strings::incr, "string", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    c("incrbyfloat", 3, WDF, 1, 1, 1, A_SW, strings::incrbyfloat, "string", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    // keys
    c("del", -2, W, 1, -1, 1, A_KWS, keys::del, "generic", "Deletes one or more keys."),
    c("unlink", -2, WF, 1, -1, 1, A_KW, keys::del, "generic", "Asynchronously deletes one or more keys."),
    c("exists", -2, RF, 1, -1, 1, A_KR, keys::exists, "generic", "Determines whether one or more keys exist."),
    c("touch", -2, RF, 1, -1, 1, A_KR, keys::exists, "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    c("expire", -3, WF, 1, 1, 1, A_KW, keys::expire, "generic", "Sets the expiration time of a key in seconds."),
    c("pexpire", -3, WF, 1, 1, 1, A_KW, keys::expire, "generic", "Sets the expiration time of a key in milliseconds."),
    c("expireat", -3, WF, 1, 1, 1, A_KW, keys::expire, "generic", "Sets the expiration time of a key to a Unix timestamp."),
    c("pexpireat", -3, WF, 1, 1, 1, A_KW, keys::expire, "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    c("ttl", 2, RF, 1, 1, 1, A_KR, keys::ttl, "generic", "Returns the expiration time in seconds of a key."),
    c("pttl", 2, RF, 1, 1, 1, A_KR, keys::ttl, "generic", "Returns the expiration time in milliseconds of a key."),
    c("expiretime", 2, RF, 1, 1, 1, A_KR, keys::ttl, "generic", "Returns the expiration time of a key as a Unix timestamp."),
    c("pexpiretime", 2, RF, 1, 1, 1, A_KR, keys::ttl, "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    c("persist", 2, WF, 1, 1, 1, A_KW, keys::persist, "generic", "Removes the expiration time of a key."),
    c("type", 2, RF, 1, 1, 1, A_KR, keys::type_, "generic", "Determines the type of value stored at a key."),
    c("rename", 3, W, 1, 2, 1, A_KWS, keys::rename, "generic", "Renames a key and overwrites the destination."),
    c("renamenx", 3, WF, 1, 2, 1, A_KW, keys::rename, "generic", "Renames a key only when the target key name doesn't exist."),
    c("copy", -3, WD, 1, 2, 1, A_KWS, keys::copy, "generic", "Copies the value of a key to a new key."),
    c("keys", 2, R, 0, 0, 0, A_KRS, keys::keys, "generic", "Returns all key names that match a pattern."),
    c("scan", -2, R, 0, 0, 0, &["@keyspace", "@read", "@slow"], keys::scan, "generic", "Iterates over the key names in the database."),
    c("randomkey", 1, R, 0, 0, 0, &["@keyspace", "@read", "@slow"], keys::randomkey, "generic", "Returns a random key name from the database."),
    // keys engineer: DUMP / RESTORE (Redis 7.0 COMMAND INFO)
    c("dump", 2, R, 1, 1, 1, &["@keyspace", "@read", "@slow"], keys::dump, "generic", "Returns a serialized representation of the value stored at a key."),
    c("restore", -4, WD, 1, 1, 1, &["@keyspace", "@write", "@slow", "@dangerous"], keys::restore, "generic", "Creates a key from the serialized representation of a value."),
    // end keys engineer block
    with_subs(c("object", -2, NONE, 0, 0, 0, A_SLOW, keys::object, "generic", "A container for object introspection commands."), OBJECT_SUBS),
    c("dbsize", 1, RF, 0, 0, 0, &["@keyspace", "@read", "@fast"], keys::dbsize, "server", "Returns the number of keys in the database."),
    c("flushdb", -1, W, 0, 0, 0, &["@keyspace", "@write", "@slow", "@dangerous"], keys::flush, "server", "Remove all keys from the current database."),
    c("flushall", -1, W, 0, 0, 0, &["@keyspace", "@write", "@slow", "@dangerous"], keys::flush, "server", "Removes all keys from all databases."),
    // hashes
    c("hset", -4, WDF, 1, 1, 1, A_HW, hash::hset, "hash", "Creates or modifies the value of a field in a hash."),
    c("hmset", -4, WDF, 1, 1, 1, A_HW, hash::hset, "hash", "Sets the values of multiple fields."),
    c("hsetnx", 4, WDF, 1, 1, 1, A_HW, hash::hsetnx, "hash", "Sets the value of a field in a hash only when the field doesn't exist."),
    c("hget", 3, RF, 1, 1, 1, A_HR, hash::hget, "hash", "Returns the value of a field in a hash."),
    c("hmget", -3, RF, 1, 1, 1, A_HR, hash::hmget, "hash", "Returns the values of all fields in a hash."),
    c("hdel", -3, WF, 1, 1, 1, A_HW, hash::hdel, "hash", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    c("hlen", 2, RF, 1, 1, 1, A_HR, hash::hlen, "hash", "Returns the number of fields in a hash."),
    c("hstrlen", 3, RF, 1, 1, 1, A_HR, hash::hstrlen, "hash", "Returns the length of the value of a field."),
    c("hexists", 3, RF, 1, 1, 1, A_HR, hash::hexists, "hash", "Determines whether a field exists in a hash."),
    c("hkeys", 2, R, 1, 1, 1, A_HRS, hash::hgetall, "hash", "Returns all fields in a hash."),
    c("hvals", 2, R, 1, 1, 1, A_HRS, hash::hgetall, "hash", "Returns all values in a hash."),
    c("hgetall", 2, R, 1, 1, 1, A_HRS, hash::hgetall, "hash", "Returns all fields and values in a hash."),
    c("hincrby", 4, WDF, 1, 1, 1, A_HW, hash::hincrby, "hash", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    c("hincrbyfloat", 4, WDF, 1, 1, 1, A_HW, hash::hincrbyfloat, "hash", "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."),
    c("hrandfield", -2, R, 1, 1, 1, A_HRS, hash::hrandfield, "hash", "Returns one or more random fields from a hash."),
    c("hscan", -3, R, 1, 1, 1, A_HRS, hash::hscan, "hash", "Iterates over fields and values of a hash."),
    // lists
    c("lpush", -3, WDF, 1, 1, 1, A_LW, list::push, "list", "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    c("rpush", -3, WDF, 1, 1, 1, A_LW, list::push, "list", "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    c("lpushx", -3, WDF, 1, 1, 1, A_LW, list::push, "list", "Prepends one or more elements to a list only when the list exists."),
    c("rpushx", -3, WDF, 1, 1, 1, A_LW, list::push, "list", "Appends an element to a list only when the list exists."),
    c("lpop", -2, WF, 1, 1, 1, A_LW, list::pop, "list", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    c("rpop", -2, WF, 1, 1, 1, A_LW, list::pop, "list", "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    c("llen", 2, RF, 1, 1, 1, A_LR, list::llen, "list", "Returns the length of a list."),
    c("lrange", 4, R, 1, 1, 1, A_LRS, list::lrange, "list", "Returns a range of elements from a list."),
    c("lindex", 3, R, 1, 1, 1, A_LRS, list::lindex, "list", "Returns an element from a list by its index."),
    c("lset", 4, WD, 1, 1, 1, A_LWS, list::lset, "list", "Sets the value of an element in a list by its index."),
    c("linsert", 5, WD, 1, 1, 1, A_LWS, list::linsert, "list", "Inserts an element before or after another element in a list."),
    c("lrem", 4, W, 1, 1, 1, A_LWS, list::lrem, "list", "Removes elements from a list. Deletes the list if the last element was removed."),
    c("ltrim", 4, W, 1, 1, 1, A_LWS, list::ltrim, "list", "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    c("lpos", -3, R, 1, 1, 1, A_LRS, list::lpos, "list", "Returns the index of matching elements in a list."),
    c("lmove", 5, WD, 1, 2, 1, A_LWS, list::lmove, "list", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    c("rpoplpush", 3, WD, 1, 2, 1, A_LWS, list::lmove, "list", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    c("blpop", -3, BLK, 1, -2, 1, A_LB, list::bpop, "list", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    c("brpop", -3, BLK, 1, -2, 1, A_LB, list::bpop, "list", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    c("blmove", 6, BLKD, 1, 2, 1, A_LB, list::lmove, "list", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    c("brpoplpush", 4, BLKD, 1, 2, 1, A_LB, list::lmove, "list", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    c("lmpop", -4, WM, 0, 0, 0, A_LWS, list::lmpop, "list", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."),
    c("blmpop", -5, BLKM, 0, 0, 0, A_LB, list::lmpop, "list", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    // sets
    c("sadd", -3, WDF, 1, 1, 1, A_EW, set::sadd, "set", "Adds one or more members to a set. Creates the key if it doesn't exist."),
    c("srem", -3, WF, 1, 1, 1, A_EW, set::srem, "set", "Removes one or more members from a set. Deletes the set if the last member was removed."),
    c("smembers", 2, R, 1, 1, 1, A_ERS, set::smembers, "set", "Returns all members of a set."),
    c("sismember", 3, RF, 1, 1, 1, A_ER, set::sismember, "set", "Determines whether a member belongs to a set."),
    c("smismember", -3, RF, 1, 1, 1, A_ER, set::smismember, "set", "Determines whether multiple members belong to a set."),
    c("scard", 2, RF, 1, 1, 1, A_ER, set::scard, "set", "Returns the number of members in a set."),
    c("spop", -2, WF, 1, 1, 1, A_EW, set::spop, "set", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    c("srandmember", -2, R, 1, 1, 1, A_ERS, set::srandmember, "set", "Get one or multiple random members from a set"),
    c("smove", 4, WF, 1, 2, 1, A_EW, set::smove, "set", "Moves a member from one set to another."),
    c("sinter", -2, R, 1, -1, 1, A_ERS, set::setop, "set", "Returns the intersect of multiple sets."),
    c("sinterstore", -3, WD, 1, -1, 1, A_EWS, set::setop, "set", "Stores the intersect of multiple sets in a key."),
    c("sunion", -2, R, 1, -1, 1, A_ERS, set::setop, "set", "Returns the union of multiple sets."),
    c("sunionstore", -3, WD, 1, -1, 1, A_EWS, set::setop, "set", "Stores the union of multiple sets in a key."),
    c("sdiff", -2, R, 1, -1, 1, A_ERS, set::setop, "set", "Returns the difference of multiple sets."),
    c("sdiffstore", -3, WD, 1, -1, 1, A_EWS, set::setop, "set", "Stores the difference of multiple sets in a key."),
    c("sintercard", -3, RM, 0, 0, 0, A_ERS, set::sintercard, "set", "Returns the number of members of the intersect of multiple sets."),
    c("sscan", -3, R, 1, 1, 1, A_ERS, set::sscan, "set", "Iterates over members of a set."),
    // sorted sets
    // Sorted sets: arity, flags, key positions and ACL categories as Redis 7.0.15's COMMAND.
    c("zadd", -4, WDF, 1, 1, 1, A_ZW, zset::zadd, "sorted_set", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."),
    c("zincrby", 4, WDF, 1, 1, 1, A_ZW, zset::zincrby, "sorted_set", "Increments the score of a member in a sorted set."),
    c("zscore", 3, RF, 1, 1, 1, A_ZR, zset::zscore, "sorted_set", "Returns the score of a member in a sorted set."),
    c("zmscore", -3, RF, 1, 1, 1, A_ZR, zset::zmscore, "sorted_set", "Returns the score of one or more members in a sorted set."),
    c("zrem", -3, WF, 1, 1, 1, A_ZW, zset::zrem, "sorted_set", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed."),
    c("zcard", 2, RF, 1, 1, 1, A_ZR, zset::zcard, "sorted_set", "Returns the number of members in a sorted set."),
    c("zcount", 4, RF, 1, 1, 1, A_ZR, zset::zcount, "sorted_set", "Returns the count of members in a sorted set that have scores within a range."),
    c("zlexcount", 4, RF, 1, 1, 1, A_ZR, zset::zlexcount, "sorted_set", "Returns the number of members in a sorted set within a lexicographical range."),
    c("zrange", -4, R, 1, 1, 1, A_ZRS, zset::zrange, "sorted_set", "Returns members in a sorted set within a range of indexes."),
    c("zrangestore", -5, WD, 1, 2, 1, A_ZWS, zset::zrange, "sorted_set", "Stores a range of members from sorted set in a key."),
    c("zrevrange", -4, R, 1, 1, 1, A_ZRS, zset::zrange, "sorted_set", "Returns members in a sorted set within a range of indexes in reverse order."),
    c("zrangebyscore", -4, R, 1, 1, 1, A_ZRS, zset::zrange, "sorted_set", "Returns members in a sorted set within a range of scores."),
    c("zrevrangebyscore", -4, R, 1, 1, 1, A_ZRS, zset::zrange, "sorted_set", "Returns members in a sorted set within a range of scores in reverse order."),
    c("zrangebylex", -4, R, 1, 1, 1, A_ZRS, zset::zrange, "sorted_set", "Returns members in a sorted set within a lexicographical range."),
    c("zrevrangebylex", -4, R, 1, 1, 1, A_ZRS, zset::zrange, "sorted_set", "Returns members in a sorted set within a lexicographical range in reverse order."),
    c("zrank", 3, RF, 1, 1, 1, A_ZR, zset::zrank, "sorted_set", "Returns the index of a member in a sorted set ordered by ascending scores."),
    c("zrevrank", 3, RF, 1, 1, 1, A_ZR, zset::zrank, "sorted_set", "Returns the index of a member in a sorted set ordered by descending scores."),
    c("zpopmin", -2, WF, 1, 1, 1, A_ZW, zset::zpop, "sorted_set", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    c("zpopmax", -2, WF, 1, 1, 1, A_ZW, zset::zpop, "sorted_set", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    c("bzpopmin", -3, &["write", "noscript", "fast", "blocking"], 1, -2, 1, A_ZB, zset::bzpop, "sorted_set", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    c("bzpopmax", -3, &["write", "noscript", "fast", "blocking"], 1, -2, 1, A_ZB, zset::bzpop, "sorted_set", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    c("zmpop", -4, WM, 0, 0, 0, A_ZWS, zset::zmpop, "sorted_set", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped."),
    c("bzmpop", -5, BLKM, 0, 0, 0, &["@write", "@sortedset", "@slow", "@blocking"], zset::zmpop, "sorted_set", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    c("zremrangebyrank", 4, W, 1, 1, 1, A_ZWS, zset::zremrange, "sorted_set", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."),
    c("zremrangebyscore", 4, W, 1, 1, 1, A_ZWS, zset::zremrange, "sorted_set", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."),
    c("zremrangebylex", 4, W, 1, 1, 1, A_ZWS, zset::zremrange, "sorted_set", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."),
    c("zrandmember", -2, R, 1, 1, 1, A_ZRS, zset::zrandmember, "sorted_set", "Returns one or more random members from a sorted set."),
    c("zscan", -3, R, 1, 1, 1, A_ZRS, keys::collection_scan, "sorted_set", "Iterates over members and scores of a sorted set."),
    c("zunionstore", -4, WDM, 1, 1, 1, A_ZWS, zset::zsetop, "sorted_set", "Stores the union of multiple sorted sets in a key."),
    c("zinterstore", -4, WDM, 1, 1, 1, A_ZWS, zset::zsetop, "sorted_set", "Stores the intersect of multiple sorted sets in a key."),
    c("zdiffstore", -4, WDM, 1, 1, 1, A_ZWS, zset::zsetop, "sorted_set", "Stores the difference of multiple sorted sets in a key."),
    c("zunion", -3, RM, 0, 0, 0, A_ZRS, zset::zsetop, "sorted_set", "Returns the union of multiple sorted sets."),
    c("zinter", -3, RM, 0, 0, 0, A_ZRS, zset::zsetop, "sorted_set", "Returns the intersect of multiple sorted sets."),
    c("zintercard", -3, RM, 0, 0, 0, A_ZRS, zset::zsetop, "sorted_set", "Returns the number of members of the intersect of multiple sorted sets."),
    c("zdiff", -3, RM, 0, 0, 0, A_ZRS, zset::zsetop, "sorted_set", "Returns the difference between multiple sorted sets."),
    // End of sorted sets.
    // pub/sub
    c("subscribe", -2, PS, 0, 0, 0, A_PS, pubsub::subscribe, "pubsub", "Listens for messages published to channels."),
    c("unsubscribe", -1, PS, 0, 0, 0, A_PS, pubsub::subscribe, "pubsub", "Stops listening to messages posted to channels."),
    c("psubscribe", -2, PS, 0, 0, 0, A_PS, pubsub::subscribe, "pubsub", "Listens for messages published to channels that match one or more patterns."),
    c("punsubscribe", -1, PS, 0, 0, 0, A_PS, pubsub::subscribe, "pubsub", "Stops listening to messages published to channels that match one or more patterns."),
    c("ssubscribe", -2, PS, 1, -1, 1, A_PS, pubsub::ssubscribe, "pubsub", "Listens for messages published to shard channels."),
    c("sunsubscribe", -1, PS, 1, -1, 1, A_PS, pubsub::ssubscribe, "pubsub", "Stops listening to messages posted to shard channels."),
    c("spublish", 3, &["pubsub", "loading", "stale", "fast"], 1, 1, 1, &["@pubsub", "@fast"], pubsub::spublish, "pubsub", "Post a message to a shard channel"),
    c("publish", 3, &["pubsub", "loading", "stale", "fast"], 0, 0, 0, &["@pubsub", "@fast"], pubsub::publish, "pubsub", "Posts a message to a channel."),
    with_subs(c("pubsub", -2, NONE, 0, 0, 0, A_SLOW, pubsub::pubsub, "pubsub", "A container for Pub/Sub commands."), PUBSUB_SUBS),
    // transactions
    c("multi", 1, TX, 0, 0, 0, A_TX, transactions::multi, "transactions", "Starts a transaction."),
    c("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], 0, 0, 0, A_TXS, transactions::exec, "transactions", "Executes all commands in a transaction."),
    c("discard", 1, TX, 0, 0, 0, A_TX, transactions::discard, "transactions", "Discards a transaction."),
    c("watch", -2, TX, 1, -1, 1, A_TX, transactions::watch, "transactions", "Monitors changes to keys to determine the execution of a transaction."),
    c("unwatch", 1, TX, 0, 0, 0, A_TX, transactions::unwatch, "transactions", "Forgets about watched keys of a transaction."),
    // scripting (cmd/scripting.rs)
    c("eval", -3, SCRIPT_RUN, 0, 0, 0, A_SCRIPT, scripting::eval, "scripting", "Executes a server-side Lua script."),
    c("evalsha", -3, SCRIPT_RUN, 0, 0, 0, A_SCRIPT, scripting::evalsha, "scripting", "Executes a server-side Lua script by SHA1 digest."),
    c("eval_ro", -3, SCRIPT_RUN_RO, 0, 0, 0, A_SCRIPT, scripting::eval, "scripting", "Executes a read-only server-side Lua script."),
    c("evalsha_ro", -3, SCRIPT_RUN_RO, 0, 0, 0, A_SCRIPT, scripting::evalsha, "scripting", "Executes a read-only server-side Lua script by SHA1 digest."),
    c("fcall", -3, SCRIPT_RUN, 0, 0, 0, A_SCRIPT, scripting::fcall, "scripting", "Invokes a function."),
    c("fcall_ro", -3, SCRIPT_RUN_RO, 0, 0, 0, A_SCRIPT, scripting::fcall, "scripting", "Invokes a read-only function."),
    with_subs(c("script", -2, NONE, 0, 0, 0, A_SLOW, scripting::script, "scripting", "A container for Lua scripts management commands."), SCRIPT_SUBS),
    with_subs(c("function", -2, NONE, 0, 0, 0, A_SLOW, scripting::function, "scripting", "A container for function commands."), FUNCTION_SUBS),
    // connection and server
    c("ping", -1, &["fast"], 0, 0, 0, A_CONN, connection::ping, "connection", "Returns the server's liveliness response."),
    c("echo", 2, &["fast"], 0, 0, 0, A_CONN, connection::echo, "connection", "Returns the given string."),
    c("select", 2, &["loading", "stale", "fast"], 0, 0, 0, A_CONN, connection::select, "connection", "Changes the selected database."),
    c("quit", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, A_CONN, connection::quit, "connection", "Closes the connection."),
    c("reset", 1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, A_CONN, connection::reset, "connection", "Resets the connection."),
    c("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, A_CONN, connection::auth, "connection", "Authenticates the connection."),
    c("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, A_CONN, connection::hello, "connection", "Handshakes with the Redis server."),
    with_subs(c("client", -2, NONE, 0, 0, 0, A_SLOW, connection::client, "connection", "A container for client connection commands."), CLIENT_SUBS),
    with_subs(c("acl", -2, NONE, 0, 0, 0, A_SLOW, crate::acl::acl, "server", "A container for Access List Control commands."), ACL_SUBS),
    with_subs(c("command", -1, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], server::command, "server", "Returns detailed information about all commands."), COMMAND_SUBS),
    with_subs(c("config", -2, NONE, 0, 0, 0, A_SLOW, server::config, "server", "A container for server configuration commands."), CONFIG_SUBS),
    with_subs(c("cluster", -2, NONE, 0, 0, 0, A_SLOW, cluster::cluster, "cluster", "A container for Redis Cluster commands."), CLUSTER_SUBS),
    with_subs(c("memory", -2, NONE, 0, 0, 0, A_SLOW, server::memory, "server", "A container for memory diagnostics commands."), MEMORY_SUBS),
    // SLOWLOG and LATENCY (cmd/introspect.rs), MONITOR and SHUTDOWN (cmd/clients.rs)
    c("monitor", 1, &["admin", "noscript", "loading", "stale"], 0, 0, 0, A_ADMIN, clients::monitor, "server", "Listens for all requests received by the server in real-time."),
    c("shutdown", -1, &["admin", "noscript", "loading", "stale", "no_multi", "allow_busy"], 0, 0, 0, A_ADMIN, clients::shutdown, "server", "Synchronously saves the database(s) to disk and shuts down the Redis server."),
    with_subs(c("slowlog", -2, NONE, 0, 0, 0, A_SLOW, introspect::slowlog, "server", "A container for slow log commands."), SLOWLOG_SUBS),
    with_subs(c("latency", -2, NONE, 0, 0, 0, A_SLOW, introspect::latency, "server", "A container for latency diagnostics commands."), LATENCY_SUBS),
    // End of SLOWLOG and LATENCY.
    c("info", -1, &["loading", "stale"], 0, 0, 0, &["@slow", "@dangerous"], server::info, "server", "Returns information and statistics about the server."),
    c("time", 1, &["loading", "stale", "fast"], 0, 0, 0, &["@fast"], server::time, "server", "Returns the server time."),
    c("lastsave", 1, &["loading", "stale", "fast"], 0, 0, 0, &["@fast", "@admin", "@dangerous"], server::lastsave, "server", "Returns the Unix timestamp of the last successful save to disk."),
    c("role", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0, &["@admin", "@fast", "@dangerous"], server::role, "server", "Returns the replication role."),
    c("readonly", 1, &["loading", "stale", "fast"], 0, 0, 0, A_CONN, cluster::readonly, "cluster", "Enables read-only queries for a connection to a Redis Cluster replica node."),
    c("asking", 1, &["fast"], 0, 0, 0, A_CONN, cluster::asking, "cluster", "Signals that a cluster client is following an -ASK redirect."),
    c("readwrite", 1, &["loading", "stale", "fast"], 0, 0, 0, A_CONN, cluster::readonly, "cluster", "Enables read-write queries for a connection to a Reids Cluster replica node."),
    c("save", 1, &["admin", "noscript", "no_async_loading", "no_multi"], 0, 0, 0, A_ADMIN, server::save, "server", "Synchronously saves the database(s) to disk."),
    c("bgsave", -1, &["admin", "noscript", "no_async_loading"], 0, 0, 0, A_ADMIN, server::save, "server", "Asynchronously saves the database(s) to disk."),
    c("wait", 3, &["noscript"], 0, 0, 0, &["@slow", "@connection"], server::wait, "generic", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."),
    // Streams (cmd/stream.rs).
    c("xadd", -5, WDF, 1, 1, 1, A_XWF, stream::xadd, "stream", "Appends a new entry to a stream"),
    c("xrange", -4, R, 1, 1, 1, A_XRS, stream::xrange, "stream", "Return a range of elements in a stream, with IDs matching the specified IDs interval"),
    c("xrevrange", -4, R, 1, 1, 1, A_XRS, stream::xrange, "stream", "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE"),
    c("xlen", 2, RF, 1, 1, 1, A_XRF, stream::xlen, "stream", "Return the number of entries in a stream"),
    c("xread", -4, &["readonly", "blocking", "movablekeys"], 0, 0, 0, &["@read", "@stream", "@slow", "@blocking"], stream::xread, "stream", "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block."),
    c("xreadgroup", -7, &["write", "blocking", "movablekeys"], 0, 0, 0, &["@write", "@stream", "@slow", "@blocking"], stream::xread, "stream", "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block."),
    c("xdel", -3, WF, 1, 1, 1, A_XWF, stream::xdel, "stream", "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist."),
    c("xtrim", -4, W, 1, 1, 1, A_XWS, stream::xtrim, "stream", "Trims the stream to (approximately if '~' is passed) a certain size"),
    c("xsetid", -3, WDF, 1, 1, 1, A_XWF, stream::xsetid, "stream", "An internal command for replicating stream values"),
    c("xack", -4, WF, 1, 1, 1, A_XWF, stream::xack, "stream", "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL."),
    c("xpending", -3, R, 1, 1, 1, A_XRS, stream::xpending, "stream", "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged."),
    c("xclaim", -6, WF, 1, 1, 1, A_XWF, stream::xclaim, "stream", "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer."),
    c("xautoclaim", -6, WF, 1, 1, 1, A_XWF, stream::xautoclaim, "stream", "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer."),
    // Redis gives these containers no flags; the cluster layer reads the container's flags
    // (replicating after a write, routing reads), so they carry their subcommands' kind.
    with_subs(c("xgroup", -2, W, 0, 0, 0, A_SLOW, stream::xgroup, "stream", "A container for consumer groups commands"), XGROUP_SUBS),
    with_subs(c("xinfo", -2, R, 0, 0, 0, A_SLOW, stream::xinfo, "stream", "A container for stream introspection commands"), XINFO_SUBS),
    // bitmaps, HyperLogLog, geo, SORT, LCS (cache-bits)
    c("setbit", 4, WD, 1, 1, 1, A_BW, bits::setbit, "bitmap", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."),
    c("getbit", 3, RF, 1, 1, 1, A_BR, bits::getbit, "bitmap", "Returns a bit value by offset."),
    c("bitcount", -2, R, 1, 1, 1, A_BRS, bits::bitcount, "bitmap", "Counts the number of set bits (population counting) in a string."),
    c("bitpos", -3, R, 1, 1, 1, A_BRS, bits::bitpos, "bitmap", "Finds the first set (1) or clear (0) bit in a string."),
    c("bitop", -4, WD, 2, -1, 1, A_BW, bits::bitop, "bitmap", "Performs bitwise operations on multiple strings, and stores the result."),
    c("bitfield", -2, WD, 1, 1, 1, A_BW, bits::bitfield, "bitmap", "Performs arbitrary bitfield integer operations on strings."),
    c("bitfield_ro", -2, RF, 1, 1, 1, A_BR, bits::bitfield_ro, "bitmap", "Performs arbitrary read-only bitfield integer operations on strings."),
    c("pfadd", -2, WDF, 1, 1, 1, &["@write", "@hyperloglog", "@fast"], hll::pfadd, "hyperloglog", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist."),
    c("pfcount", -2, &["readonly", "may_replicate"], 1, -1, 1, &["@read", "@hyperloglog", "@slow"], hll::pfcount, "hyperloglog", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s)."),
    c("pfmerge", -2, WD, 1, -1, 1, &["@write", "@hyperloglog", "@slow"], hll::pfmerge, "hyperloglog", "Merges one or more HyperLogLog values into a single key."),
    c("pfselftest", 1, &["admin"], 0, 0, 0, &["@hyperloglog", "@admin", "@slow", "@dangerous"], hll::pfselftest, "hyperloglog", "An internal command for testing HyperLogLog values."),
    c("pfdebug", 3, &["write", "denyoom", "admin"], 2, 2, 1, &["@write", "@hyperloglog", "@admin", "@slow", "@dangerous"], hll::pfdebug, "hyperloglog", "Internal commands for debugging HyperLogLog values."),
    c("geoadd", -5, WD, 1, 1, 1, A_GW, geo::geoadd, "geo", "Adds one or more members to a geospatial index. The key is created if it doesn't exist."),
    c("geodist", -4, R, 1, 1, 1, A_GR, geo::geodist, "geo", "Returns the distance between two members of a geospatial index."),
    c("geohash", -2, R, 1, 1, 1, A_GR, geo::geohash, "geo", "Returns members from a geospatial index as geohash strings."),
    c("geopos", -2, R, 1, 1, 1, A_GR, geo::geopos, "geo", "Returns the longitude and latitude of members from a geospatial index."),
    c("georadius", -6, WDM, 1, 1, 1, A_GW, geo::georadius, "geo", "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result."),
    c("georadius_ro", -6, R, 1, 1, 1, A_GR, geo::georadius, "geo", "Returns members from a geospatial index that are within a distance from a coordinate."),
    c("georadiusbymember", -5, WDM, 1, 1, 1, A_GW, geo::georadiusbymember, "geo", "Queries a geospatial index for members within a distance from a member, optionally stores the result."),
    c("georadiusbymember_ro", -5, R, 1, 1, 1, A_GR, geo::georadiusbymember, "geo", "Returns members from a geospatial index that are within a distance from a member."),
    c("geosearch", -7, R, 1, 1, 1, A_GR, geo::geosearch, "geo", "Queries a geospatial index for members inside an area of a box or a circle."),
    c("geosearchstore", -8, WD, 1, 2, 1, A_GW, geo::geosearchstore, "geo", "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result."),
    c("sort", -2, WDM, 1, 1, 1, &["@write", "@set", "@sortedset", "@list", "@slow", "@dangerous"], sort::sort, "generic", "Sorts the elements in a list, a set, or a sorted set, optionally storing the result."),
    c("sort_ro", -2, RM, 1, 1, 1, &["@read", "@set", "@sortedset", "@list", "@slow", "@dangerous"], sort::sort_ro, "generic", "Returns the sorted elements of a list, a set, or a sorted set."),
    c("lcs", -3, R, 1, 2, 1, A_SRS, lcs::lcs, "string", "Finds the longest common substring."),
];

// Stream ACL categories and subcommands (cmd/stream.rs).
const A_XRF: &[&str] = &["@read", "@stream", "@fast"];
const A_XRS: &[&str] = &["@read", "@stream", "@slow"];
const A_XWF: &[&str] = &["@write", "@stream", "@fast"];
const A_XWS: &[&str] = &["@write", "@stream", "@slow"];

static XGROUP_SUBS: &[Command] = &[
    c(
        "xgroup|create",
        -5,
        WD,
        2,
        2,
        1,
        A_XWS,
        stream::xgroup,
        "stream",
        "Create a consumer group.",
    ),
    c(
        "xgroup|createconsumer",
        5,
        WD,
        2,
        2,
        1,
        A_XWS,
        stream::xgroup,
        "stream",
        "Create a consumer in a consumer group.",
    ),
    c(
        "xgroup|delconsumer",
        5,
        W,
        2,
        2,
        1,
        A_XWS,
        stream::xgroup,
        "stream",
        "Delete a consumer from a consumer group.",
    ),
    c(
        "xgroup|destroy",
        4,
        W,
        2,
        2,
        1,
        A_XWS,
        stream::xgroup,
        "stream",
        "Destroy a consumer group.",
    ),
    c(
        "xgroup|setid",
        -5,
        W,
        2,
        2,
        1,
        A_XWS,
        stream::xgroup,
        "stream",
        "Set a consumer group to an arbitrary last delivered ID value.",
    ),
    c(
        "xgroup|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@stream", "@slow"],
        stream::xgroup,
        "stream",
        "Show helpful text about the different subcommands",
    ),
];

static XINFO_SUBS: &[Command] = &[
    c(
        "xinfo|consumers",
        4,
        R,
        2,
        2,
        1,
        A_XRS,
        stream::xinfo,
        "stream",
        "List the consumers in a consumer group",
    ),
    c(
        "xinfo|groups",
        3,
        R,
        2,
        2,
        1,
        A_XRS,
        stream::xinfo,
        "stream",
        "List the consumer groups of a stream",
    ),
    c(
        "xinfo|stream",
        -3,
        R,
        2,
        2,
        1,
        A_XRS,
        stream::xinfo,
        "stream",
        "Get information about a stream",
    ),
    c(
        "xinfo|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        &["@stream", "@slow"],
        stream::xinfo,
        "stream",
        "Show helpful text about the different subcommands",
    ),
];

static BY_NAME: LazyLock<HashMap<&'static [u8], &'static Command>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name.as_bytes(), c)).collect());

/// Looks a command up by its lowercase name.
#[inline]
pub fn lookup(lower_name: &[u8]) -> Option<&'static Command> {
    // The hottest commands skip the hash table.
    match lower_name {
        b"get" => Some(&COMMANDS[0]),
        b"set" => Some(&COMMANDS[1]),
        _ => BY_NAME.get(lower_name).copied(),
    }
}

/// Looks up a subcommand of a container by name (`config`, `get`).
pub fn lookup_sub(cmd: &'static Command, sub: &[u8]) -> Option<&'static Command> {
    let prefix = cmd.name.len() + 1;
    cmd.subcommands
        .iter()
        .find(|s| s.name.as_bytes()[prefix..].eq_ignore_ascii_case(sub))
}

/// Whether `n` arguments (counting the name) satisfy `arity`.
#[inline]
pub fn arity_ok(arity: i32, n: usize) -> bool {
    if arity >= 0 {
        n == arity as usize
    } else {
        n >= (-arity) as usize
    }
}

/// The key arguments of a command (for `COMMAND GETKEYS` and cluster routing): the legacy
/// first/last/step range, or the `numkeys` forms of movable-key commands. `None` if the
/// arguments are invalid for key extraction.
pub fn keys_of<'a>(cmd: &Command, args: &[&'a [u8]]) -> Option<Vec<&'a [u8]>> {
    let numkeys_at = |i: usize, after: usize| -> Option<Vec<&'a [u8]>> {
        let n = crate::resp::parse_i64(args.get(i)?)?;
        if n <= 0 || i + 1 + n as usize > args.len() {
            return None;
        }
        let _ = after;
        Some(args[i + 1..i + 1 + n as usize].to_vec())
    };
    match cmd.name {
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let mut keys = vec![*args.get(1)?];
            keys.extend(numkeys_at(2, 0)?);
            Some(keys)
        }
        "sintercard" | "lmpop" => numkeys_at(1, 0),
        // Containers whose subcommands name a key: route and replicate by the subcommand.
        "xgroup" | "xinfo" => {
            let prefix = cmd.name.len() + 1;
            let sub = args.get(1).and_then(|a| {
                cmd.subcommands
                    .iter()
                    .find(|s| s.name.as_bytes()[prefix..].eq_ignore_ascii_case(a))
            });
            match sub {
                Some(sub) if arity_ok(sub.arity, args.len()) => keys_of(sub, args),
                _ => Some(Vec::new()),
            }
        }
        "xread" | "xreadgroup" => {
            // The keys are the first half of what follows STREAMS.
            let at = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?
                + 1;
            let rest = args.len() - at;
            if rest == 0 || !rest.is_multiple_of(2) {
                return None;
            }
            Some(args[at..at + rest / 2].to_vec())
        }
        // EVAL/FCALL: numkeys may be 0 (no keys, route anywhere).
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
            let n = crate::resp::parse_i64(args.get(2)?)?;
            if n < 0 || 3 + n as usize > args.len() {
                return None;
            }
            Some(args[3..3 + n as usize].to_vec())
        }
        "blmpop" => numkeys_at(2, 0),
        "zunion" | "zinter" | "zintercard" | "zdiff" | "zmpop" => numkeys_at(1, 0),
        "bzmpop" => numkeys_at(2, 0),
        // The source key, plus the STORE destination (BY/GET patterns are not keys a router
        // can know; Redis reports only these too).
        "sort" | "georadius" | "georadiusbymember" => {
            let mut keys = vec![*args.get(1)?];
            let mut store = None;
            let mut i = 2;
            while i < args.len() {
                let a = args[i];
                if cmd.name == "sort" && a.eq_ignore_ascii_case(b"limit") {
                    i += 3;
                    continue;
                }
                if cmd.name == "sort"
                    && (a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by"))
                {
                    i += 2;
                    continue;
                }
                if (a.eq_ignore_ascii_case(b"store")
                    || (cmd.name != "sort" && a.eq_ignore_ascii_case(b"storedist")))
                    && i + 1 < args.len()
                {
                    store = Some(args[i + 1]);
                    i += 2;
                    continue;
                }
                i += 1;
            }
            keys.extend(store);
            Some(keys)
        }
        _ => {
            if cmd.first == 0 {
                return Some(Vec::new());
            }
            let first = cmd.first as usize;
            let last = if cmd.last < 0 {
                args.len() as i64 + i64::from(cmd.last)
            } else {
                i64::from(cmd.last)
            };
            if last < first as i64 {
                return Some(Vec::new());
            }
            let last = (last as usize).min(args.len().saturating_sub(1));
            Some(
                (first..=last)
                    .step_by(cmd.step.max(1) as usize)
                    .filter_map(|i| args.get(i).copied())
                    .collect(),
            )
        }
    }
}

/// The slot a command addresses: `Ok(None)` for keyless commands, `Err` for keys in several
/// slots.
pub fn command_slot(cmd: &Command, args: &[&[u8]]) -> Result<Option<u16>, &'static str> {
    let keys = match cmd.name {
        // Keys of the container's subcommand are not keys of the container.
        "cluster" | "pubsub" | "command" | "config" | "client" => return Ok(None),
        "object" | "memory" => match args.get(2) {
            Some(k) if !super::eq_ic(args[1], "stats") => vec![*k],
            _ => return Ok(None),
        },
        _ => keys_of(cmd, args).unwrap_or_default(),
    };
    let mut slot = None;
    for k in keys {
        let s = crate::slot::key_slot(k);
        match slot {
            None => slot = Some(s),
            Some(x) if x != s => {
                return Err("CROSSSLOT Keys in request don't hash to the same slot");
            }
            _ => {}
        }
    }
    Ok(slot)
}

//! The static command table: what `COMMAND` reports (arity, flags, key positions, ACL
//! categories, subcommands) and the handler each name dispatches to.
//!
//! Arity and legacy key positions follow Redis 7.2 (`COMMAND INFO`); cluster clients route by
//! them. Commands whose keys follow a `numkeys` argument are flagged `movablekeys` and answered
//! by `COMMAND GETKEYS` through [`keys_of`].

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{CmdResult, Ctx, hash, keys, list, server, set, strings, zset};

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

static CLIENT_SUBS: &[Command] = &[
    c(
        "client|id",
        2,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        server::client,
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
        server::client,
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
        server::client,
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
        server::client,
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
        server::client,
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
        server::client,
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
        server::client,
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
        server::client,
        "connection",
        "Sets the client eviction mode of the connection.",
    ),
    c(
        "client|help",
        2,
        &["loading", "stale"],
        0,
        0,
        0,
        A_CONNS,
        server::client,
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
        server::cluster,
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
        server::cluster,
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
        server::cluster,
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
        server::cluster,
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
        server::cluster,
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
        server::cluster,
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
        server::cluster,
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
        server::cluster,
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
        server::cluster,
        "cluster",
        "Returns helpful text about the different subcommands.",
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
    c(
        "pubsub|channels",
        -2,
        PS,
        0,
        0,
        0,
        A_PS,
        server::pubsub,
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
        server::pubsub,
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
        server::pubsub,
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
        server::pubsub,
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
    c("sort", -2, WDM, 1, 1, 1, &["@write", "@set", "@sortedset", "@list", "@slow", "@dangerous"], keys::sort, "generic", "Sorts the elements in a list, a set, or a sorted set, optionally storing the result."),
    c("sort_ro", -2, RM, 1, 1, 1, &["@read", "@set", "@sortedset", "@list", "@slow", "@dangerous"], keys::sort, "generic", "Returns the sorted elements of a list, a set, or a sorted set."),
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
    c("zrank", -3, RF, 1, 1, 1, A_ZR, zset::zrank, "sorted_set", "Returns the index of a member in a sorted set ordered by ascending scores."),
    c("zrevrank", -3, RF, 1, 1, 1, A_ZR, zset::zrank, "sorted_set", "Returns the index of a member in a sorted set ordered by descending scores."),
    c("zpopmin", -2, WF, 1, 1, 1, A_ZW, zset::zpop, "sorted_set", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    c("zpopmax", -2, WF, 1, 1, 1, A_ZW, zset::zpop, "sorted_set", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    c("bzpopmin", -3, &["write", "fast", "blocking"], 1, -2, 1, A_ZB, zset::bzpop, "sorted_set", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    c("bzpopmax", -3, &["write", "fast", "blocking"], 1, -2, 1, A_ZB, zset::bzpop, "sorted_set", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    c("zremrangebyrank", 4, W, 1, 1, 1, A_ZWS, zset::zremrange, "sorted_set", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."),
    c("zremrangebyscore", 4, W, 1, 1, 1, A_ZWS, zset::zremrange, "sorted_set", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."),
    c("zremrangebylex", 4, W, 1, 1, 1, A_ZWS, zset::zremrange, "sorted_set", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."),
    c("zrandmember", -2, R, 1, 1, 1, A_ZRS, zset::zrandmember, "sorted_set", "Returns one or more random members from a sorted set."),
    c("zscan", -3, R, 1, 1, 1, A_ZRS, keys::collection_scan, "sorted_set", "Iterates over members and scores of a sorted set."),
    c("zunionstore", -4, WDM, 1, 1, 1, A_ZWS, zset::zstore, "sorted_set", "Stores the union of multiple sorted sets in a key."),
    c("zinterstore", -4, WDM, 1, 1, 1, A_ZWS, zset::zstore, "sorted_set", "Stores the intersect of multiple sorted sets in a key."),
    // pub/sub
    c("subscribe", -2, PS, 0, 0, 0, A_PS, server::subscribe, "pubsub", "Listens for messages published to channels."),
    c("unsubscribe", -1, PS, 0, 0, 0, A_PS, server::subscribe, "pubsub", "Stops listening to messages posted to channels."),
    c("psubscribe", -2, PS, 0, 0, 0, A_PS, server::subscribe, "pubsub", "Listens for messages published to channels that match one or more patterns."),
    c("punsubscribe", -1, PS, 0, 0, 0, A_PS, server::subscribe, "pubsub", "Stops listening to messages published to channels that match one or more patterns."),
    c("ssubscribe", -2, PS, 1, -1, 1, A_PS, server::ssubscribe, "pubsub", "Listens for messages published to shard channels."),
    c("sunsubscribe", -1, PS, 1, -1, 1, A_PS, server::ssubscribe, "pubsub", "Stops listening to messages posted to shard channels."),
    c("spublish", 3, &["pubsub", "loading", "stale", "fast"], 1, 1, 1, &["@pubsub", "@fast"], server::spublish, "pubsub", "Post a message to a shard channel"),
    c("publish", 3, &["pubsub", "loading", "stale", "fast"], 0, 0, 0, &["@pubsub", "@fast"], server::publish, "pubsub", "Posts a message to a channel."),
    with_subs(c("pubsub", -2, NONE, 0, 0, 0, A_SLOW, server::pubsub, "pubsub", "A container for Pub/Sub commands."), PUBSUB_SUBS),
    // transactions
    c("multi", 1, TX, 0, 0, 0, A_TX, server::multi, "transactions", "Starts a transaction."),
    c("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], 0, 0, 0, A_TXS, server::exec, "transactions", "Executes all commands in a transaction."),
    c("discard", 1, TX, 0, 0, 0, A_TX, server::discard, "transactions", "Discards a transaction."),
    c("watch", -2, TX, 1, -1, 1, A_TX, server::watch, "transactions", "Monitors changes to keys to determine the execution of a transaction."),
    c("unwatch", 1, TX, 0, 0, 0, A_TX, server::unwatch, "transactions", "Forgets about watched keys of a transaction."),
    // connection and server
    c("ping", -1, &["fast"], 0, 0, 0, A_CONN, server::ping, "connection", "Returns the server's liveliness response."),
    c("echo", 2, &["fast"], 0, 0, 0, A_CONN, server::echo, "connection", "Returns the given string."),
    c("select", 2, &["loading", "stale", "fast"], 0, 0, 0, A_CONN, server::select, "connection", "Changes the selected database."),
    c("quit", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, A_CONN, server::quit, "connection", "Closes the connection."),
    c("reset", 1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, A_CONN, server::reset, "connection", "Resets the connection."),
    c("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, A_CONN, server::auth, "connection", "Authenticates the connection."),
    c("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, A_CONN, server::hello, "connection", "Handshakes with the Redis server."),
    with_subs(c("client", -2, NONE, 0, 0, 0, A_SLOW, server::client, "connection", "A container for client connection commands."), CLIENT_SUBS),
    with_subs(c("command", -1, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], server::command, "server", "Returns detailed information about all commands."), COMMAND_SUBS),
    with_subs(c("config", -2, NONE, 0, 0, 0, A_SLOW, server::config, "server", "A container for server configuration commands."), CONFIG_SUBS),
    with_subs(c("cluster", -2, NONE, 0, 0, 0, A_SLOW, server::cluster, "cluster", "A container for Redis Cluster commands."), CLUSTER_SUBS),
    with_subs(c("memory", -2, NONE, 0, 0, 0, A_SLOW, server::memory, "server", "A container for memory diagnostics commands."), MEMORY_SUBS),
    c("info", -1, &["loading", "stale"], 0, 0, 0, &["@slow", "@dangerous"], server::info, "server", "Returns information and statistics about the server."),
    c("time", 1, &["loading", "stale", "fast"], 0, 0, 0, &["@fast"], server::time, "server", "Returns the server time."),
    c("lastsave", 1, &["loading", "stale", "fast"], 0, 0, 0, &["@fast", "@admin", "@dangerous"], server::lastsave, "server", "Returns the Unix timestamp of the last successful save to disk."),
    c("role", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0, &["@admin", "@fast", "@dangerous"], server::role, "server", "Returns the replication role."),
    c("readonly", 1, &["loading", "stale", "fast"], 0, 0, 0, A_CONN, server::readonly, "cluster", "Enables read-only queries for a connection to a Redis Cluster replica node."),
    c("asking", 1, &["fast"], 0, 0, 0, A_CONN, server::asking, "cluster", "Signals that a cluster client is following an -ASK redirect."),
    c("readwrite", 1, &["loading", "stale", "fast"], 0, 0, 0, A_CONN, server::readonly, "cluster", "Enables read-write queries for a connection to a Reids Cluster replica node."),
    c("save", 1, &["admin", "noscript", "no_async_loading", "no_multi"], 0, 0, 0, A_ADMIN, server::save, "server", "Synchronously saves the database(s) to disk."),
    c("bgsave", -1, &["admin", "noscript", "no_async_loading"], 0, 0, 0, A_ADMIN, server::save, "server", "Asynchronously saves the database(s) to disk."),
    c("wait", 3, &["noscript"], 0, 0, 0, &["@slow", "@connection"], server::wait, "generic", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."),
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
        "zunionstore" | "zinterstore" => {
            let mut keys = vec![*args.get(1)?];
            keys.extend(numkeys_at(2, 0)?);
            Some(keys)
        }
        "sintercard" | "lmpop" => numkeys_at(1, 0),
        // The sorted key and the STORE destination (the last one given), as Redis's
        // sortGetKeys finds them.
        "sort" => {
            let mut keys = vec![*args.get(1)?];
            let mut store = None;
            let mut i = 2;
            while i < args.len() {
                let a = args[i];
                if a.eq_ignore_ascii_case(b"limit") {
                    i += 2;
                } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
                    i += 1;
                } else if a.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
                    store = Some(args[i + 1]);
                    i += 1;
                }
                i += 1;
            }
            keys.extend(store);
            Some(keys)
        }
        "blmpop" => numkeys_at(2, 0),
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

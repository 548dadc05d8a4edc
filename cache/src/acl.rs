//! ACL users, as Redis 7.0 has them: users with passwords (kept as SHA-256 hex), on/off,
//! and selectors (the root one and any in parentheses) that allow commands (by name,
//! subcommand, first argument or category), key patterns (read, write or both) and channel
//! patterns. The `default` user starts with every permission and `requirepass` as its only
//! password (none: `nopass`).
//!
//! Permission checks run in the session before a command does; a refusal is logged in the
//! ACL log (`ACL LOG`) and answered with Redis's `NOPERM` texts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::LazyLock;

use hashbrown::HashMap;
use sha2::{Digest, Sha256};

use crate::cmd::table::{self, COMMANDS, Command};
use crate::glob::glob_match;
use crate::value::Bytes;

/// Command categories in Redis's order (`ACL CAT`).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Longest log kept by default (`acllog-max-len`).
pub const LOG_MAX: usize = 128;
/// Longest first-argument list per command (bounds `+select|0`-style rules).
const MAX_FIRSTARGS: usize = 1024;

/// Every command and subcommand, with a dense id each (the bit in a selector's bitmap).
struct Universe {
    all: Vec<&'static Command>,
    ids: HashMap<&'static str, usize>,
    /// Id of each command's container, for subcommands.
    parent: Vec<Option<usize>>,
}

static UNIVERSE: LazyLock<Universe> = LazyLock::new(|| {
    let mut u = Universe {
        all: Vec::new(),
        ids: HashMap::new(),
        parent: Vec::new(),
    };
    for c in COMMANDS {
        let id = u.all.len();
        u.all.push(c);
        u.parent.push(None);
        u.ids.insert(c.name, id);
        for s in c.subcommands {
            u.ids.insert(s.name, u.all.len());
            u.all.push(s);
            u.parent.push(Some(id));
        }
    }
    u
});

fn cmd_id(c: &Command) -> Option<usize> {
    UNIVERSE.ids.get(c.name).copied()
}

fn in_category(c: &Command, cat: &str) -> bool {
    c.acl
        .iter()
        .any(|a| a.strip_prefix('@').is_some_and(|a| a == cat))
}

/// A key pattern with the access it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPat {
    pat: Bytes,
    read: bool,
    write: bool,
}

impl KeyPat {
    fn describe(&self, out: &mut String) {
        out.push_str(match (self.read, self.write) {
            (true, false) => "%R~",
            (false, true) => "%W~",
            _ => "~",
        });
        out.push_str(&String::from_utf8_lossy(&self.pat));
    }
}

/// A set of permissions: the user's root one, or one in parentheses.
#[derive(Debug, Clone)]
pub struct Selector {
    allkeys: bool,
    allchannels: bool,
    allcommands: bool,
    /// Set by `+@all` only: commands added later are allowed too (`+@all` in descriptions).
    future: bool,
    bits: Vec<bool>,
    firstargs: BTreeMap<usize, Vec<String>>,
    keys: Vec<KeyPat>,
    channels: Vec<Bytes>,
}

/// Why a rule was refused (Redis's `ACLSetUserStringError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleError {
    UnknownCommand,
    Syntax,
    KeysAfterAll,
    ChannelsAfterAll,
    NoSuchPassword,
    BadHash,
    SubcommandFirstArg,
}

impl RuleError {
    fn text(self) -> &'static str {
        match self {
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeysAfterAll => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
            }
            RuleError::ChannelsAfterAll => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
            }
            RuleError::NoSuchPassword => {
                "The password you are trying to remove from the user does not exist"
            }
            RuleError::BadHash => {
                "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
            }
            RuleError::SubcommandFirstArg => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|c| c.is_ascii_whitespace() || *c == 0)
}

impl Selector {
    /// Whether this selector may read every key (`allkeys`, `~*` or `%R~*`).
    fn reads_every_key(&self) -> bool {
        self.allkeys || self.keys.iter().any(|k| k.read && &*k.pat == b"*")
    }

    fn new() -> Self {
        Self {
            allkeys: false,
            allchannels: false,
            allcommands: false,
            future: false,
            bits: vec![false; UNIVERSE.all.len()],
            firstargs: BTreeMap::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    fn set_bit(&mut self, id: usize, v: bool) {
        self.bits[id] = v;
        if !v {
            self.allcommands = false;
        }
    }

    /// Allows or blocks a command and, for a container, its subcommands.
    fn change(&mut self, id: usize, allow: bool) {
        self.set_bit(id, allow);
        self.firstargs.remove(&id);
        let c = UNIVERSE.all[id];
        for s in c.subcommands {
            if let Some(sid) = cmd_id(s) {
                self.set_bit(sid, allow);
            }
        }
    }

    fn set_category(&mut self, cat: &str, allow: bool) -> Result<(), RuleError> {
        if !CATEGORIES.contains(&cat) {
            return Err(RuleError::UnknownCommand);
        }
        for id in 0..UNIVERSE.all.len() {
            if in_category(UNIVERSE.all[id], cat) {
                self.change(id, allow);
            }
        }
        Ok(())
    }

    fn all_commands(&mut self, allow: bool) {
        self.bits.iter_mut().for_each(|b| *b = allow);
        self.allcommands = allow;
        self.future = allow;
        self.firstargs.clear();
    }

    /// Applies one selector rule (Redis's `ACLSetSelector`).
    fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let lower = op.to_ascii_lowercase();
        match &lower[..] {
            b"allkeys" | b"~*" => {
                self.allkeys = true;
                self.keys.clear();
                return Ok(());
            }
            b"resetkeys" => {
                self.allkeys = false;
                self.keys.clear();
                return Ok(());
            }
            b"allchannels" | b"&*" => {
                self.allchannels = true;
                self.channels.clear();
                return Ok(());
            }
            b"resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
                return Ok(());
            }
            b"allcommands" | b"+@all" => {
                self.all_commands(true);
                return Ok(());
            }
            b"nocommands" | b"-@all" => {
                self.all_commands(false);
                return Ok(());
            }
            _ => {}
        }
        match op.first() {
            Some(b'~' | b'%') => {
                if self.allkeys {
                    return Err(RuleError::KeysAfterAll);
                }
                let (mut read, mut write) = (false, false);
                let mut offset = 1;
                if op[0] == b'%' {
                    loop {
                        match op.get(offset) {
                            Some(b'R' | b'r') if !read => read = true,
                            Some(b'W' | b'w') if !write => write = true,
                            Some(b'~') => {
                                offset += 1;
                                break;
                            }
                            _ => return Err(RuleError::Syntax),
                        }
                        offset += 1;
                    }
                } else {
                    (read, write) = (true, true);
                }
                let pat = &op[offset..];
                if has_spaces(pat) {
                    return Err(RuleError::Syntax);
                }
                match self.keys.iter_mut().find(|k| &*k.pat == pat) {
                    Some(k) => {
                        k.read |= read;
                        k.write |= write;
                    }
                    None => self.keys.push(KeyPat {
                        pat: pat.into(),
                        read,
                        write,
                    }),
                }
                self.allkeys = false;
                Ok(())
            }
            Some(b'&') => {
                if self.allchannels {
                    return Err(RuleError::ChannelsAfterAll);
                }
                let pat = &op[1..];
                if has_spaces(pat) {
                    return Err(RuleError::Syntax);
                }
                if !self.channels.iter().any(|c| &**c == pat) {
                    self.channels.push(pat.into());
                }
                self.allchannels = false;
                Ok(())
            }
            Some(b'+') if op.get(1) != Some(&b'@') => {
                let name = &lower[1..];
                match name.iter().rposition(|&c| c == b'|') {
                    None => {
                        let id = lookup_id(name).ok_or(RuleError::UnknownCommand)?;
                        self.change(id, true);
                    }
                    Some(bar) => {
                        let id = lookup_id(&name[..bar]).ok_or(RuleError::UnknownCommand)?;
                        if UNIVERSE.parent[id].is_some() {
                            return Err(RuleError::SubcommandFirstArg);
                        }
                        let sub = &name[bar + 1..];
                        if sub.is_empty() {
                            return Err(RuleError::Syntax);
                        }
                        if !UNIVERSE.all[id].subcommands.is_empty() {
                            let sid = lookup_id(name).ok_or(RuleError::UnknownCommand)?;
                            self.change(sid, true);
                        } else {
                            // A first argument of an otherwise blocked command (SELECT|0).
                            let list = self.firstargs.entry(id).or_default();
                            let sub = String::from_utf8_lossy(sub).into_owned();
                            if !list.contains(&sub) && list.len() < MAX_FIRSTARGS {
                                list.push(sub);
                            }
                        }
                    }
                }
                Ok(())
            }
            Some(b'-') if op.get(1) != Some(&b'@') => {
                let id = lookup_id(&lower[1..]).ok_or(RuleError::UnknownCommand)?;
                self.change(id, false);
                Ok(())
            }
            Some(b'+' | b'-') => {
                let cat =
                    std::str::from_utf8(&lower[2..]).map_err(|_| RuleError::UnknownCommand)?;
                self.set_category(cat, op[0] == b'+')
            }
            _ => Err(RuleError::Syntax),
        }
    }

    /// The command rules that rebuild this bitmap (Redis's `ACLDescribeSelectorCommandRules`).
    fn describe_commands(&self) -> String {
        let mut rules = String::new();
        let mut fake = Selector::new();
        let additive = !self.future;
        if additive {
            rules.push_str("-@all ");
        } else {
            rules.push_str("+@all ");
            fake.all_commands(true);
        }
        let mut temp = self.clone();
        let mut applied = [false; 21];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, cat) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (mut on, mut off) = (0, 0);
                for (id, c) in UNIVERSE.all.iter().enumerate() {
                    if in_category(c, cat) {
                        if temp.bits[id] {
                            on += 1;
                        } else {
                            off += 1;
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(j) = best else {
                break;
            };
            let _ = fake.set_category(CATEGORIES[j], additive);
            let _ = temp.set_category(CATEGORIES[j], !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(CATEGORIES[j]);
            rules.push(' ');
            applied[j] = true;
        }
        for id in 0..UNIVERSE.all.len() {
            let user = self.bits[id];
            if user != fake.bits[id] {
                rules.push(if user { '+' } else { '-' });
                rules.push_str(UNIVERSE.all[id].name);
                rules.push(' ');
                fake.change(id, user);
            }
            if !user && let Some(args) = self.firstargs.get(&id) {
                for a in args {
                    rules.push('+');
                    rules.push_str(UNIVERSE.all[id].name);
                    rules.push('|');
                    rules.push_str(a);
                    rules.push(' ');
                }
            }
        }
        rules.pop();
        rules
    }

    fn describe_keys(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        let mut s = String::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            k.describe(&mut s);
        }
        s
    }

    fn describe_channels(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        let parts: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        parts.join(" ")
    }

    /// The selector as `ACL LIST` shows it.
    fn describe(&self) -> String {
        let mut s = String::new();
        if self.allkeys {
            s.push_str("~* ");
        } else {
            for k in &self.keys {
                k.describe(&mut s);
                s.push(' ');
            }
        }
        if self.allchannels {
            s.push_str("&* ");
        } else {
            s.push_str("resetchannels ");
            for c in &self.channels {
                s.push('&');
                s.push_str(&String::from_utf8_lossy(c));
                s.push(' ');
            }
        }
        s.push_str(&self.describe_commands());
        s
    }

    fn check_key(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.allkeys
            || self
                .keys
                .iter()
                .any(|k| (!read || k.read) && (!write || k.write) && glob_match(&k.pat, key, false))
    }

    fn check_channel(&self, channel: &[u8], pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|p| {
                if pattern {
                    &**p == channel
                } else {
                    glob_match(p, channel, false)
                }
            })
    }

    /// Whether this selector allows the command (Redis's `ACLSelectorCheckCmd`).
    fn check(&self, cmd: &Command, args: &[&[u8]]) -> Result<(), Denied> {
        let sub = UNIVERSE
            .ids
            .get(cmd.name)
            .is_some_and(|&id| UNIVERSE.parent[id].is_some());
        if !self.allcommands && !cmd.flags.contains(&"no_auth") {
            let id = cmd_id(cmd).ok_or(Denied::Command)?;
            if !self.bits[id] {
                let idx = if sub { 2 } else { 1 };
                let ok = args.get(idx).is_some_and(|a| {
                    self.firstargs
                        .get(&id)
                        .is_some_and(|l| l.iter().any(|f| a.eq_ignore_ascii_case(f.as_bytes())))
                });
                if !ok {
                    return Err(Denied::Command);
                }
            }
        }
        // Shard channels are routed like keys but checked as channels.
        let channels_only = matches!(cmd.name, "spublish" | "ssubscribe" | "sunsubscribe");
        if !self.allkeys
            && !channels_only
            && let Some(keys) = key_positions(cmd, args)
        {
            for (i, pos) in keys.into_iter().enumerate() {
                let (read, write) = key_access(cmd, args, i);
                if !self.check_key(args[pos], read, write) {
                    return Err(Denied::Key(pos));
                }
            }
        }
        if !self.allchannels {
            for (pos, pattern) in channel_positions(cmd, args) {
                if !self.check_channel(args[pos], pattern) {
                    return Err(Denied::Channel(pos));
                }
            }
        }
        Ok(())
    }
}

/// Whether a command reads and whether it writes its `i`-th key, as Redis's key
/// specifications say (a key read and written needs a pattern granting both).
fn key_access(cmd: &Command, args: &[&[u8]], i: usize) -> (bool, bool) {
    let has = |from: usize, w: &str| {
        args.iter()
            .skip(from)
            .any(|a| a.eq_ignore_ascii_case(w.as_bytes()))
    };
    match cmd.name {
        // Existence and size tests do not read the value: any pattern matching the key,
        // read or write, allows them.
        "exists" | "touch" | "type" | "ttl" | "pttl" | "expiretime" | "pexpiretime" | "strlen"
        | "hlen" | "hstrlen" | "hexists" | "llen" | "scard" | "sismember" | "smismember"
        | "zcard" | "xlen" | "memory|usage" | "object|encoding" | "object|freq"
        | "object|idletime" | "object|refcount" => return (false, false),
        _ => {}
    }
    if !cmd.flags.contains(&"write") {
        return (true, false);
    }
    match cmd.name {
        // Only with GET does SET read; BITFIELD writes only with SET or INCRBY.
        "set" => (has(3, "get"), true),
        "bitfield" => (true, has(2, "set") || has(2, "incrby")),
        // Overwrites, inserts and deletions that do not read the old value.
        "del" | "unlink" | "setex" | "psetex" | "mset" | "msetnx" | "setnx" | "expire"
        | "pexpire" | "expireat" | "pexpireat" | "persist" | "lpush" | "rpush" | "lpushx"
        | "rpushx" | "sadd" | "hset" | "hmset" | "hsetnx" | "zadd" | "xadd" | "pfadd"
        | "append" | "setrange" | "srem" | "hdel" | "zrem" | "zremrangebyscore"
        | "zremrangebyrank" | "zremrangebylex" | "restore" | "geoadd" | "linsert" | "lset"
        | "ltrim" | "lrem" | "xdel" | "xtrim" => (false, true),
        // A destination written from sources read.
        "sinterstore" | "sunionstore" | "sdiffstore" | "zunionstore" | "zinterstore"
        | "zdiffstore" | "zrangestore" | "bitop" | "geosearchstore" => (i > 0, i == 0),
        // A source read, then a STORE destination written.
        "georadius" | "georadiusbymember" | "sort" => (i == 0, i > 0),
        "pfmerge" => (true, i == 0),
        "copy" => (i == 0, i > 0),
        "rename" | "renamenx" => (i == 0, true),
        "lmove" | "blmove" | "rpoplpush" | "brpoplpush" | "smove" => (i == 0, true),
        _ => (true, true),
    }
}

/// The positions of a command's keys in `args`.
fn key_positions(cmd: &Command, args: &[&[u8]]) -> Option<Vec<usize>> {
    let keys = table::keys_of(cmd, args)?;
    let mut out = Vec::with_capacity(keys.len());
    let mut from = 1;
    for k in keys {
        // keys_of returns slices of args: find each by address, in order.
        let pos = (from..args.len())
            .find(|&i| std::ptr::eq(args[i].as_ptr(), k.as_ptr()) && args[i].len() == k.len())
            .or_else(|| (1..args.len()).find(|&i| args[i] == k))?;
        out.push(pos);
        from = pos + 1;
    }
    Some(out)
}

/// The channels a command publishes or subscribes to: (position, is a pattern).
fn channel_positions(cmd: &Command, args: &[&[u8]]) -> Vec<(usize, bool)> {
    match cmd.name {
        "publish" | "spublish" if args.len() > 1 => vec![(1, false)],
        "subscribe" | "ssubscribe" => (1..args.len()).map(|i| (i, false)).collect(),
        "psubscribe" => (1..args.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    }
}

fn lookup_id(lower_name: &[u8]) -> Option<usize> {
    std::str::from_utf8(lower_name)
        .ok()
        .and_then(|n| UNIVERSE.ids.get(n).copied())
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The command or subcommand.
    Command,
    /// The key at this argument position.
    Key(usize),
    /// The channel at this argument position.
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (0, 0),
            Denied::Key(p) => (1, p),
            Denied::Channel(p) => (2, p),
        }
    }
}

/// A user.
#[derive(Debug, Clone)]
pub struct User {
    /// Its name.
    pub name: Bytes,
    enabled: bool,
    nopass: bool,
    /// `None`: neither flag set (a user never `reset`).
    sanitize: Option<bool>,
    passwords: Vec<String>,
    /// The root selector first.
    selectors: Vec<Selector>,
}

/// SHA-256 of a password, in lowercase hex (how passwords are kept and shown).
pub fn hash_password(pass: &[u8]) -> String {
    let d = Sha256::digest(pass);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl User {
    fn new(name: &[u8], pubsub_all: bool) -> Self {
        Self {
            name: name.into(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            selectors: vec![Selector {
                allchannels: pubsub_all,
                ..Selector::new()
            }],
        }
    }

    /// Applies one rule; `pubsub_all` is `acl-pubsub-default allchannels` (what new
    /// selectors and `reset` start with).
    fn apply(&mut self, op: &[u8], pubsub_all: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let lower = op.to_ascii_lowercase();
        match &lower[..] {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"skip-sanitize-payload" => self.sanitize = Some(false),
            b"sanitize-payload" => self.sanitize = Some(true),
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"clearselectors" => self.selectors.truncate(1),
            b"reset" => {
                self.nopass = false;
                self.passwords.clear();
                let root = &mut self.selectors[0];
                root.apply(b"resetkeys")?;
                root.apply(b"resetchannels")?;
                if pubsub_all {
                    root.apply(b"allchannels")?;
                }
                self.enabled = false;
                self.sanitize = Some(true);
                self.selectors.truncate(1);
                self.selectors[0].apply(b"-@all")?;
            }
            _ => match op[0] {
                b'>' | b'#' => {
                    let h = if op[0] == b'>' {
                        hash_password(&op[1..])
                    } else {
                        if !valid_hash(&op[1..]) {
                            return Err(RuleError::BadHash);
                        }
                        String::from_utf8_lossy(&op[1..]).into_owned()
                    };
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                b'<' | b'!' => {
                    let h = if op[0] == b'<' {
                        hash_password(&op[1..])
                    } else {
                        if !valid_hash(&op[1..]) {
                            return Err(RuleError::BadHash);
                        }
                        String::from_utf8_lossy(&op[1..]).into_owned()
                    };
                    let i = self
                        .passwords
                        .iter()
                        .position(|p| *p == h)
                        .ok_or(RuleError::NoSuchPassword)?;
                    self.passwords.remove(i);
                }
                b'(' if op.ends_with(b")") => {
                    let mut s = Selector {
                        allchannels: pubsub_all,
                        ..Selector::new()
                    };
                    for part in op[1..op.len() - 1]
                        .split(|c| c.is_ascii_whitespace())
                        .filter(|p| !p.is_empty())
                    {
                        s.apply(part)?;
                    }
                    self.selectors.push(s);
                }
                _ => self.selectors[0].apply(op)?,
            },
        }
        Ok(())
    }

    fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// The user as `ACL LIST` shows it (after `user <name> `).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for f in self.flags() {
            s.push_str(f);
            s.push(' ');
        }
        for p in &self.passwords {
            s.push('#');
            s.push_str(p);
            s.push(' ');
        }
        s.push_str(&self.selectors[0].describe());
        for sel in &self.selectors[1..] {
            s.push_str(" (");
            s.push_str(&sel.describe());
            s.push(')');
        }
        s
    }

    /// Whether `pass` logs this user in.
    pub fn password_ok(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let h = hash_password(pass);
        // Compare every stored hash in full, whatever matches, so timing tells nothing.
        self.passwords
            .iter()
            .fold(false, |ok, p| ok | constant_eq(p.as_bytes(), h.as_bytes()))
    }

    /// Whether the user may run `cmd` with `args` (any selector allowing it is enough);
    /// otherwise the most relevant refusal, as Redis picks it.
    pub fn check(&self, cmd: &Command, args: &[&[u8]]) -> Result<(), Denied> {
        let mut worst = Denied::Command;
        for s in &self.selectors {
            match s.check(cmd, args) {
                Ok(()) => return Ok(()),
                Err(d) if d.rank() > worst.rank() => worst = d,
                Err(_) => {}
            }
        }
        Err(worst)
    }

    /// Whether every selector allows every channel (nothing to revoke from subscribers).
    fn all_channels(&self) -> bool {
        self.selectors.iter().any(|s| s.allchannels)
    }

    /// Whether the user may still use `channel` (a pattern subscription if `pattern`).
    pub fn channel_ok(&self, channel: &[u8], pattern: bool) -> bool {
        self.selectors
            .iter()
            .any(|s| s.check_channel(channel, pattern))
    }

    /// Whether the user has every permission (the check can be skipped).
    fn unrestricted(&self) -> bool {
        self.selectors
            .iter()
            .any(|s| s.allcommands && s.allkeys && s.allchannels)
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One ACL log entry.
#[derive(Debug, Clone)]
struct LogEntry {
    count: u64,
    reason: &'static str,
    context: &'static str,
    object: Bytes,
    username: Bytes,
    ctime: u64,
    cinfo: String,
}

/// The users of one server and its ACL log.
#[derive(Debug)]
pub struct Acl {
    users: BTreeMap<Bytes, User>,
    log: VecDeque<LogEntry>,
    /// Whether `default` has every permission (the common case: no check per command).
    default_open: bool,
    /// `acllog-max-len`.
    pub log_max: usize,
    /// `acl-pubsub-default allchannels`: new users may use every channel.
    pub pubsub_all: bool,
}

impl Default for Acl {
    fn default() -> Self {
        let mut d = User::new(b"default", false);
        for op in [&b"+@all"[..], b"~*", b"&*", b"on", b"nopass"] {
            d.apply(op, false)
                .expect("the default user's rules are valid");
        }
        let mut users = BTreeMap::new();
        users.insert(Bytes::from(&b"default"[..]), d);
        Self {
            users,
            log: VecDeque::new(),
            default_open: true,
            log_max: LOG_MAX,
            pubsub_all: false,
        }
    }
}

impl Acl {
    /// A user by name.
    pub fn user(&self, name: &[u8]) -> Option<&User> {
        self.users.get(name)
    }

    /// Whether `name` may run `cmd` without a detailed check.
    #[inline]
    pub fn open(&self, name: &[u8]) -> bool {
        name == b"default" && self.default_open
    }

    fn refresh(&mut self) {
        self.default_open = self
            .users
            .get(&b"default"[..])
            .is_some_and(User::unrestricted);
    }

    /// Whether new connections are logged in as `default` without AUTH.
    pub fn default_nopass(&self) -> bool {
        self.users
            .get(&b"default"[..])
            .is_some_and(|u| u.enabled && u.nopass)
    }

    /// Whether `user`/`pass` log in.
    pub fn password_ok(&self, user: &[u8], pass: &[u8]) -> bool {
        self.users.get(user).is_some_and(|u| u.password_ok(pass))
    }

    /// `requirepass`: the default user's only password (empty: nopass).
    pub fn set_default_password(&mut self, pass: &[u8]) {
        if let Some(d) = self.users.get_mut(&b"default"[..]) {
            let _ = d.apply(b"resetpass", false);
            if pass.is_empty() {
                let _ = d.apply(b"nopass", false);
            } else {
                let mut op = b">".to_vec();
                op.extend_from_slice(pass);
                let _ = d.apply(&op, false);
            }
        }
    }

    /// Applies `ACL SETUSER name rules...` all or nothing; returns Redis's error text.
    pub fn set_user(&mut self, name: &[u8], rules: &[&[u8]]) -> Result<(), String> {
        if has_spaces(name) {
            return Err("ERR Usernames can't contain spaces or null characters".into());
        }
        // Rules in parentheses may span arguments: "(~x" "+get)".
        let mut merged: Vec<Vec<u8>> = Vec::new();
        let mut open: Option<(usize, Vec<u8>)> = None;
        for (i, r) in rules.iter().enumerate() {
            if let Some((_, sel)) = open.as_mut() {
                sel.push(b' ');
                sel.extend_from_slice(r);
                if r.ends_with(b")") {
                    merged.push(open.take().map(|(_, s)| s).unwrap_or_default());
                }
                continue;
            }
            if r.first() == Some(&b'(') && !r.ends_with(b")") {
                open = Some((i, r.to_vec()));
                continue;
            }
            merged.push(r.to_vec());
        }
        if let Some((i, _)) = open {
            return Err(format!(
                "ERR Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(rules[i])
            ));
        }
        let all = self.pubsub_all;
        let mut u = self
            .users
            .get(name)
            .cloned()
            .unwrap_or_else(|| User::new(name, all));
        for op in &merged {
            u.apply(op, all).map_err(|e| {
                format!(
                    "ERR Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(op),
                    e.text()
                )
            })?;
        }
        self.users.insert(name.into(), u);
        self.refresh();
        Ok(())
    }

    /// Deletes users; returns how many existed.
    pub fn del_users(&mut self, names: &[&[u8]]) -> Result<usize, &'static str> {
        if names.iter().any(|n| *n == b"default") {
            return Err("ERR The 'default' user cannot be removed");
        }
        let n = names
            .iter()
            .filter(|n| self.users.remove(**n).is_some())
            .count();
        self.refresh();
        Ok(n)
    }

    /// Entries in the ACL log.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Keeps the newest `n` log entries.
    pub fn truncate_log(&mut self, n: usize) {
        self.log.truncate(n);
    }

    /// Records a refusal (grouping it with a similar recent one, as Redis does).
    #[allow(clippy::too_many_arguments)]
    pub fn log(
        &mut self,
        reason: &'static str,
        context: &'static str,
        object: &[u8],
        username: &[u8],
        now: u64,
        cinfo: String,
    ) {
        for i in 0..self.log.len().min(10) {
            let e = &self.log[i];
            if e.reason == reason
                && e.context == context
                && now.abs_diff(e.ctime) <= 60_000
                && &*e.object == object
                && &*e.username == username
            {
                let mut e = self.log.remove(i).expect("index within the log");
                e.count += 1;
                e.ctime = now;
                e.cinfo = cinfo;
                self.log.push_front(e);
                return;
            }
        }
        self.log.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object: object.into(),
            username: username.into(),
            ctime: now,
            cinfo,
        });
        self.log.truncate(self.log_max);
    }
}

/// The permission check of a command a script calls (ACL log context `lua`).
pub fn check_script(
    ctx: &mut Ctx<'_>,
    cmd: &'static Command,
    args: &[&[u8]],
) -> Result<(), String> {
    check_in(ctx, cmd, args, "lua")
}

/// Whether the connection's user may run `args` (`redis.acl_check_cmd`: nothing is logged).
pub fn allows(ctx: &Ctx<'_>, cmd: &'static Command, args: &[&[u8]]) -> bool {
    let name = user_name(ctx);
    let acl = ctx.shared.acl.read();
    if acl.open(name) {
        return true;
    }
    acl.user(name)
        .is_some_and(|u| u.check(effective(cmd, args), args).is_ok())
}

/// The text of a refusal (`NOPERM ...`).
pub fn denied_error(cmd: &Command, d: Denied) -> String {
    match d {
        Denied::Command => format!(
            "NOPERM this user has no permissions to run the '{}' command",
            cmd.name
        ),
        Denied::Key(_) => {
            "NOPERM this user has no permissions to access one of the keys used as arguments".into()
        }
        Denied::Channel(_) => {
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .into()
        }
    }
}

pub use table::effective;

// ---------------------------------------------------------------------------------------
// Commands.

use crate::cmd::{CmdResult, Ctx, help, int_arg, sub};

/// Who a connection is logged in as.
pub fn whoami(ctx: &Ctx<'_>) -> Vec<u8> {
    user_name(ctx).to_vec()
}

/// The connection's user: the one it authenticated as, else `default`.
fn user_name<'c>(ctx: &'c Ctx<'_>) -> &'c [u8] {
    match ctx.conn.credential.as_ref() {
        Some(c) if ctx.conn.authenticated => &c.user,
        _ => b"default",
    }
}

/// Whether the connection's user may read every key: what `SORT`'s `BY` and `GET` patterns
/// need, since they name keys that the command's own key check never sees (Redis's rule).
pub fn reads_every_key(ctx: &Ctx<'_>) -> bool {
    let name = user_name(ctx);
    let acl = ctx.shared.acl.read();
    acl.open(name)
        || acl
            .user(name)
            .is_some_and(|u| u.selectors.iter().any(Selector::reads_every_key))
}

/// The permission check the session runs before a command: `Err` with the reply.
pub fn check(ctx: &mut Ctx<'_>, cmd: &'static Command, args: &[&[u8]]) -> Result<(), String> {
    let context = if ctx.conn.multi.is_some() {
        "multi"
    } else {
        "toplevel"
    };
    check_in(ctx, cmd, args, context)
}

/// The check EXEC runs again on each queued command (the user's permissions may have
/// changed since it was queued).
pub fn check_queued(
    ctx: &mut Ctx<'_>,
    cmd: &'static Command,
    args: &[&[u8]],
) -> Result<(), String> {
    check_in(ctx, cmd, args, "multi")
}

fn check_in(
    ctx: &mut Ctx<'_>,
    cmd: &'static Command,
    args: &[&[u8]],
    context: &'static str,
) -> Result<(), String> {
    let name = user_name(ctx);
    let acl = ctx.shared.acl.read();
    if acl.open(name) {
        return Ok(());
    }
    let eff = effective(cmd, args);
    let res = match acl.user(name) {
        Some(u) => u.check(eff, args),
        // A user deleted while connected has no permissions left.
        None => Err(Denied::Command),
    };
    drop(acl);
    let Err(d) = res else {
        return Ok(());
    };
    let (reason, object): (&'static str, &[u8]) = match d {
        Denied::Command => ("command", eff.name.as_bytes()),
        Denied::Key(p) => ("key", args[p]),
        Denied::Channel(p) => ("channel", args[p]),
    };
    let name = name.to_vec();
    let cinfo = client_info(ctx);
    ctx.shared
        .acl
        .write()
        .log(reason, context, object, &name, ctx.now, cinfo);
    Err(denied_error(eff, d))
}

fn client_info(ctx: &Ctx<'_>) -> String {
    let i = &ctx.conn.info;
    format!(
        "id={} addr={} laddr={} fd=0 name={} db=0 user={}",
        i.id,
        i.addr,
        i.laddr,
        i.name.lock(),
        String::from_utf8_lossy(&whoami(ctx))
    )
}

/// Logs a failed AUTH.
pub fn log_auth_failure(ctx: &mut Ctx<'_>, user: &[u8]) {
    let context = if ctx.conn.multi.is_some() {
        "multi"
    } else {
        "toplevel"
    };
    let cinfo = client_info(ctx);
    ctx.shared
        .acl
        .write()
        .log("auth", context, b"AUTH", user, ctx.now, cinfo);
}

fn reply_selector(ctx: &mut Ctx<'_>, s: &Selector) {
    ctx.out.bulk(b"commands");
    ctx.out.bulk(s.describe_commands().as_bytes());
    ctx.out.bulk(b"keys");
    ctx.out.bulk(s.describe_keys().as_bytes());
    ctx.out.bulk(b"channels");
    ctx.out.bulk(s.describe_channels().as_bytes());
}

/// Disconnects the clients logged in as `user` (all, or only the subscribed ones).
fn kill_clients(ctx: &mut Ctx<'_>, user: &[u8], only_subscribed: bool) {
    let mut clients = ctx.shared.clients.lock();
    let doomed: Vec<u64> = clients
        .values()
        .filter(|c| {
            c.id != ctx.conn.id
                && *c.user.lock() == user
                && (!only_subscribed || c.subs.load(std::sync::atomic::Ordering::Relaxed) > 0)
        })
        .map(|c| c.id)
        .collect();
    // Gone from CLIENT LIST at once, as Redis frees them before replying; each connection
    // ends when it sees its kill.
    for id in doomed {
        if let Some(c) = clients.remove(&id) {
            c.kill.cancel();
        }
    }
    drop(clients);
    if ctx.conn.authenticated
        && ctx.conn.credential.as_ref().is_some_and(|c| c.user == user)
        && (!only_subscribed || ctx.conn.sub_count() > 0)
    {
        ctx.conn.close = true;
    }
}

/// Whether `new` still grants every channel permission `old` granted (then no subscriber
/// can have lost one).
fn channels_kept(old: &User, new: &User) -> bool {
    if new.all_channels() {
        return true;
    }
    if old.all_channels() {
        return false;
    }
    old.selectors
        .iter()
        .flat_map(|s| s.channels.iter())
        .all(|c| new.selectors.iter().any(|s| s.channels.contains(c)))
}

/// Redis's `addReplySubcommandSyntaxError`.
fn syntax_error(args: &[&[u8]]) -> crate::cmd::CmdError {
    let sub: String = String::from_utf8_lossy(args[1]).chars().take(128).collect();
    format!("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try ACL HELP.").into()
}

/// ACL subcommands.
pub fn acl(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "acl")?;
    match s.name {
        "acl|setuser" => {
            let before = ctx.shared.acl.read().user(args[2]).cloned();
            ctx.shared.acl.write().set_user(args[2], &args[3..])?;
            // Subscribers that lost a channel are disconnected (Redis's
            // ACLKillPubsubClientsIfNeeded).
            // The connections do not share their subscription lists, so a subscriber of a
            // user whose channel permissions shrank is disconnected.
            if let Some(old) = before {
                let new = ctx.shared.acl.read().user(args[2]).cloned();
                if let Some(new) = new
                    && !channels_kept(&old, &new)
                {
                    kill_clients(ctx, args[2], true);
                }
            }
            ctx.out.ok();
        }
        "acl|deluser" => {
            let n = ctx.shared.acl.write().del_users(&args[2..])?;
            for name in &args[2..] {
                kill_clients(ctx, name, false);
            }
            ctx.out.int(n as i64);
        }
        "acl|getuser" => {
            let Some(u) = ctx.shared.acl.read().user(args[2]).cloned() else {
                ctx.out.null();
                return Ok(());
            };
            ctx.out.map(6);
            ctx.out.bulk(b"flags");
            let flags = u.flags();
            ctx.out.set(flags.len());
            for f in flags {
                ctx.out.bulk(f.as_bytes());
            }
            ctx.out.bulk(b"passwords");
            ctx.out.array(u.passwords.len());
            for p in &u.passwords {
                ctx.out.bulk(p.as_bytes());
            }
            reply_selector(ctx, &u.selectors[0]);
            ctx.out.bulk(b"selectors");
            ctx.out.array(u.selectors.len() - 1);
            for s in &u.selectors[1..] {
                ctx.out.map(3);
                reply_selector(ctx, s);
            }
        }
        "acl|list" | "acl|users" => {
            let acl = ctx.shared.acl.read();
            let lines: Vec<Vec<u8>> = acl
                .users
                .values()
                .map(|u| {
                    if s.name == "acl|users" {
                        u.name.to_vec()
                    } else {
                        let mut l = b"user ".to_vec();
                        l.extend_from_slice(&u.name);
                        l.push(b' ');
                        l.extend_from_slice(u.describe().as_bytes());
                        l
                    }
                })
                .collect();
            drop(acl);
            ctx.out.array(lines.len());
            for l in lines {
                ctx.out.bulk(&l);
            }
        }
        "acl|whoami" => {
            let me = whoami(ctx);
            ctx.out.bulk(&me);
        }
        "acl|load" | "acl|save" => {
            return Err("ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.".into());
        }
        "acl|cat" => {
            if args.len() == 2 {
                ctx.out.array(CATEGORIES.len());
                for c in CATEGORIES {
                    ctx.out.bulk(c.as_bytes());
                }
            } else if args.len() == 3 {
                let cat = String::from_utf8_lossy(args[2]).to_ascii_lowercase();
                if !CATEGORIES.contains(&cat.as_str()) {
                    let shown: String =
                        String::from_utf8_lossy(args[2]).chars().take(128).collect();
                    return Err(format!("ERR Unknown category '{shown}'").into());
                }
                let names: Vec<&str> = UNIVERSE
                    .all
                    .iter()
                    .filter(|c| in_category(c, &cat))
                    .map(|c| c.name)
                    .collect();
                ctx.out.array(names.len());
                for n in names {
                    ctx.out.bulk(n.as_bytes());
                }
            } else {
                return Err(syntax_error(args));
            }
        }
        "acl|genpass" | "acl|log" if args.len() > 3 => return Err(syntax_error(args)),
        "acl|genpass" => {
            let bits = match args.get(2) {
                Some(a) => int_arg(a)?,
                None => 256,
            };
            if bits <= 0 || bits > 4096 {
                return Err("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096".into());
            }
            let chars = ((bits + 3) / 4) as usize;
            let pass: String = (0..chars)
                .map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)]))
                .collect();
            ctx.out.bulk(pass.as_bytes());
        }
        "acl|log" => {
            let mut count = 10i64;
            if let Some(a) = args.get(2) {
                if a.eq_ignore_ascii_case(b"reset") {
                    ctx.shared.acl.write().log.clear();
                    ctx.out.ok();
                    return Ok(());
                }
                count = int_arg(a)?.max(0);
            }
            let entries: Vec<LogEntry> = ctx
                .shared
                .acl
                .read()
                .log
                .iter()
                .take(count as usize)
                .cloned()
                .collect();
            ctx.out.array(entries.len());
            for e in entries {
                ctx.out.map(7);
                ctx.out.bulk(b"count");
                ctx.out.int(e.count as i64);
                ctx.out.bulk(b"reason");
                ctx.out.bulk(e.reason.as_bytes());
                ctx.out.bulk(b"context");
                ctx.out.bulk(e.context.as_bytes());
                ctx.out.bulk(b"object");
                ctx.out.bulk(&e.object);
                ctx.out.bulk(b"username");
                ctx.out.bulk(&e.username);
                ctx.out.bulk(b"age-seconds");
                ctx.out
                    .double(ctx.now.saturating_sub(e.ctime) as f64 / 1000.0);
                ctx.out.bulk(b"client-info");
                ctx.out.bulk(e.cinfo.as_bytes());
            }
        }
        "acl|dryrun" => {
            let Some(u) = ctx.shared.acl.read().user(args[2]).cloned() else {
                return Err(
                    format!("ERR User '{}' not found", String::from_utf8_lossy(args[2])).into(),
                );
            };
            let rest = &args[3..];
            let mut lb = [0u8; 32];
            let Some(cmd) = crate::cmd::lower(rest[0], &mut lb).and_then(table::lookup) else {
                return Err(format!(
                    "ERR Command '{}' not found",
                    String::from_utf8_lossy(rest[0])
                )
                .into());
            };
            let eff = effective(cmd, rest);
            if !table::arity_ok(eff.arity, rest.len()) {
                return Err(
                    format!("ERR wrong number of arguments for '{}' command", eff.name).into(),
                );
            }
            match u.check(eff, rest) {
                Ok(()) => ctx.out.ok(),
                Err(Denied::Command) => ctx.out.bulk(
                    format!(
                        "This user has no permissions to run the '{}' command",
                        eff.name
                    )
                    .as_bytes(),
                ),
                Err(Denied::Key(p)) => ctx.out.bulk(
                    format!(
                        "This user has no permissions to access the '{}' key",
                        String::from_utf8_lossy(rest[p])
                    )
                    .as_bytes(),
                ),
                Err(Denied::Channel(p)) => ctx.out.bulk(
                    format!(
                        "This user has no permissions to access the '{}' channel",
                        String::from_utf8_lossy(rest[p])
                    )
                    .as_bytes(),
                ),
            }
        }
        _ => help(
            ctx,
            &[
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "DELUSER <username> [<username> ...]",
                "    Delete a list of users.",
                "DRYRUN <username> <command> [<arg> ...]",
                "    Returns whether the user can execute the given command without executing the command.",
                "GETUSER <username>",
                "    Get the user's details.",
                "GENPASS [<bits>]",
                "    Generate a secure 256-bit user password. The optional `bits` argument can",
                "    be used to specify a different size.",
                "LIST",
                "    Show users details in config file format.",
                "LOAD",
                "    Reload users from the ACL file.",
                "LOG [<count> | RESET]",
                "    Show the ACL log entries.",
                "SAVE",
                "    Save the current config to the ACL file.",
                "SETUSER <username> <attribute> [<attribute> ...]",
                "    Create or modify a user with the specified attributes.",
                "USERS",
                "    List all the registered usernames.",
                "WHOAMI",
                "    Return the current connection username.",
                "HELP",
                "    Print this help.",
            ],
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::session::Session;

    #[test]
    fn users_log_in_with_their_passwords_only_once_enabled() {
        let mut s = Session::new();
        assert_eq!(s.cmd(&["ACL", "WHOAMI"]), "$7\r\ndefault\r\n");
        assert_eq!(s.cmd(&["ACL", "SETUSER", "newuser"]), "+OK\r\n");
        assert_eq!(
            s.cmd(&["ACL", "SETUSER", "a a"]),
            "-ERR Usernames can't contain spaces or null characters\r\n"
        );
        s.cmd(&["ACL", "SETUSER", "newuser", ">passwd1"]);
        assert!(
            s.cmd(&["AUTH", "newuser", "passwd1"])
                .starts_with("-WRONGPASS")
        );
        s.cmd(&["ACL", "SETUSER", "newuser", "on", "+acl", ">passwd2"]);
        assert_eq!(s.cmd(&["AUTH", "newuser", "passwd1"]), "+OK\r\n");
        assert_eq!(s.cmd(&["AUTH", "newuser", "passwd2"]), "+OK\r\n");
        assert_eq!(s.cmd(&["ACL", "WHOAMI"]), "$7\r\nnewuser\r\n");
        s.cmd(&["ACL", "SETUSER", "newuser", "<passwd1"]);
        assert!(
            s.cmd(&["AUTH", "newuser", "passwd1"])
                .starts_with("-WRONGPASS")
        );
        // passwd4's SHA-256, as Redis's own test gives it.
        s.cmd(&[
            "ACL",
            "SETUSER",
            "newuser",
            "#34344e4d60c2b6d639b7bd22e18f2b0b91bc34bf0ac5f9952744435093cfb4e6",
        ]);
        assert_eq!(s.cmd(&["AUTH", "newuser", "passwd4"]), "+OK\r\n");
        assert!(
            s.cmd(&["ACL", "SETUSER", "newuser", "#34344e4d"])
                .starts_with("-ERR Error in ACL SETUSER modifier '#34344e4d': The password hash must be exactly 64 characters")
        );
        // The failed logins are in the log.
        let log = s.cmd(&["ACL", "LOG", "1"]);
        assert!(log.contains("$6\r\nreason\r\n$4\r\nauth\r\n"), "{log}");
    }

    #[test]
    fn commands_keys_and_channels_are_checked_before_running() {
        let mut s = Session::new();
        s.cmd(&["ACL", "SETUSER", "u", "on", "nopass", "+acl"]);
        s.cmd(&["AUTH", "u", "x"]);
        assert_eq!(
            s.cmd(&["SET", "foo", "bar"]),
            "-NOPERM this user has no permissions to run the 'set' command\r\n"
        );
        s.cmd(&["ACL", "SETUSER", "u", "+set"]);
        assert_eq!(
            s.cmd(&["SET", "foo", "bar"]),
            "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
        );
        s.cmd(&["ACL", "SETUSER", "u", "allcommands", "~foo:*", "%R~ro:*"]);
        assert_eq!(s.cmd(&["SET", "foo:1", "a"]), "+OK\r\n");
        assert!(s.cmd(&["SET", "ro:1", "a"]).starts_with("-NOPERM"));
        assert_eq!(s.cmd(&["GET", "ro:1"]), "$-1\r\n");
        assert!(
            s.cmd(&["PUBLISH", "ch", "m"])
                .starts_with("-NOPERM this user has no permissions to access one of the channels")
        );
        s.cmd(&["ACL", "SETUSER", "u", "&ch*"]);
        assert_eq!(s.cmd(&["PUBLISH", "ch1", "m"]), ":0\r\n");
        // A pattern subscription needs the same pattern, literally.
        assert!(s.cmd(&["PSUBSCRIBE", "ch1*"]).starts_with("-NOPERM"));
        // A subcommand can be blocked alone; a failure inside MULTI aborts EXEC.
        s.cmd(&["ACL", "SETUSER", "u", "-client|kill"]);
        assert!(s.cmd(&["CLIENT", "KILL", "ID", "1"]).starts_with("-NOPERM"));
        assert_eq!(s.cmd(&["CLIENT", "ID"]).as_bytes()[0], b':');
        s.cmd(&["MULTI"]);
        assert!(s.cmd(&["CLIENT", "KILL", "ID", "1"]).starts_with("-NOPERM"));
        assert!(s.cmd(&["EXEC"]).starts_with("-EXECABORT"));
        let log = s.cmd(&["ACL", "LOG"]);
        assert!(
            log.contains("$5\r\nmulti\r\n$6\r\nobject\r\n$11\r\nclient|kill"),
            "{log}"
        );
        assert_eq!(s.cmd(&["ACL", "LOG", "RESET"]), "+OK\r\n");
        assert_eq!(s.cmd(&["ACL", "LOG"]), "*0\r\n");
        // Permissions lost after queueing are checked again at EXEC.
        let mut admin = Session::on(s.shared().clone());
        s.cmd(&["MULTI"]);
        s.cmd(&["SET", "foo:2", "x"]);
        admin.cmd(&["ACL", "SETUSER", "u", "-set"]);
        assert_eq!(
            s.cmd(&["EXEC"]),
            "*1\r\n-NOPERM this user has no permissions to run the 'set' command\r\n"
        );
        let log = s.cmd(&["ACL", "LOG", "1"]);
        assert!(
            log.contains("$5\r\nmulti\r\n$6\r\nobject\r\n$3\r\nset"),
            "{log}"
        );
    }

    #[test]
    fn read_and_write_patterns_follow_each_keys_access() {
        let mut s = Session::new();
        let mut u = Session::on(s.shared().clone());
        s.cmd(&[
            "ACL",
            "SETUSER",
            "rw",
            "on",
            "nopass",
            "%R~read*",
            "%W~write*",
            "+@all",
        ]);
        u.cmd(&["AUTH", "rw", "x"]);
        s.cmd(&["SET", "read", "bar"]);
        assert_eq!(u.cmd(&["COPY", "read", "write"]), ":1\r\n");
        assert!(u.cmd(&["COPY", "write", "read"]).starts_with("-NOPERM"));
        assert_eq!(u.cmd(&["SET", "writestr", "bar"]), "+OK\r\n");
        assert!(
            u.cmd(&["SET", "writestr", "bar", "GET"])
                .starts_with("-NOPERM")
        );
        assert!(u.cmd(&["INCR", "write1"]).starts_with("-NOPERM"));
        assert_eq!(u.cmd(&["LPUSH", "writelist", "1"]), ":1\r\n");
        assert!(u.cmd(&["SET", "readstr", "x"]).starts_with("-NOPERM"));
        assert_eq!(
            u.cmd(&["BITFIELD", "readstr", "GET", "u4", "0"]),
            "*1\r\n:0\r\n"
        );
        assert!(
            u.cmd(&["BITFIELD", "readstr", "SET", "u4", "0", "1"])
                .starts_with("-NOPERM")
        );
        // Selectors are not additive: each must allow the whole command.
        s.cmd(&[
            "ACL",
            "SETUSER",
            "sel",
            "on",
            "nopass",
            "(%R~read* +@all)",
            "(%W~write* +@all)",
        ]);
        u.cmd(&["AUTH", "sel", "x"]);
        assert_eq!(u.cmd(&["GET", "read"]), "$3\r\nbar\r\n");
        assert!(u.cmd(&["COPY", "read", "write2"]).starts_with("-NOPERM"));
    }

    #[test]
    fn users_are_described_as_redis_describes_them() {
        let mut s = Session::new();
        s.cmd(&[
            "ACL",
            "SETUSER",
            "hpuser",
            "on",
            "nopass",
            "resetchannels",
            "&foo",
            "+@all",
        ]);
        let list = s.cmd(&["ACL", "LIST"]);
        assert!(
            list.contains("user hpuser on nopass resetchannels &foo +@all\r\n"),
            "{list}"
        );
        assert!(
            list.contains("user default on nopass ~* &* +@all\r\n"),
            "{list}"
        );
        s.cmd(&[
            "ACL",
            "SETUSER",
            "x",
            "-@all",
            "+@set",
            "+acl",
            "+select|0",
            "~k*",
            "(+get ~g*)",
        ]);
        let u = s.cmd(&["ACL", "GETUSER", "x"]);
        // Categories first, then single commands in table order.
        assert!(u.contains("-@all +@set +select|0 +acl"), "{u}");
        assert!(u.contains("$4\r\nkeys\r\n$3\r\n~k*\r\n"), "{u}");
        assert!(
            u.contains("$8\r\ncommands\r\n$10\r\n-@all +get\r\n$4\r\nkeys\r\n$3\r\n~g*\r\n"),
            "{u}"
        );
        assert_eq!(s.cmd(&["ACL", "GETUSER", "nobody"]), "$-1\r\n");
        assert!(
            s.cmd(&["ACL", "SETUSER", "x", "(+get", "~g*"])
                .starts_with("-ERR Unmatched parenthesis in acl selector starting at '(+get'.")
        );
        assert!(
            s.cmd(&["ACL", "SETUSER", "x", "+nosuchcommand"])
                .ends_with(": Unknown command or category name in ACL\r\n")
        );
        assert!(
            s.cmd(&["ACL", "SETUSER", "x", "+select|0|1"])
                .ends_with(": Allowing first-arg of a subcommand is not supported\r\n")
                || s.cmd(&["ACL", "SETUSER", "x", "+config|get|x"])
                    .ends_with(": Allowing first-arg of a subcommand is not supported\r\n")
        );
        assert_eq!(s.cmd(&["ACL", "DRYRUN", "x", "get", "gkey"]), "+OK\r\n");
        assert_eq!(
            s.cmd(&["ACL", "DRYRUN", "x", "get", "zkey"]),
            "$53\r\nThis user has no permissions to access the 'zkey' key\r\n"
        );
        assert_eq!(
            s.cmd(&["ACL", "DELUSER", "default"]),
            "-ERR The 'default' user cannot be removed\r\n"
        );
        assert_eq!(s.cmd(&["ACL", "DELUSER", "x", "nobody"]), ":1\r\n");
        assert_eq!(
            s.cmd(&["ACL", "USERS"]),
            "*2\r\n$7\r\ndefault\r\n$6\r\nhpuser\r\n"
        );
        assert_eq!(s.cmd(&["ACL", "GENPASS", "5"]).len(), "$2\r\nab\r\n".len());
        assert!(
            s.cmd(&["ACL", "CAT"])
                .starts_with("*21\r\n$8\r\nkeyspace\r\n")
        );
        assert!(
            s.cmd(&["ACL", "CAT", "nope"])
                .starts_with("-ERR Unknown category 'nope'")
        );
        assert_eq!(
            s.cmd(&["ACL", "CAT", "a", "b"]),
            "-ERR unknown subcommand or wrong number of arguments for 'CAT'. Try ACL HELP.\r\n"
        );
        // A category alone is described as itself, from either end.
        for cat in super::CATEGORIES.iter().filter(|c| **c != "scripting") {
            s.cmd(&[
                "ACL",
                "SETUSER",
                "add",
                "reset",
                "+@all",
                &format!("-@{cat}"),
            ]);
            let u = s.cmd(&["ACL", "GETUSER", "add"]);
            assert!(u.contains(&format!("\r\n+@all -@{cat}\r\n")), "{cat}: {u}");
            s.cmd(&[
                "ACL",
                "SETUSER",
                "res",
                "reset",
                "-@all",
                &format!("+@{cat}"),
            ]);
            let u = s.cmd(&["ACL", "GETUSER", "res"]);
            assert!(u.contains(&format!("\r\n-@all +@{cat}\r\n")), "{cat}: {u}");
        }
        s.cmd(&["ACL", "SETUSER", "bob", "+memory|stats"]);
        assert!(
            s.cmd(&["ACL", "GETUSER", "bob"])
                .contains("\r\n-@all +memory|stats\r\n")
        );
        s.cmd(&["ACL", "SETUSER", "bob", "+memory"]);
        assert!(
            s.cmd(&["ACL", "GETUSER", "bob"])
                .contains("\r\n-@all +memory\r\n")
        );
        s.cmd(&["ACL", "SETUSER", "bob", "+@all", "+client|id"]);
        assert!(s.cmd(&["ACL", "GETUSER", "bob"]).contains("\r\n+@all\r\n"));
        s.cmd(&["ACL", "SETUSER", "bob", "+@all", "-memory|stats"]);
        assert!(
            s.cmd(&["ACL", "GETUSER", "bob"])
                .contains("\r\n+@all -memory|stats\r\n")
        );
    }

    #[test]
    fn requirepass_is_the_default_users_password() {
        let mut s = Session::new();
        assert!(
            s.cmd(&["AUTH", "x"])
                .starts_with("-ERR AUTH <password> called without")
        );
        assert_eq!(s.cmd(&["AUTH", "default", "anything"]), "+OK\r\n");
        s.cmd(&["CONFIG", "SET", "requirepass", "secret"]);
        let mut t = Session::on(s.shared().clone());
        assert_eq!(t.cmd(&["GET", "k"]), "-NOAUTH Authentication required.\r\n");
        assert!(t.cmd(&["AUTH", "wrong"]).starts_with("-WRONGPASS"));
        assert_eq!(t.cmd(&["AUTH", "secret"]), "+OK\r\n");
        s.cmd(&["ACL", "SETUSER", "bob", "on", ">pw", "+@all", "~*"]);
        let mut b = Session::on(s.shared().clone());
        assert!(
            b.cmd(&["HELLO", "3", "AUTH", "bob", "nope"])
                .starts_with("-WRONGPASS")
        );
        assert!(b.cmd(&["HELLO", "3", "AUTH", "bob", "pw"]).starts_with("%"));
        assert_eq!(b.cmd(&["ACL", "WHOAMI"]), "$3\r\nbob\r\n");
        assert!(s.shared().password_ok(b"bob", b"pw"));
        // acl-pubsub-default decides what new users start with.
        s.cmd(&["CONFIG", "SET", "acl-pubsub-default", "allchannels"]);
        s.cmd(&["ACL", "SETUSER", "pub", "on", "nopass", "+publish"]);
        let mut p = Session::on(s.shared().clone());
        p.cmd(&["AUTH", "pub", "x"]);
        assert_eq!(p.cmd(&["PUBLISH", "any", "m"]), ":0\r\n");
        assert!(!s.shared().password_ok(b"bob", b"px"));
    }
}

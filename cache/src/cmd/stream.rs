//! Stream commands (`XADD`, `XRANGE`, `XREAD`, consumer groups, `XINFO` ...), following Redis
//! 7.0's `t_stream.c`: the same argument parsing order, error texts and reply shapes.
//!
//! Blocking reads use the connection's generic blocking: the command is run again when a
//! blocked-on key is written (or deleted). `XREAD` rewrites `$` into the concrete last ID before
//! it blocks, so the retry waits for entries after what existed when it blocked, as Redis does.

use super::table::{self, Command};
use super::{CmdError, CmdResult, Ctx, NO_KEY, SYNTAX, WRONGTYPE, arity_error, eq_ic, int_arg};
use crate::db::Db;
use crate::notify;
use crate::reply::Reply;
use crate::stream::{AppendError, Group, INVALID_ENTRIES_READ, NodeLimits, Stream, StreamId, Trim};
use crate::value::{Bytes, Value};

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const NOT_GREATER: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
/// A blocked XREAD without COUNT is served at most this many entries per stream (Redis's
/// `XREAD_BLOCKED_DEFAULT_COUNT`).
const BLOCKED_DEFAULT_COUNT: &[u8] = b"1000";

fn append_error(e: AppendError) -> CmdError {
    CmdError::Static(match e {
        AppendError::NotGreater => NOT_GREATER,
        AppendError::TooLarge => "ERR Elements are too large to be stored",
    })
}

fn lossy(a: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(a)
}

fn strict_id(a: &[u8]) -> Result<StreamId, CmdError> {
    StreamId::parse(a, 0, true, false)
        .map(|(id, _)| id)
        .ok_or(CmdError::Static(INVALID_ID))
}

/// Parses a range bound: `(id` is exclusive (then `-`/`+` are refused), else `-`, `+`, `ms`,
/// `ms-seq`. Exclusive bounds are moved inwards; `start` says which way.
fn interval_id(a: &[u8], missing_seq: u64, start: bool) -> Result<StreamId, CmdError> {
    if a.len() > 1 && a[0] == b'(' {
        let id = StreamId::parse(&a[1..], missing_seq, true, false)
            .map(|(id, _)| id)
            .ok_or(CmdError::Static(INVALID_ID))?;
        if start {
            id.incr()
                .ok_or(CmdError::Static("ERR invalid start ID for the interval"))
        } else {
            id.decr()
                .ok_or(CmdError::Static("ERR invalid end ID for the interval"))
        }
    } else {
        StreamId::parse(a, missing_seq, false, false)
            .map(|(id, _)| id)
            .ok_or(CmdError::Static(INVALID_ID))
    }
}

fn id_bulk(out: &mut Reply, id: StreamId) {
    out.bulk(id.to_string().as_bytes());
}

fn reply_entry(out: &mut Reply, id: StreamId, fields: &[Bytes]) {
    out.array(2);
    id_bulk(out, id);
    out.array(fields.len());
    for f in fields {
        out.bulk(f);
    }
}

/// Entries of `start..=end`, forwards or backwards (empty if `start > end`).
fn range(
    s: &Stream,
    start: StreamId,
    end: StreamId,
    rev: bool,
) -> Box<dyn Iterator<Item = (&StreamId, &Box<[Bytes]>)> + '_> {
    if start > end {
        return Box::new(std::iter::empty());
    }
    let r = s.entries.range(start..=end);
    if rev { Box::new(r.rev()) } else { Box::new(r) }
}

fn read<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d Stream>, CmdError> {
    match db.get(key, now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Stream(s)) => Ok(Some(s)),
        Some(_) => Err(WRONGTYPE.into()),
    }
}

fn existing_mut<'d>(
    db: &'d mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d mut Stream>, CmdError> {
    match db.get_mut(key, now).map(|e| &mut e.value) {
        None => Ok(None),
        Some(Value::Stream(s)) => Ok(Some(s)),
        Some(_) => Err(WRONGTYPE.into()),
    }
}

fn nogroup(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::Owned(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        lossy(key),
        lossy(group)
    ))
}

fn nogroup_for_key(group: &[u8], key: &[u8]) -> CmdError {
    CmdError::Owned(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        lossy(group),
        lossy(key)
    ))
}

fn subcommand_syntax(args: &[&[u8]]) -> CmdError {
    CmdError::Owned(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        lossy(&args[1][..args[1].len().min(128)]),
        lossy(args[0]).to_uppercase()
    ))
}

/// Finds and arity-checks the subcommand `args[1]` of `container`, as Redis's dispatcher does.
fn sub_of(args: &[&[u8]], container: &str) -> Result<&'static Command, CmdError> {
    let cmd = table::lookup(container.as_bytes()).ok_or(CmdError::Static(SYNTAX))?;
    let s = table::lookup_sub(cmd, args[1]).ok_or_else(|| {
        CmdError::Owned(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            lossy(args[1]),
            container.to_uppercase()
        ))
    })?;
    if !table::arity_ok(s.arity, args.len()) {
        return Err(arity_error(s.name));
    }
    Ok(s)
}

fn help(out: &mut Reply, name: &str, lines: &[&str]) {
    out.array(lines.len() + 3);
    out.simple(&format!(
        "{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        out.simple(l);
    }
    out.simple("HELP");
    out.simple("    Print this help.");
}

/// The node limits from `stream-node-max-entries` / `stream-node-max-bytes`.
fn node_limits(ctx: &Ctx<'_>) -> NodeLimits {
    let params = ctx.shared.params.read();
    let get = |k: &str| params.get(k).and_then(|v| v.parse::<u64>().ok());
    let d = NodeLimits::default();
    NodeLimits {
        entries: get("stream-node-max-entries").unwrap_or(d.entries),
        bytes: get("stream-node-max-bytes").map_or(d.bytes, |b| b as usize),
    }
}

/// The parsed options of XADD and XTRIM.
#[derive(Default)]
struct AddTrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    no_mkstream: bool,
    /// The ID (and whether its sequence was given), `None` for `*`.
    id: Option<(StreamId, bool)>,
    /// Where the ID (XADD) or the end of the options (XTRIM) is.
    idpos: usize,
}

fn parse_add_trim(args: &[&[u8]], xadd: bool, limits: NodeLimits) -> Result<AddTrimArgs, CmdError> {
    const BOTH: &str =
        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    let mut a = AddTrimArgs::default();
    let mut limit_given = false;
    let mut limit: i64 = 0;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = args[i];
        if xadd && opt == b"*" {
            break;
        } else if (eq_ic(opt, "MAXLEN") || eq_ic(opt, "MINID")) && more > 0 {
            if a.trim.is_some() {
                return Err(BOTH.into());
            }
            // An optional `~` (approximate) or `=` (exact) before the threshold.
            let next = args[i + 1];
            a.approx = more >= 2 && next == b"~";
            if more >= 2 && (next == b"~" || next == b"=") {
                i += 1;
            }
            let v = args[i + 1];
            a.trim = Some(if eq_ic(opt, "MAXLEN") {
                let n = int_arg(v)?;
                if n < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(strict_id(v)?)
            });
            i += 1;
        } else if eq_ic(opt, "LIMIT") && more > 0 {
            limit = int_arg(args[i + 1])?;
            if limit < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            limit_given = true;
            i += 1;
        } else if xadd && eq_ic(opt, "NOMKSTREAM") {
            a.no_mkstream = true;
        } else if xadd {
            let (id, seq_given) =
                StreamId::parse(opt, 0, true, true).ok_or(CmdError::Static(INVALID_ID))?;
            a.id = Some((id, seq_given));
            break;
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    a.idpos = i;
    if limit != 0 && a.trim.is_none() {
        return Err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy".into(),
        );
    }
    if !xadd && a.trim.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".into());
    }
    if limit_given {
        if !a.approx {
            return Err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option".into(),
            );
        }
        a.limit = limit as u64;
    } else if a.approx {
        // Redis bounds the work of a `~` trim to about 100 nodes.
        let l = limits.entries.saturating_mul(100);
        a.limit = if l == 0 { 10_000 } else { l.min(1_000_000) };
    }
    Ok(a)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value ...
pub fn xadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let limits = node_limits(ctx);
    let a = parse_add_trim(args, true, limits)?;
    let field_pos = a.idpos + 1;
    if args.len() < field_pos + 2 || !(args.len() - field_pos).is_multiple_of(2) {
        return Err(arity_error("xadd"));
    }
    if let Some((id, true)) = a.id
        && id.is_zero()
    {
        return Err("ERR The ID specified in XADD must be greater than 0-0".into());
    }
    let key = args[1];
    let (db, out, now) = ctx.split();
    let fields = &args[field_pos..];
    let created = match existing_mut(db, key, now)? {
        Some(s) => {
            if s.last_id == StreamId::MAX {
                return Err(
                    "ERR The stream has exhausted the last possible ID, unable to add more items"
                        .into(),
                );
            }
            let id = s.append(a.id, fields, now, limits).map_err(append_error)?;
            id_bulk(out, id);
            if let Some(t) = a.trim {
                s.trim(t, a.approx, a.limit);
            }
            false
        }
        None if a.no_mkstream => {
            out.null();
            return Ok(());
        }
        None => {
            let mut s = Stream::default();
            let id = s.append(a.id, fields, now, limits).map_err(append_error)?;
            id_bulk(out, id);
            if let Some(t) = a.trim {
                s.trim(t, a.approx, a.limit);
            }
            db.insert(key, Value::Stream(Box::new(s)), 0, now);
            true
        }
    };
    if !created {
        db.modified(key);
    }
    Ok(())
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub fn xtrim(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let limits = node_limits(ctx);
    let a = parse_add_trim(args, false, limits)?;
    let (db, out, now) = ctx.split();
    let Some(s) = existing_mut(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let n = a.trim.map_or(0, |t| s.trim(t, a.approx, a.limit));
    out.int(n as i64);
    if n > 0 {
        db.modified(args[1]);
    }
    Ok(())
}

/// XRANGE key start end [COUNT n] / XREVRANGE key end start [COUNT n]
pub fn xrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let rev = args[0].len() == 9;
    let (sa, ea) = if rev {
        (args[3], args[2])
    } else {
        (args[2], args[3])
    };
    let start = interval_id(sa, 0, true)?;
    let end = interval_id(ea, u64::MAX, false)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if eq_ic(args[j], "COUNT") && j + 1 < args.len() {
            count = int_arg(args[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let (db, out, now) = ctx.split();
    let Some(s) = read(db, args[1], now)? else {
        out.array(0);
        return Ok(());
    };
    if count == 0 {
        out.null_array();
        return Ok(());
    }
    let limit = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    let items: Vec<_> = range(s, start, end, rev).take(limit).collect();
    out.array(items.len());
    for (id, f) in items {
        reply_entry(out, *id, f);
    }
    Ok(())
}

/// XLEN key
pub fn xlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    out.int(read(db, args[1], now)?.map_or(0, |s| s.len()) as i64);
    Ok(())
}

/// XDEL key id [id ...]
pub fn xdel(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let Some(s) = existing_mut(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let ids = args[2..]
        .iter()
        .map(|a| strict_id(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut deleted = 0;
    let mut first = false;
    for id in ids {
        if s.delete(id) {
            first |= id == s.first_id;
            if id > s.max_deleted {
                s.max_deleted = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.is_empty() {
            s.first_id = StreamId::MIN;
        } else if first {
            s.refresh_first_id();
        }
        db.modified(args[1]);
    }
    out.int(deleted);
    Ok(())
}

/// XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]
pub fn xsetid(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let id = strict_id(args[2])?;
    let mut entries_added: i64 = -1;
    let mut max_xdel = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if eq_ic(args[i], "ENTRIESADDED") && more > 0 {
            entries_added = int_arg(args[i + 1])?;
            if entries_added < 0 {
                return Err("ERR entries_added must be positive".into());
            }
            i += 2;
        } else if eq_ic(args[i], "MAXDELETEDID") && more > 0 {
            max_xdel = strict_id(args[i + 1])?;
            if id < max_xdel {
                return Err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id".into());
            }
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let (db, out, now) = ctx.split();
    let s = existing_mut(db, args[1], now)?.ok_or(CmdError::Static(NO_KEY))?;
    if let Some(max) = s.last_valid_id() {
        if id < max {
            return Err(
                "ERR The ID specified in XSETID is smaller than the target stream top item".into(),
            );
        }
        if entries_added != -1 && s.len() as u64 > entries_added as u64 {
            return Err("ERR The entries_added specified in XSETID is smaller than the target stream length".into());
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_xdel.is_zero() {
        s.max_deleted = max_xdel;
    }
    db.resized(args[1]);
    out.ok();
    Ok(())
}

/// What XREAD / XREADGROUP asked for.
struct ReadArgs<'a> {
    timeout: Option<u64>,
    count: Option<i64>,
    noack: bool,
    group: Option<(&'a [u8], &'a [u8])>,
    /// Index of the first key.
    streams: usize,
    /// Number of keys.
    n: usize,
}

fn parse_read<'a>(args: &[&'a [u8]], xreadgroup: bool) -> Result<ReadArgs<'a>, CmdError> {
    let mut r = ReadArgs {
        timeout: None,
        count: None,
        noack: false,
        group: None,
        streams: 0,
        n: 0,
    };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let o = args[i];
        if eq_ic(o, "BLOCK") && more > 0 {
            i += 1;
            let t = int_arg(args[i])
                .map_err(|_| CmdError::Static("ERR timeout is not an integer or out of range"))?;
            if t < 0 {
                return Err("ERR timeout is negative".into());
            }
            r.timeout = Some(t as u64);
        } else if eq_ic(o, "COUNT") && more > 0 {
            i += 1;
            r.count = Some(int_arg(args[i])?.max(0));
        } else if eq_ic(o, "STREAMS") && more > 0 {
            r.streams = i + 1;
            let rest = args.len() - r.streams;
            if !rest.is_multiple_of(2) {
                return Err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.".into());
            }
            r.n = rest / 2;
            break;
        } else if eq_ic(o, "GROUP") && more >= 2 {
            if !xreadgroup {
                return Err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
                        .into(),
                );
            }
            r.group = Some((args[i + 1], args[i + 2]));
            i += 2;
        } else if eq_ic(o, "NOACK") {
            if !xreadgroup {
                return Err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
                        .into(),
                );
            }
            r.noack = true;
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    if r.streams == 0 {
        return Err(SYNTAX.into());
    }
    if xreadgroup && r.group.is_none() {
        return Err("ERR Missing GROUP option for XREADGROUP".into());
    }
    Ok(r)
}

/// XREAD [COUNT n] [BLOCK ms] STREAMS key ... id ...
/// XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...
pub fn xread(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let xreadgroup = args[0].len() == 10;
    let r = parse_read(args, xreadgroup)?;
    // Run again after a write to a key it blocked on (not after its timeout).
    let woken = ctx.conn.retry_deadline.is_some() && ctx.may_block;
    let (db, out, now) = ctx.split();
    let keys = &args[r.streams..r.streams + r.n];
    let id_args = &args[r.streams + r.n..];
    // The ID each stream must be read after; `MAX` stands for `>`.
    let mut ids = Vec::with_capacity(r.n);
    for (key, ida) in keys.iter().zip(id_args) {
        let s = match read(db, key, now) {
            Ok(s) => s,
            // A key that changed type under a blocked XREAD is as good as absent.
            Err(_) if woken && r.group.is_none() => None,
            Err(_) if woken => return Err("UNBLOCKED the stream key no longer exists".into()),
            Err(e) => return Err(e),
        };
        if let Some((g, _)) = r.group {
            let has_group = s.is_some_and(|s| s.groups.contains_key(g));
            if !has_group {
                if woken {
                    return Err(match s {
                        None => "UNBLOCKED the stream key no longer exists".into(),
                        Some(_) => {
                            "NOGROUP the consumer group this client was blocked on no longer exists"
                                .into()
                        }
                    });
                }
                return Err(CmdError::Owned(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    lossy(key),
                    lossy(g)
                )));
            }
        }
        if *ida == b"$" {
            if xreadgroup {
                return Err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.".into());
            }
            ids.push(s.map_or(StreamId::MIN, |s| s.last_id));
        } else if *ida == b">" {
            if !xreadgroup {
                return Err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.".into());
            }
            ids.push(StreamId::MAX);
        } else {
            ids.push(strict_id(ida)?);
        }
    }
    let count = match r.count {
        Some(c) if c > 0 => c as usize,
        _ => usize::MAX,
    };
    let mut body = Reply::new();
    body.resp3 = out.resp3;
    let mut served = 0;
    for (i, key) in keys.iter().enumerate() {
        let Some(Value::Stream(s)) = db.get_mut(key, now).map(|e| &mut e.value) else {
            continue;
        };
        let gt = ids[i];
        let Some((gname, cname)) = r.group else {
            if s.last_valid_id().is_some_and(|m| m > gt) {
                served += 1;
                if !body.resp3 {
                    body.array(2);
                }
                body.bulk(key);
                let items: Vec<_> = match gt.incr() {
                    Some(start) => range(s, start, StreamId::MAX, false).take(count).collect(),
                    None => Vec::new(),
                };
                body.array(items.len());
                for (id, f) in items {
                    reply_entry(&mut body, *id, f);
                }
            }
            continue;
        };
        let Some(group_last) = s.groups.get(gname).map(|g| g.last_id) else {
            continue;
        };
        let history = gt != StreamId::MAX;
        let after = if history {
            gt
        } else if s.last_valid_id().is_some_and(|m| m > group_last) {
            group_last
        } else {
            continue;
        };
        served += 1;
        if !body.resp3 {
            body.array(2);
        }
        body.bulk(key);
        let created = s
            .groups
            .get_mut(gname)
            .is_some_and(|g| g.touch_consumer(cname, now));
        if history {
            serve_history(s, gname, cname, after, count, now, &mut body);
        } else {
            serve_new(s, gname, cname, after, count, r.noack, now, &mut body);
        }
        db.resized(key);
        if created {
            db.log.event(notify::STREAM, "xgroup-createconsumer", key);
        }
    }
    if served > 0 {
        if out.resp3 {
            out.map(served);
        } else {
            out.array(served);
        }
        out.buf.extend_from_slice(&body.buf);
        return Ok(());
    }
    if let Some(t) = r.timeout {
        // Wait for entries after what exists now: `$` becomes the current last ID, and a
        // missing COUNT becomes Redis's blocked default.
        let mut owned: Vec<&[u8]> = Vec::with_capacity(args.len() + 2);
        let resolved: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        owned.push(args[0]);
        if r.count.is_none() {
            owned.push(b"COUNT");
            owned.push(BLOCKED_DEFAULT_COUNT);
        }
        owned.extend_from_slice(&args[1..r.streams + r.n]);
        for (ida, res) in id_args.iter().zip(&resolved) {
            owned.push(if *ida == b"$" { res.as_bytes() } else { ida });
        }
        let keys: Vec<Bytes> = keys.iter().map(|k| Bytes::from(*k)).collect();
        if ctx.block(&owned, keys, t) {
            return Ok(());
        }
    }
    ctx.out.null_array();
    Ok(())
}

/// Serves a consumer its own pending entries after `after` (XREADGROUP with an ID).
fn serve_history(
    s: &mut Stream,
    gname: &[u8],
    cname: &[u8],
    after: StreamId,
    count: usize,
    now: u64,
    out: &mut Reply,
) {
    let Some(start) = after.incr() else {
        out.array(0);
        return;
    };
    let Some(g) = s.groups.get_mut(gname) else {
        out.array(0);
        return;
    };
    let ids: Vec<StreamId> = g
        .consumers
        .get(cname)
        .map(|c| c.pel.range(start..).take(count).copied().collect())
        .unwrap_or_default();
    out.array(ids.len());
    for id in ids {
        match s.entries.get(&id) {
            Some(f) => {
                reply_entry(out, id, f);
                if let Some(n) = g.pel.get_mut(&id) {
                    n.time = now;
                    n.count += 1;
                }
            }
            None => {
                // Pending but deleted from the stream: the ID with a null entry.
                out.array(2);
                id_bulk(out, id);
                out.null_array();
            }
        }
    }
}

/// Delivers new entries after `after` to a consumer, advancing the group.
#[allow(clippy::too_many_arguments)]
fn serve_new(
    s: &mut Stream,
    gname: &[u8],
    cname: &[u8],
    after: StreamId,
    count: usize,
    noack: bool,
    now: u64,
    out: &mut Reply,
) {
    let ids: Vec<StreamId> = match after.incr() {
        Some(start) => range(s, start, StreamId::MAX, false)
            .take(count)
            .map(|(id, _)| *id)
            .collect(),
        None => Vec::new(),
    };
    out.array(ids.len());
    for id in ids {
        s.advance_group(gname, id);
        if let Some(f) = s.entries.get(&id) {
            reply_entry(out, id, f);
        }
        if !noack && let Some(g) = s.groups.get_mut(gname) {
            let n = g.assign(id, cname, now);
            n.time = now;
            n.count = 1;
        }
    }
}

/// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP
pub fn xgroup(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = sub_of(args, "xgroup")?;
    let name = &sub.name["xgroup|".len()..];
    if name == "help" {
        help(
            ctx.out,
            "XGROUP",
            &[
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ],
        );
        return Ok(());
    }
    let (create, setid) = (name == "create", name == "setid");
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let mut i = 5;
    while i < args.len() {
        if create && eq_ic(args[i], "MKSTREAM") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && eq_ic(args[i], "ENTRIESREAD") && i + 1 < args.len() {
            entries_read = int_arg(args[i + 1])?;
            if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
                return Err("ERR value for ENTRIESREAD must be positive or -1".into());
            }
            i += 2;
        } else {
            return Err(subcommand_syntax(args));
        }
    }
    let (key, gname) = (args[2], args[3]);
    let (db, out, now) = ctx.split();
    let exists = existing_mut(db, key, now)?.is_some();
    if !mkstream {
        if !exists {
            return Err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.".into());
        }
        let has = existing_mut(db, key, now)?.is_some_and(|s| s.groups.contains_key(gname));
        if !has && matches!(name, "setid" | "createconsumer" | "delconsumer") {
            return Err(nogroup_for_key(gname, key));
        }
    }
    match name {
        "create" if args.len() <= 8 => {
            let id = if args[4] == b"$" {
                existing_mut(db, key, now)?.map_or(StreamId::MIN, |s| s.last_id)
            } else {
                strict_id(args[4])?
            };
            if !exists {
                db.insert(key, Value::Stream(Box::default()), 0, now);
            }
            let s = existing_mut(db, key, now)?.ok_or(CmdError::Static(NO_KEY))?;
            if s.groups.contains_key(gname) {
                return Err("BUSYGROUP Consumer Group name already exists".into());
            }
            s.groups.insert(gname.into(), Group::new(id, entries_read));
            db.resized(key);
            db.log.event(notify::STREAM, "xgroup-create", key);
            out.ok();
        }
        "setid" if args.len() == 5 || args.len() == 7 => {
            let s = existing_mut(db, key, now)?.ok_or(CmdError::Static(NO_KEY))?;
            let id = if args[4] == b"$" {
                s.last_id
            } else {
                StreamId::parse(args[4], 0, false, false)
                    .map(|(id, _)| id)
                    .ok_or(CmdError::Static(INVALID_ID))?
            };
            if let Some(g) = s.groups.get_mut(gname) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            db.resized(key);
            db.log.event(notify::STREAM, "xgroup-setid", key);
            out.ok();
        }
        "destroy" => {
            let s = existing_mut(db, key, now)?.ok_or(CmdError::Static(NO_KEY))?;
            if s.groups.remove(gname).is_some() {
                // Wakes consumers blocked on the group (they answer -NOGROUP); like Redis, a
                // group change does not invalidate WATCH.
                db.resized(key);
                db.signal_ready(key);
                db.log.event(notify::STREAM, "xgroup-destroy", key);
                out.int(1);
            } else {
                out.int(0);
            }
        }
        "createconsumer" => {
            let s = existing_mut(db, key, now)?.ok_or(CmdError::Static(NO_KEY))?;
            let created = s.groups.get_mut(gname).is_some_and(|g| {
                !g.consumers.contains_key(args[4]) && g.touch_consumer(args[4], now)
            });
            if created {
                db.resized(key);
                db.log.event(notify::STREAM, "xgroup-createconsumer", key);
            }
            out.int(i64::from(created));
        }
        "delconsumer" => {
            let s = existing_mut(db, key, now)?.ok_or(CmdError::Static(NO_KEY))?;
            let mut pending = 0;
            if let Some(n) = s
                .groups
                .get_mut(gname)
                .and_then(|g| g.remove_consumer(args[4]))
            {
                pending = n;
                db.resized(key);
                db.log.event(notify::STREAM, "xgroup-delconsumer", key);
            }
            out.int(pending as i64);
        }
        _ => return Err(subcommand_syntax(args)),
    }
    Ok(())
}

/// XACK key group id [id ...]
pub fn xack(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let has = match read(db, args[1], now)? {
        Some(s) => s.groups.contains_key(args[2]),
        None => false,
    };
    if !has {
        out.int(0);
        return Ok(());
    }
    let ids = args[3..]
        .iter()
        .map(|a| strict_id(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut acked = 0;
    if let Some(g) = existing_mut(db, args[1], now)?.and_then(|s| s.groups.get_mut(args[2])) {
        for id in ids {
            if g.ack(id) {
                acked += 1;
            }
        }
    }
    if acked > 0 {
        db.resized(args[1]);
    }
    out.int(acked);
    Ok(())
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
pub fn xpending(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let n = args.len();
    if n != 3 && !(6..=9).contains(&n) {
        return Err(SYNTAX.into());
    }
    let mut extended = None;
    if n >= 6 {
        let mut at = 3;
        let mut minidle = 0i64;
        if eq_ic(args[3], "IDLE") {
            minidle = int_arg(args[4])?;
            if n < 8 {
                return Err(SYNTAX.into());
            }
            at += 2;
        }
        let count = int_arg(args[at + 2])?.max(0) as usize;
        let start = interval_id(args[at], 0, true)?;
        let end = interval_id(args[at + 1], u64::MAX, false)?;
        // Redis ignores anything after the consumer name.
        let consumer = args.get(at + 3).copied();
        extended = Some((minidle, start, end, count, consumer));
    }
    let (db, out, now) = ctx.split();
    let s = read(db, args[1], now)?;
    let g = s
        .and_then(|s| s.groups.get(args[2]))
        .ok_or_else(|| nogroup(args[1], args[2]))?;
    let Some((minidle, start, end, count, consumer)) = extended else {
        out.array(4);
        out.int(g.pel.len() as i64);
        match (g.pel.keys().next(), g.pel.keys().next_back()) {
            (Some(first), Some(last)) => {
                id_bulk(out, *first);
                id_bulk(out, *last);
                let owners: Vec<_> = g
                    .consumers
                    .iter()
                    .filter(|(_, c)| !c.pel.is_empty())
                    .collect();
                out.array(owners.len());
                for (name, c) in owners {
                    out.array(2);
                    out.bulk(name);
                    out.bulk_int(c.pel.len() as i64);
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return Ok(());
    };
    let ids: Box<dyn Iterator<Item = &StreamId>> = match consumer {
        Some(c) => match g.consumers.get(c) {
            Some(c) if start <= end => Box::new(c.pel.range(start..=end)),
            Some(_) => Box::new(std::iter::empty()),
            None => {
                out.array(0);
                return Ok(());
            }
        },
        None if start <= end => Box::new(g.pel.range(start..=end).map(|(k, _)| k)),
        None => Box::new(std::iter::empty()),
    };
    let mut rows = Vec::new();
    for id in ids {
        if rows.len() >= count {
            break;
        }
        let Some(nack) = g.pel.get(id) else { continue };
        let idle = (now as i64 - nack.time as i64).max(0);
        if minidle != 0 && idle < minidle {
            continue;
        }
        rows.push((*id, nack, idle));
    }
    out.array(rows.len());
    for (id, nack, idle) in rows {
        out.array(4);
        id_bulk(out, id);
        out.bulk(&nack.consumer);
        out.int(idle);
        out.int(nack.count as i64);
    }
    Ok(())
}

fn int_arg_msg(a: &[u8], msg: &'static str) -> Result<i64, CmdError> {
    crate::resp::parse_i64(a).ok_or(CmdError::Static(msg))
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms] [RETRYCOUNT n]
/// [FORCE] [JUSTID] [LASTID id]
pub fn xclaim(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    if !read(db, args[1], now)?.is_some_and(|s| s.groups.contains_key(args[2])) {
        return Err(nogroup(args[1], args[2]));
    }
    let minidle = int_arg_msg(args[4], "ERR Invalid min-idle-time argument for XCLAIM")?.max(0);
    let mut j = 5;
    let mut ids = Vec::new();
    while j < args.len() {
        match StreamId::parse(args[j], 0, true, false) {
            Some((id, _)) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut last_id = StreamId::MIN;
    let nowi = now as i64;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = args[j];
        if eq_ic(opt, "FORCE") {
            force = true;
        } else if eq_ic(opt, "JUSTID") {
            justid = true;
        } else if eq_ic(opt, "IDLE") && more > 0 {
            j += 1;
            let v = int_arg_msg(args[j], "ERR Invalid IDLE option argument for XCLAIM")?;
            deliverytime = nowi.saturating_sub(v);
        } else if eq_ic(opt, "TIME") && more > 0 {
            j += 1;
            deliverytime = int_arg_msg(args[j], "ERR Invalid TIME option argument for XCLAIM")?;
        } else if eq_ic(opt, "RETRYCOUNT") && more > 0 {
            j += 1;
            retrycount = int_arg_msg(args[j], "ERR Invalid RETRYCOUNT option argument for XCLAIM")?;
        } else if eq_ic(opt, "LASTID") && more > 0 {
            j += 1;
            last_id = strict_id(args[j])?;
        } else {
            return Err(CmdError::Owned(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                lossy(opt)
            )));
        }
        j += 1;
    }
    let deliverytime = if deliverytime == -1 || deliverytime < 0 || deliverytime > nowi {
        now
    } else {
        deliverytime as u64
    };
    let cname = args[3];
    let Some(s) = existing_mut(db, args[1], now)? else {
        return Err(nogroup(args[1], args[2]));
    };
    let Some(mut g) = s.groups.remove(args[2]) else {
        return Err(nogroup(args[1], args[2]));
    };
    if last_id > g.last_id {
        g.last_id = last_id;
    }
    let mut body = Reply::new();
    body.resp3 = out.resp3;
    let mut n = 0;
    let mut consumer_ready = false;
    let mut created_consumer = false;
    for id in ids {
        let pending = g.pel.contains_key(&id);
        if !s.entries.contains_key(&id) {
            // Pending entries deleted from the stream are dropped from the PEL.
            if pending {
                g.ack(id);
            }
            continue;
        }
        if !pending && !force {
            continue;
        }
        if pending
            && minidle != 0
            && let Some(nack) = g.pel.get(&id)
            && (nowi - nack.time as i64) < minidle
        {
            continue;
        }
        if !consumer_ready {
            created_consumer |= g.touch_consumer(cname, now);
            consumer_ready = true;
        }
        let nack = g.assign(id, cname, now);
        nack.time = deliverytime;
        if retrycount >= 0 {
            nack.count = retrycount as u64;
        } else if !justid {
            nack.count += 1;
        }
        if justid {
            id_bulk(&mut body, id);
        } else if let Some(f) = s.entries.get(&id) {
            reply_entry(&mut body, id, f);
        }
        n += 1;
    }
    s.groups.insert(args[2].into(), g);
    db.resized(args[1]);
    if created_consumer {
        db.log
            .event(notify::STREAM, "xgroup-createconsumer", args[1]);
    }
    out.array(n);
    out.buf.extend_from_slice(&body.buf);
    Ok(())
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]
pub fn xautoclaim(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let minidle = int_arg_msg(args[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM")?.max(0);
    let start = interval_id(args[5], 0, true)?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ic(args[j], "COUNT") && more > 0 {
            // Redis bounds COUNT so that its attempts and buffers cannot overflow.
            let max = i64::MAX / 16;
            count = match crate::resp::parse_i64(args[j + 1]) {
                Some(c) if (1..=max).contains(&c) => c,
                _ => return Err("ERR COUNT must be > 0".into()),
            };
            j += 1;
        } else if eq_ic(args[j], "JUSTID") {
            justid = true;
        } else {
            return Err(SYNTAX.into());
        }
        j += 1;
    }
    let (db, out, now) = ctx.split();
    if !read(db, args[1], now)?.is_some_and(|s| s.groups.contains_key(args[2])) {
        return Err(nogroup(args[1], args[2]));
    }
    let Some(s) = existing_mut(db, args[1], now)? else {
        return Err(nogroup(args[1], args[2]));
    };
    let Some(mut g) = s.groups.remove(args[2]) else {
        return Err(nogroup(args[1], args[2]));
    };
    let cname = args[3];
    let mut attempts = count.saturating_mul(10);
    let mut cursor = Some(start);
    let mut body = Reply::new();
    body.resp3 = out.resp3;
    let mut claimed = 0;
    let mut deleted = Vec::new();
    let mut consumer_ready = false;
    let mut created_consumer = false;
    while attempts > 0 && count > 0 {
        attempts -= 1;
        let Some(id) = cursor.and_then(|c| g.pel.range(c..).next().map(|(k, _)| *k)) else {
            cursor = None;
            break;
        };
        cursor = id.incr();
        if !s.entries.contains_key(&id) {
            g.ack(id);
            deleted.push(id);
            count -= 1;
            continue;
        }
        if minidle != 0
            && let Some(nack) = g.pel.get(&id)
            && (now as i64 - nack.time as i64) < minidle
        {
            continue;
        }
        if !consumer_ready {
            created_consumer |= g.touch_consumer(cname, now);
            consumer_ready = true;
        }
        let nack = g.assign(id, cname, now);
        nack.time = now;
        if !justid {
            nack.count += 1;
        }
        if justid {
            id_bulk(&mut body, id);
        } else if let Some(f) = s.entries.get(&id) {
            reply_entry(&mut body, id, f);
        }
        claimed += 1;
        count -= 1;
    }
    let next = cursor
        .and_then(|c| g.pel.range(c..).next().map(|(k, _)| *k))
        .unwrap_or(StreamId::MIN);
    s.groups.insert(args[2].into(), g);
    db.resized(args[1]);
    if created_consumer {
        db.log
            .event(notify::STREAM, "xgroup-createconsumer", args[1]);
    }
    out.array(3);
    id_bulk(out, next);
    out.array(claimed);
    out.buf.extend_from_slice(&body.buf);
    out.array(deleted.len());
    for id in deleted {
        id_bulk(out, id);
    }
    Ok(())
}

/// XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP
pub fn xinfo(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = sub_of(args, "xinfo")?;
    let name = &sub.name["xinfo|".len()..];
    if name == "help" {
        help(
            ctx.out,
            "XINFO",
            &[
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ],
        );
        return Ok(());
    }
    let key = args[2];
    // Options of STREAM are checked before the key, as Redis does.
    let mut full = None;
    if name == "stream" {
        let opts = &args[3..];
        if !opts.is_empty() {
            if (opts.len() != 1 && opts.len() != 3) || !eq_ic(opts[0], "FULL") {
                return Err(subcommand_syntax(args));
            }
            let mut count = 10i64;
            if opts.len() == 3 {
                if !eq_ic(opts[1], "COUNT") {
                    return Err(subcommand_syntax(args));
                }
                count = int_arg(opts[2])?;
                if count < 0 {
                    count = 10;
                }
            }
            full = Some(count as usize);
        }
    }
    let (db, out, now) = ctx.split();
    let s = read(db, key, now)?.ok_or(CmdError::Static(NO_KEY))?;
    match name {
        "consumers" => {
            let g = s
                .groups
                .get(args[3])
                .ok_or_else(|| nogroup_for_key(args[3], key))?;
            out.array(g.consumers.len());
            for (cname, c) in &g.consumers {
                out.map(3);
                out.bulk(b"name");
                out.bulk(cname);
                out.bulk(b"pending");
                out.int(c.pel.len() as i64);
                out.bulk(b"idle");
                out.int((now as i64 - c.seen as i64).max(0));
            }
        }
        "groups" => {
            out.array(s.groups.len());
            for (gname, g) in &s.groups {
                out.map(6);
                out.bulk(b"name");
                out.bulk(gname);
                out.bulk(b"consumers");
                out.int(g.consumers.len() as i64);
                out.bulk(b"pending");
                out.int(g.pel.len() as i64);
                out.bulk(b"last-delivered-id");
                id_bulk(out, g.last_id);
                group_counters(out, s, g);
            }
        }
        _ => stream_info(out, s, full),
    }
    Ok(())
}

/// `entries-read` and `lag` of a group.
fn group_counters(out: &mut Reply, s: &Stream, g: &Group) {
    out.bulk(b"entries-read");
    if g.entries_read == INVALID_ENTRIES_READ {
        out.null();
    } else {
        out.int(g.entries_read);
    }
    out.bulk(b"lag");
    match s.lag(g) {
        Some(l) => out.int(l),
        None => out.null(),
    }
}

fn stream_info(out: &mut Reply, s: &Stream, full: Option<usize>) {
    out.map(if full.is_some() { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.nodes.len() as i64);
    out.bulk(b"radix-tree-nodes");
    // Redis counts the inner nodes of its radix tree; the keys plus a root approximates it.
    out.int(s.nodes.len() as i64 + 1);
    out.bulk(b"last-generated-id");
    id_bulk(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    id_bulk(out, s.max_deleted);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    id_bulk(out, s.first_id);
    let Some(count) = full else {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        out.bulk(b"first-entry");
        match s.entries.first_key_value() {
            Some((id, f)) => reply_entry(out, *id, f),
            None => out.null(),
        }
        out.bulk(b"last-entry");
        match s.entries.last_key_value() {
            Some((id, f)) => reply_entry(out, *id, f),
            None => out.null(),
        }
        return;
    };
    let limit = if count == 0 { usize::MAX } else { count };
    out.bulk(b"entries");
    let n = s.len().min(limit);
    out.array(n);
    for (id, f) in s.entries.iter().take(n) {
        reply_entry(out, *id, f);
    }
    out.bulk(b"groups");
    out.array(s.groups.len());
    for (gname, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(gname);
        out.bulk(b"last-delivered-id");
        id_bulk(out, g.last_id);
        group_counters(out, s, g);
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        let n = g.pel.len().min(limit);
        out.array(n);
        for (id, nack) in g.pel.iter().take(n) {
            out.array(4);
            id_bulk(out, *id);
            out.bulk(&nack.consumer);
            out.int(nack.time as i64);
            out.int(nack.count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, c) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(c.seen as i64);
            out.bulk(b"pel-count");
            out.int(c.pel.len() as i64);
            out.bulk(b"pending");
            let n = c.pel.len().min(limit);
            out.array(n);
            for id in c.pel.iter().take(n) {
                let nack = g.pel.get(id);
                out.array(3);
                id_bulk(out, *id);
                out.int(nack.map_or(0, |n| n.time as i64));
                out.int(nack.map_or(0, |n| n.count as i64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use crate::cluster::dump::{dump_key, state_commands};
    use crate::resp::Limits;
    use crate::session::Session;

    #[test]
    fn xadd_ids_and_errors() {
        let mut s = Session::new();
        assert_eq!(s.cmd(&["XADD", "k", "1-1", "f", "v"]), "$3\r\n1-1\r\n");
        assert_eq!(s.cmd(&["XADD", "k", "1-*", "f", "v"]), "$3\r\n1-2\r\n");
        assert_eq!(s.cmd(&["XADD", "k", "5", "f", "v"]), "$3\r\n5-0\r\n");
        assert_eq!(
            s.cmd(&["XADD", "k", "5-0", "f", "v"]),
            "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n"
        );
        assert_eq!(
            s.cmd(&["XADD", "n", "0-0", "f", "v"]),
            "-ERR The ID specified in XADD must be greater than 0-0\r\n"
        );
        assert_eq!(s.cmd(&["EXISTS", "n"]), ":0\r\n");
        assert_eq!(
            s.cmd(&["XADD", "k", "6", "f"]),
            "-ERR wrong number of arguments for 'xadd' command\r\n"
        );
        assert_eq!(
            s.cmd(&["XADD", "k", "x-1", "f", "v"]),
            "-ERR Invalid stream ID specified as stream command argument\r\n"
        );
        assert_eq!(
            s.cmd(&["XADD", "n", "NOMKSTREAM", "*", "f", "v"]),
            "$-1\r\n"
        );
        assert_eq!(s.cmd(&["TYPE", "k"]), "+stream\r\n");
        assert_eq!(s.cmd(&["XLEN", "k"]), ":3\r\n");
        s.cmd(&["SET", "str", "x"]);
        assert!(
            s.cmd(&["XADD", "str", "*", "f", "v"])
                .starts_with("-WRONGTYPE")
        );
        // MAXLEN 0 leaves an empty stream that still exists.
        s.cmd(&["XADD", "e", "MAXLEN", "0", "*", "a", "b"]);
        assert_eq!(s.cmd(&["XLEN", "e"]), ":0\r\n");
        assert_eq!(s.cmd(&["EXISTS", "e"]), ":1\r\n");
        s.cmd(&[
            "XADD",
            "m",
            "18446744073709551615-18446744073709551615",
            "a",
            "b",
        ]);
        assert!(
            s.cmd(&["XADD", "m", "*", "a", "b"])
                .starts_with("-ERR The stream has exhausted")
        );
    }

    #[test]
    fn ranges_and_counts() {
        let mut s = Session::new();
        for i in 1..=5 {
            s.cmd(&["XADD", "k", &format!("{i}-0"), "n", &i.to_string()]);
        }
        assert_eq!(
            s.cmd(&["XRANGE", "k", "(2", "3", "COUNT", "5"]),
            "*1\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nn\r\n$1\r\n3\r\n"
        );
        assert_eq!(s.cmd(&["XRANGE", "k", "-", "+", "COUNT", "0"]), "*-1\r\n");
        assert_eq!(s.cmd(&["XRANGE", "k", "5", "1"]), "*0\r\n");
        assert_eq!(s.cmd(&["XRANGE", "missing", "-", "+"]), "*0\r\n");
        let rev = s.cmd(&["XREVRANGE", "k", "+", "-", "COUNT", "1"]);
        assert!(rev.starts_with("*1\r\n*2\r\n$3\r\n5-0\r\n"), "{rev}");
        assert!(
            s.cmd(&["XRANGE", "k", "(-", "+"])
                .starts_with("-ERR Invalid stream ID")
        );
        assert_eq!(
            s.cmd(&["XRANGE", "k", "-", "(0-0"]),
            "-ERR invalid end ID for the interval\r\n"
        );
        assert_eq!(s.cmd(&["XDEL", "k", "2-0", "9-0"]), ":1\r\n");
        assert_eq!(s.cmd(&["XTRIM", "k", "MAXLEN", "2"]), ":2\r\n");
        assert_eq!(
            s.cmd(&["XTRIM", "k", "MAXLEN", "1", "LIMIT", "3"]),
            "-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n"
        );
    }

    #[test]
    fn xread_reply_shapes_in_resp2_and_resp3() {
        let mut s = Session::new();
        s.cmd(&["XADD", "k", "1-0", "f", "v"]);
        let one = "*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n";
        assert_eq!(
            s.cmd(&["XREAD", "STREAMS", "k", "0"]),
            format!("*1\r\n*2\r\n$1\r\nk\r\n*1\r\n{one}")
        );
        assert_eq!(s.cmd(&["XREAD", "STREAMS", "k", "$"]), "*-1\r\n");
        // Without a socket a blocking read answers as its timeout would.
        assert_eq!(
            s.cmd(&["XREAD", "BLOCK", "0", "STREAMS", "k", "$"]),
            "*-1\r\n"
        );
        s.cmd(&["HELLO", "3"]);
        assert_eq!(
            s.cmd(&["XREAD", "STREAMS", "k", "0"]),
            format!("%1\r\n$1\r\nk\r\n*1\r\n{one}")
        );
        assert_eq!(s.cmd(&["XREAD", "STREAMS", "k", "1"]), "_\r\n");
        assert!(
            s.cmd(&["XREAD", "STREAMS", "k", ">"])
                .starts_with("-ERR The > ID can be specified only")
        );
    }

    #[test]
    fn consumer_group_lifecycle() {
        let mut s = Session::new();
        for i in 1..=4 {
            s.cmd(&["XADD", "k", &format!("{i}-0"), "f", "v"]);
        }
        assert_eq!(s.cmd(&["XGROUP", "CREATE", "k", "g", "0"]), "+OK\r\n");
        assert_eq!(
            s.cmd(&["XGROUP", "CREATE", "k", "g", "0"]),
            "-BUSYGROUP Consumer Group name already exists\r\n"
        );
        let r = s.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "3",
            "STREAMS",
            "k",
            ">",
        ]);
        assert!(r.starts_with("*1\r\n*2\r\n$1\r\nk\r\n*3\r\n"), "{r}");
        assert_eq!(
            s.cmd(&["XPENDING", "k", "g"]),
            "*4\r\n:3\r\n$3\r\n1-0\r\n$3\r\n3-0\r\n*1\r\n*2\r\n$5\r\nalice\r\n$1\r\n3\r\n"
        );
        assert_eq!(s.cmd(&["XACK", "k", "g", "1-0", "1-0"]), ":1\r\n");
        assert_eq!(
            s.cmd(&["XACK", "k", "g", "2-0", "bad"]),
            "-ERR Invalid stream ID specified as stream command argument\r\n"
        );
        // Claim 2-0 for bob, keeping the delivery count as given.
        assert_eq!(
            s.cmd(&[
                "XCLAIM",
                "k",
                "g",
                "bob",
                "0",
                "2-0",
                "RETRYCOUNT",
                "7",
                "JUSTID"
            ]),
            "*1\r\n$3\r\n2-0\r\n"
        );
        let p = s.cmd(&["XPENDING", "k", "g", "-", "+", "10", "bob"]);
        assert!(
            p.starts_with("*1\r\n*4\r\n$3\r\n2-0\r\n$3\r\nbob\r\n:"),
            "{p}"
        );
        assert!(p.ends_with(":7\r\n"), "{p}");
        // A deleted pending entry is dropped by XAUTOCLAIM and reported.
        s.cmd(&["XDEL", "k", "3-0"]);
        assert_eq!(
            s.cmd(&["XAUTOCLAIM", "k", "g", "bob", "0", "0", "JUSTID"]),
            "*3\r\n$3\r\n0-0\r\n*1\r\n$3\r\n2-0\r\n*1\r\n$3\r\n3-0\r\n"
        );
        // The deleted 3-0 is where the group stands: its lag cannot be known.
        let groups = s.cmd(&["XINFO", "GROUPS", "k"]);
        assert!(
            groups.contains("$12\r\nentries-read\r\n:3\r\n$3\r\nlag\r\n$-1\r\n"),
            "{groups}"
        );
        assert_eq!(s.cmd(&["XGROUP", "DELCONSUMER", "k", "g", "bob"]), ":1\r\n");
        assert_eq!(s.cmd(&["XGROUP", "DESTROY", "k", "g"]), ":1\r\n");
        assert!(
            s.cmd(&["XREADGROUP", "GROUP", "g", "a", "STREAMS", "k", ">"])
                .starts_with("-NOGROUP No such key 'k' or consumer group 'g'")
        );
        assert_eq!(
            s.cmd(&["XINFO", "HELP", "x"]),
            "-ERR wrong number of arguments for 'xinfo|help' command\r\n"
        );
    }

    #[test]
    fn group_changes_do_not_invalidate_watch_but_entries_do() {
        let mut s = Session::new();
        s.cmd(&["XADD", "k", "1-0", "f", "v"]);
        s.cmd(&["XGROUP", "CREATE", "k", "g", "0"]);
        let mut other = Session::on(s.shared().clone());
        s.cmd(&["WATCH", "k"]);
        other.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "k", ">"]);
        other.cmd(&["XACK", "k", "g", "1-0"]);
        other.cmd(&["XGROUP", "SETID", "k", "g", "0"]);
        s.cmd(&["MULTI"]);
        s.cmd(&["PING"]);
        assert_eq!(s.cmd(&["EXEC"]), "*1\r\n+PONG\r\n");
        s.cmd(&["WATCH", "k"]);
        other.cmd(&["XDEL", "k", "1-0"]);
        s.cmd(&["MULTI"]);
        s.cmd(&["PING"]);
        assert_eq!(s.cmd(&["EXEC"]), "*-1\r\n");
    }

    /// `XINFO STREAM FULL` with consumers' seen times blanked (a replay creates consumers at
    /// its own time) and the radix tree sizes too (the node layout follows the replaying
    /// node's own `stream-node-max-*` and is not part of the state).
    fn full_info(s: &mut Session, key: &str) -> String {
        let mut r = s.cmd(&["XINFO", "STREAM", key, "FULL"]);
        for field in ["seen-time", "radix-tree-keys", "radix-tree-nodes"] {
            let tag = format!("{field}\r\n:");
            let mut out = String::new();
            let mut rest = r.as_str();
            while let Some(p) = rest.find(&tag) {
                let at = p + tag.len();
                out.push_str(&rest[..at]);
                rest = &rest[at..];
                let end = rest.find("\r\n").unwrap_or(rest.len());
                out.push('N');
                rest = &rest[end..];
            }
            out.push_str(rest);
            r = out;
        }
        r
    }

    #[test]
    fn a_dumped_stream_replays_to_the_same_state() {
        let mut a = Session::new();
        for i in 1..=6 {
            a.cmd(&[
                "XADD",
                "s",
                &format!("{i}-0"),
                "f",
                &i.to_string(),
                "g",
                "x",
            ]);
        }
        a.cmd(&["XGROUP", "CREATE", "s", "g1", "0"]);
        a.cmd(&["XGROUP", "CREATE", "s", "g2", "$", "ENTRIESREAD", "6"]);
        a.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "4",
            "STREAMS",
            "s",
            ">",
        ]);
        a.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "NOACK",
            "STREAMS",
            "s",
            ">",
        ]);
        a.cmd(&["XGROUP", "CREATECONSUMER", "s", "g2", "carol"]);
        a.cmd(&[
            "XCLAIM",
            "s",
            "g1",
            "bob",
            "0",
            "4-0",
            "TIME",
            "12345",
            "RETRYCOUNT",
            "3",
        ]);
        // Pending entries trimmed away (1, 2) and deleted (4) must survive the replay.
        a.cmd(&["XTRIM", "s", "MAXLEN", "4"]);
        a.cmd(&["XDEL", "s", "4-0"]);
        a.cmd(&["PEXPIRE", "s", "1000000"]);
        // Trimmed pending entries with no deletion ever (max deleted ID stays 0-0).
        for i in 1..=3 {
            a.cmd(&["XADD", "t", &format!("{i}-0"), "f", "v"]);
        }
        a.cmd(&["XGROUP", "CREATE", "t", "g", "0"]);
        a.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "t", ">"]);
        a.cmd(&["XTRIM", "t", "MAXLEN", "1"]);
        // An empty stream with a group and a last ID of its own.
        a.cmd(&["XGROUP", "CREATE", "e", "g", "$", "MKSTREAM"]);
        a.cmd(&[
            "XSETID",
            "e",
            "77-7",
            "ENTRIESADDED",
            "9",
            "MAXDELETEDID",
            "5-0",
        ]);
        // Everything gone but still pending.
        a.cmd(&["XADD", "d", "1-0", "f", "v"]);
        a.cmd(&["XGROUP", "CREATE", "d", "g", "0"]);
        a.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "d", ">"]);
        a.cmd(&["XDEL", "d", "1-0"]);
        // A last ID lowered below the max deleted ID (and a pending entry past it).
        a.cmd(&["XADD", "l", "1-0", "f", "v"]);
        a.cmd(&["XADD", "l", "2-0", "f", "v"]);
        a.cmd(&["XGROUP", "CREATE", "l", "g", "0"]);
        a.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "l", ">"]);
        a.cmd(&["XDEL", "l", "2-0"]);
        assert_eq!(a.cmd(&["XSETID", "l", "1-0"]), "+OK\r\n");

        let mut b = Session::new();
        let now = crate::session::now_ms();
        for k in ["s", "t", "e", "d", "l"] {
            let mut out = BytesMut::new();
            dump_key(&a.shared().db.lock(), k.as_bytes(), now, &mut out);
            assert!(
                state_commands(k.as_bytes(), &out, Limits::default()).is_ok(),
                "{k}"
            );
            let replies = String::from_utf8_lossy(&b.feed(&out)).into_owned();
            assert!(!replies.contains("\r\n-"), "{k}: {replies}");
            assert!(!replies.starts_with('-'), "{k}: {replies}");
            assert_eq!(full_info(&mut a, k), full_info(&mut b, k), "{k}");
        }
        let ttl = b.cmd(&["PTTL", "s"]);
        assert!(ttl.starts_with(":9"), "{ttl}");
        // The deleted pending entry reads back as an ID with a null entry.
        let h = b.cmd(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "d", "0"]);
        assert_eq!(h, "*1\r\n*2\r\n$1\r\nd\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*-1\r\n");
    }

    #[test]
    fn random_operations_keep_the_stream_consistent() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut s = Session::new();
        s.cmd(&["CONFIG", "SET", "stream-node-max-entries", "4"]);
        s.cmd(&["XGROUP", "CREATE", "k", "g", "0", "MKSTREAM"]);
        let mut next = 1u64;
        for _ in 0..3000 {
            let id = format!("{}-{}", rng.u64(0..next + 1), rng.u64(0..3));
            let r = match rng.u8(0..10) {
                0..=3 => {
                    next += rng.u64(1..3);
                    s.cmd(&["XADD", "k", &format!("{next}-0"), "f", "v"])
                }
                4 => s.cmd(&["XDEL", "k", &format!("{}-0", rng.u64(0..next + 1))]),
                5 => {
                    let n = rng.u64(0..20).to_string();
                    let approx = if rng.bool() { "~" } else { "=" };
                    s.cmd(&["XTRIM", "k", "MAXLEN", approx, &n])
                }
                6 => {
                    let m = format!("{}", rng.u64(0..next + 1));
                    s.cmd(&["XTRIM", "k", "MINID", &m])
                }
                7 => s.cmd(&[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "COUNT",
                    "3",
                    "STREAMS",
                    "k",
                    ">",
                ]),
                8 => s.cmd(&["XAUTOCLAIM", "k", "g", "d", "0", &id, "COUNT", "2"]),
                _ => s.cmd(&["XACK", "k", "g", &id]),
            };
            assert!(
                !r.starts_with("-ERR") || r.contains("equal or smaller"),
                "{r}"
            );
            let db = s.shared().db.lock();
            let Some(crate::value::Value::Stream(st)) = db.peek_ref(b"k", 0).map(|e| &e.value)
            else {
                panic!("the stream is gone");
            };
            let live: u64 = st.nodes.values().map(|n| n.live).sum();
            assert_eq!(live, st.len() as u64);
            assert_eq!(
                st.first_id,
                st.entries.keys().next().copied().unwrap_or_default()
            );
            for (id, n) in &st.groups[&b"g"[..]].pel {
                assert!(st.groups[&b"g"[..]].consumers[&n.consumer].pel.contains(id));
            }
        }
        // Whatever state that left replays exactly.
        let mut out = BytesMut::new();
        dump_key(
            &s.shared().db.lock(),
            b"k",
            crate::session::now_ms(),
            &mut out,
        );
        assert!(state_commands(b"k", &out, Limits::default()).is_ok());
        let mut b = Session::new();
        b.feed(&out);
        assert_eq!(full_info(&mut s, "k"), full_info(&mut b, "k"));
    }

    #[test]
    fn a_stream_state_accepts_only_its_own_commands() {
        let mut b = BytesMut::new();
        crate::cluster::proto::command(&mut b, &[b"DEL", b"k"]);
        crate::cluster::proto::command(&mut b, &[b"XADD", b"k", b"1-0", b"f", b"v"]);
        crate::cluster::proto::command(&mut b, &[b"XGROUP", b"DESTROY", b"k", b"g"]);
        assert!(state_commands(b"k", &b, Limits::default()).is_err());
        let mut b = BytesMut::new();
        crate::cluster::proto::command(&mut b, &[b"DEL", b"k"]);
        crate::cluster::proto::command(&mut b, &[b"XADD", b"k", b"1-0", b"f", b"v"]);
        crate::cluster::proto::command(
            &mut b,
            &[b"XGROUP", b"CREATECONSUMER", b"other", b"g", b"c"],
        );
        assert!(state_commands(b"k", &b, Limits::default()).is_err());
    }
}

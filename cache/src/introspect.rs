//! What the server records about the commands it runs, for `INFO commandstats`,
//! `INFO errorstats`, `INFO latencystats`, `SLOWLOG`, `LATENCY` and `CONFIG RESETSTAT`.
//!
//! The settings the hot path reads (`slowlog-log-slower-than`, `latency-tracking`...) are
//! atomics so that a command checks them without a lock; the records themselves live behind
//! one mutex, taken once per command after it ran.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::value::Bytes;

/// Arguments of a slow log entry beyond this are summarized (Redis's `SLOWLOG_ENTRY_MAX_ARGC`).
const SLOWLOG_MAX_ARGC: usize = 32;
/// Bytes of one argument kept in a slow log entry (`SLOWLOG_ENTRY_MAX_STRING`).
const SLOWLOG_MAX_STRING: usize = 128;
/// Samples kept per latency event (`LATENCY_TS_LEN`).
const LATENCY_TS_LEN: usize = 160;

/// Calls of one command (or subcommand), as `INFO commandstats` shows them.
#[derive(Debug, Default, Clone)]
pub struct CmdStat {
    /// Times it ran.
    pub calls: u64,
    /// Microseconds spent in it.
    pub usec: u64,
    /// Refused before running (wrong arity, ...).
    pub rejected: u64,
    /// Ran and answered with an error.
    pub failed: u64,
    /// Run times by power-of-two microsecond bucket: bucket `i` holds runs of at most `2^i` us.
    pub hist: [u64; 32],
}

impl CmdStat {
    /// The run time (us) below which `p` percent of the runs fall, at bucket resolution.
    pub fn percentile(&self, p: f64) -> f64 {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return (1u64 << i) as f64;
            }
        }
        (1u64 << (self.hist.len() - 1)) as f64
    }
}

/// One slow log entry.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    /// Unique, increasing id.
    pub id: u64,
    /// Unix seconds when the command ran.
    pub time: u64,
    /// Run time in microseconds.
    pub usec: u64,
    /// The arguments, summarized as Redis does.
    pub args: Vec<Vec<u8>>,
    /// `ip:port` of the client.
    pub addr: String,
    /// The client's name.
    pub name: String,
}

/// One latency event's samples (`LATENCY HISTORY`) and its maximum.
#[derive(Debug, Default, Clone)]
pub struct LatencyEvent {
    /// (Unix seconds, milliseconds), oldest first; one sample per second at most.
    pub samples: VecDeque<(u64, u64)>,
    /// The largest latency seen.
    pub max: u64,
}

#[derive(Debug, Default)]
struct Records {
    cmds: BTreeMap<&'static str, CmdStat>,
    errors: BTreeMap<String, u64>,
    total_errors: u64,
    slowlog: VecDeque<SlowEntry>,
    slow_next_id: u64,
    events: BTreeMap<String, LatencyEvent>,
}

/// The records and the settings that steer them.
#[derive(Debug)]
pub struct Introspection {
    /// `slowlog-log-slower-than` in microseconds (negative: off).
    pub slowlog_slower_than: AtomicI64,
    /// `slowlog-max-len`.
    pub slowlog_max_len: AtomicUsize,
    /// `latency-monitor-threshold` in milliseconds (0: off).
    pub latency_threshold: AtomicU64,
    /// `latency-tracking` (per-command histograms).
    pub latency_tracking: AtomicBool,
    /// `latency-tracking-info-percentiles`: what `INFO latencystats` shows.
    pub percentiles: Mutex<Vec<f64>>,
    rec: Mutex<Records>,
    /// Whether a client runs `MONITOR` (checked before taking the list's lock).
    pub monitoring: AtomicBool,
    monitors: Mutex<Vec<(u64, mpsc::Sender<Bytes>)>>,
    /// Whether `CLIENT PAUSE` may be in force (checked before taking the pause's lock).
    pub pausing: AtomicBool,
    pause: Mutex<PauseState>,
}

/// `CLIENT PAUSE`: until when, what, and the clients waiting for it to end.
#[derive(Debug, Default)]
struct PauseState {
    /// Unix ms when the pause ends.
    until: u64,
    /// `ALL` (every command) rather than `WRITE`.
    all: bool,
    /// Clients whose command waits for the end of the pause.
    postponed: Vec<std::sync::Arc<tokio::sync::Notify>>,
}

/// What `CLIENT LIST` shows of a client beyond its identity, updated as it runs commands.
#[derive(Debug)]
pub struct Activity {
    /// The full name of the last command it ran.
    pub last_cmd: Mutex<&'static str>,
    /// Unix ms of its last command (0: none yet).
    pub last_active: AtomicU64,
    /// Bytes of unparsed input and free room in its query buffer.
    pub qbuf: AtomicUsize,
    /// Free room in the query buffer.
    pub qbuf_free: AtomicUsize,
    /// `CLIENT NO-EVICT on`.
    pub no_evict: AtomicBool,
    /// It ran `MONITOR`.
    pub monitor: AtomicBool,
    /// It waits in a blocking command.
    pub blocked: AtomicBool,
    /// `CLIENT UNBLOCK` asked it to stop waiting: [`UNBLOCK_TIMEOUT`] or [`UNBLOCK_ERROR`]
    /// (0: no request).
    pub unblock: std::sync::atomic::AtomicU8,
    /// What wakes it while it waits (the keyspace's wake-ups and `CLIENT UNBLOCK`).
    pub waiter: std::sync::Arc<tokio::sync::Notify>,
}

/// `CLIENT UNBLOCK id TIMEOUT`: answer as if the timeout had passed.
pub const UNBLOCK_TIMEOUT: u8 = 1;
/// `CLIENT UNBLOCK id ERROR`: answer with an `-UNBLOCKED` error.
pub const UNBLOCK_ERROR: u8 = 2;

impl Default for Activity {
    fn default() -> Self {
        Self {
            last_cmd: Mutex::new("NULL"),
            last_active: AtomicU64::new(0),
            qbuf: AtomicUsize::new(0),
            qbuf_free: AtomicUsize::new(0),
            no_evict: AtomicBool::new(false),
            monitor: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            unblock: std::sync::atomic::AtomicU8::new(0),
            waiter: Default::default(),
        }
    }
}

impl Default for Introspection {
    fn default() -> Self {
        Self {
            slowlog_slower_than: AtomicI64::new(10_000),
            slowlog_max_len: AtomicUsize::new(128),
            latency_threshold: AtomicU64::new(0),
            latency_tracking: AtomicBool::new(true),
            percentiles: Mutex::new(vec![50.0, 99.0, 99.9]),
            rec: Mutex::new(Records::default()),
            monitoring: AtomicBool::new(false),
            monitors: Mutex::new(Vec::new()),
            pausing: AtomicBool::new(false),
            pause: Mutex::new(PauseState::default()),
        }
    }
}

/// What one finished command reports.
#[derive(Debug)]
pub struct Ran<'a> {
    /// Full name (`config|get` for a subcommand).
    pub name: &'static str,
    /// Its arguments as sent.
    pub args: &'a [&'a [u8]],
    /// Run time in microseconds.
    pub usec: u64,
    /// The error reply's text (`ERR ...`) if it failed.
    pub error: Option<&'a [u8]>,
    /// The error was counted already, where it happened (a script passing a command's error
    /// on): a failed call, not a second error reply.
    pub error_counted: bool,
    /// Whether it may be logged in the slow log (not `EXEC`).
    pub slowlog: bool,
    /// Whether it is flagged `fast` (latency event `fast-command`, else `command`).
    pub fast: bool,
    /// The client that ran it.
    pub client: &'a crate::shared::ClientInfo,
    /// Unix milliseconds now.
    pub now: u64,
}

/// The code of an error reply: its first word (`ERR`, `WRONGTYPE`...), as `errorstats` keys
/// it.
pub fn error_code(msg: &[u8]) -> String {
    let end = msg
        .iter()
        .position(|&c| c == b' ' || c == b'\r')
        .unwrap_or(msg.len());
    String::from_utf8_lossy(&msg[..end.min(64)]).into_owned()
}

impl Introspection {
    /// Records one command that ran.
    pub fn record(&self, r: &Ran<'_>) {
        let slower = self.slowlog_slower_than.load(Ordering::Relaxed);
        let threshold = self.latency_threshold.load(Ordering::Relaxed);
        let tracking = self.latency_tracking.load(Ordering::Relaxed);
        let mut rec = self.rec.lock();
        let st = rec.cmds.entry(r.name).or_default();
        st.calls += 1;
        st.usec += r.usec;
        if tracking {
            let b = (64 - r.usec.max(1).saturating_sub(1).leading_zeros()) as usize;
            st.hist[b.min(31)] += 1;
        }
        if let Some(e) = r.error {
            st.failed += 1;
            if !r.error_counted {
                rec.total_errors += 1;
                *rec.errors.entry(error_code(e)).or_default() += 1;
            }
        }
        if r.slowlog && slower >= 0 && r.usec >= slower as u64 {
            let max = self.slowlog_max_len.load(Ordering::Relaxed);
            let id = rec.slow_next_id;
            rec.slow_next_id += 1;
            rec.slowlog.push_front(SlowEntry {
                id,
                time: r.now / 1000,
                usec: r.usec,
                args: slowlog_args(r.args),
                addr: r.client.addr.to_string(),
                name: r.client.name.lock().clone(),
            });
            rec.slowlog.truncate(max);
        }
        let ms = r.usec / 1000;
        if threshold > 0 && ms >= threshold {
            let name = if r.fast { "fast-command" } else { "command" };
            add_sample(&mut rec, name, r.now / 1000, ms);
        }
    }

    /// Records a command refused before it ran (`rejected_calls`) with its error reply; `name`
    /// is `None` for an unknown command.
    pub fn rejected(&self, name: Option<&'static str>, error: &[u8]) {
        let mut rec = self.rec.lock();
        if let Some(n) = name {
            rec.cmds.entry(n).or_default().rejected += 1;
        }
        rec.total_errors += 1;
        *rec.errors.entry(error_code(error)).or_default() += 1;
    }

    /// Records a blocked command answered with an error by `CLIENT UNBLOCK ... ERROR`: one
    /// failed call.
    pub fn unblocked_with_error(&self, args: &[Vec<u8>], error: &[u8]) {
        let Some(name) = args.first().and_then(|n| {
            let lower = n.to_ascii_lowercase();
            crate::cmd::table::lookup(&lower).map(|c| c.name)
        }) else {
            return;
        };
        let mut rec = self.rec.lock();
        let st = rec.cmds.entry(name).or_default();
        st.calls += 1;
        st.failed += 1;
        rec.total_errors += 1;
        *rec.errors.entry(error_code(error)).or_default() += 1;
    }

    /// Records a latency event of `ms` milliseconds at Unix second `now_s` if it reaches
    /// `latency-monitor-threshold`.
    pub fn latency_event(&self, name: &str, now_s: u64, ms: u64) {
        let threshold = self.latency_threshold.load(Ordering::Relaxed);
        if threshold > 0 && ms >= threshold {
            add_sample(&mut self.rec.lock(), name, now_s, ms);
        }
    }

    /// `CONFIG RESETSTAT`: forgets command and error statistics.
    pub fn reset_stats(&self) {
        let mut rec = self.rec.lock();
        rec.cmds.clear();
        rec.errors.clear();
        rec.total_errors = 0;
    }

    /// Command statistics by full name.
    pub fn commands(&self) -> BTreeMap<&'static str, CmdStat> {
        self.rec.lock().cmds.clone()
    }

    /// Error replies by code, and their total.
    pub fn errors(&self) -> (BTreeMap<String, u64>, u64) {
        let rec = self.rec.lock();
        (rec.errors.clone(), rec.total_errors)
    }

    /// The newest `count` slow log entries (all if `None`), newest first.
    pub fn slowlog(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let rec = self.rec.lock();
        let n = count.unwrap_or(rec.slowlog.len());
        rec.slowlog.iter().take(n).cloned().collect()
    }

    /// Entries in the slow log.
    pub fn slowlog_len(&self) -> usize {
        self.rec.lock().slowlog.len()
    }

    /// Empties the slow log.
    pub fn slowlog_reset(&self) {
        self.rec.lock().slowlog.clear();
    }

    /// Drops slow log entries beyond a new `slowlog-max-len`.
    pub fn slowlog_trim(&self, max: usize) {
        self.rec.lock().slowlog.truncate(max);
    }

    /// Latency events by name.
    pub fn events(&self) -> BTreeMap<String, LatencyEvent> {
        self.rec.lock().events.clone()
    }

    /// Forgets the named events (all if empty); returns how many were forgotten.
    pub fn reset_events(&self, names: &[String]) -> usize {
        let mut rec = self.rec.lock();
        if names.is_empty() {
            let n = rec.events.len();
            rec.events.clear();
            return n;
        }
        names
            .iter()
            .filter(|n| rec.events.remove(n.as_str()).is_some())
            .count()
    }
}

impl Introspection {
    /// Adds a `MONITOR` client; it receives each logged command as a ready RESP line.
    pub fn add_monitor(&self, id: u64, tx: mpsc::Sender<Bytes>) {
        let mut m = self.monitors.lock();
        m.retain(|(i, _)| *i != id);
        m.push((id, tx));
        self.monitoring.store(true, Ordering::Relaxed);
    }

    /// Removes a `MONITOR` client (RESET, disconnect).
    pub fn remove_monitor(&self, id: u64) {
        let mut m = self.monitors.lock();
        m.retain(|(i, _)| *i != id);
        self.monitoring.store(!m.is_empty(), Ordering::Relaxed);
    }

    /// Sends a command to every monitor, as Redis formats it:
    /// `+<secs>.<usec> [0 <addr>] "arg" ...`. A monitor too slow to take it loses the line.
    pub fn feed_monitors(&self, from: impl std::fmt::Display, args: &[&[u8]]) {
        if !self.monitoring.load(Ordering::Relaxed) {
            return;
        }
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = format!("+{}.{:06} [0 {from}]", d.as_secs(), d.subsec_micros()).into_bytes();
        for a in args {
            line.push(b' ');
            repr(&mut line, a);
        }
        line.extend_from_slice(b"\r\n");
        let line: Bytes = line.as_slice().into();
        let mut m = self.monitors.lock();
        m.retain(|(_, tx)| {
            !matches!(
                tx.try_send(line.clone()),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
        self.monitoring.store(!m.is_empty(), Ordering::Relaxed);
    }
}

impl Introspection {
    /// `CLIENT PAUSE`: pauses (`all`) commands or writes until Unix ms `until`. A pause is
    /// never shortened or weakened by another one.
    pub fn pause(&self, until: u64, all: bool) {
        let mut p = self.pause.lock();
        p.until = p.until.max(until);
        p.all |= all;
        self.pausing.store(true, Ordering::Relaxed);
    }

    /// `CLIENT UNPAUSE`: ends the pause and lets the waiting commands run.
    pub fn unpause(&self) {
        let mut p = self.pause.lock();
        p.until = 0;
        p.all = false;
        for w in p.postponed.drain(..) {
            w.notify_one();
        }
        self.pausing.store(false, Ordering::Relaxed);
    }

    /// If a pause holds a command (every command under `ALL`, writes under `WRITE`) at Unix
    /// ms `now`: registers `waiter` to be woken when it ends and returns its end.
    pub fn postpone(
        &self,
        now: u64,
        write: bool,
        waiter: &std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<u64> {
        if !self.pausing.load(Ordering::Relaxed) {
            return None;
        }
        let mut p = self.pause.lock();
        if p.until <= now {
            p.until = 0;
            p.all = false;
            self.pausing.store(false, Ordering::Relaxed);
            for w in p.postponed.drain(..) {
                w.notify_one();
            }
            return None;
        }
        if !(p.all || write) {
            return None;
        }
        if !p
            .postponed
            .iter()
            .any(|w| std::sync::Arc::ptr_eq(w, waiter))
        {
            p.postponed.push(waiter.clone());
        }
        Some(p.until)
    }

    /// Forgets a client waiting for the end of a pause (its command ran, or it left).
    pub fn unpostpone(&self, waiter: &std::sync::Arc<tokio::sync::Notify>) {
        if self.pausing.load(Ordering::Relaxed) {
            self.pause
                .lock()
                .postponed
                .retain(|w| !std::sync::Arc::ptr_eq(w, waiter));
        }
    }

    /// Clients whose command waits for the end of a pause (counted in `blocked_clients`).
    pub fn postponed(&self) -> usize {
        self.pause.lock().postponed.len()
    }
}

/// Redis's `sdscatrepr`: a quoted string with escapes for quotes, backslashes, control and
/// non-printable bytes.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

fn add_sample(rec: &mut Records, name: &str, now_s: u64, ms: u64) {
    let ev = rec.events.entry(name.to_owned()).or_default();
    ev.max = ev.max.max(ms);
    // One sample per second: a second event in the same second keeps the larger latency.
    if let Some(last) = ev.samples.back_mut()
        && last.0 == now_s
    {
        last.1 = last.1.max(ms);
        return;
    }
    ev.samples.push_back((now_s, ms));
    if ev.samples.len() > LATENCY_TS_LEN {
        ev.samples.pop_front();
    }
}

/// The arguments as the slow log keeps them: at most 32 (the last one then says how many more
/// there were), each at most 128 bytes (then followed by how many more bytes there were).
fn slowlog_args(args: &[&[u8]]) -> Vec<Vec<u8>> {
    let keep = args.len().min(SLOWLOG_MAX_ARGC);
    let mut out = Vec::with_capacity(keep);
    for (i, a) in args.iter().take(keep).enumerate() {
        if i == SLOWLOG_MAX_ARGC - 1 && args.len() > SLOWLOG_MAX_ARGC {
            out.push(
                format!("... ({} more arguments)", args.len() - SLOWLOG_MAX_ARGC + 1).into_bytes(),
            );
        } else if a.len() > SLOWLOG_MAX_STRING {
            let mut v = a[..SLOWLOG_MAX_STRING].to_vec();
            v.extend_from_slice(
                format!("... ({} more bytes)", a.len() - SLOWLOG_MAX_STRING).as_bytes(),
            );
            out.push(v);
        } else {
            out.push(a.to_vec());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowlog_arguments_are_summarized_as_redis_does() {
        let many: Vec<Vec<u8>> = (0..35).map(|i| i.to_string().into_bytes()).collect();
        let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        let s = slowlog_args(&refs);
        assert_eq!(s.len(), 32);
        assert_eq!(s[31], b"... (4 more arguments)");
        let long = vec![b'A'; 129];
        let s = slowlog_args(&[b"set", &long]);
        assert_eq!(s[1].len(), 128 + "... (1 more bytes)".len());
    }

    #[test]
    fn percentiles_come_from_power_of_two_buckets() {
        let mut st = CmdStat::default();
        st.hist[0] = 99;
        st.hist[10] = 1;
        assert_eq!(st.percentile(50.0), 1.0);
        assert_eq!(st.percentile(99.9), 1024.0);
    }
}

//! A history checker for a key-value store under faults: clients record every operation they
//! sent (when it was invoked, when its answer came, what the answer said) and every value they
//! read; after the run, a final read of each key is checked against the states the history
//! allows.
//!
//! The model is per key and follows linearizability, loosened where the store promises less:
//!
//! - An operation is a [`Op::Write`], a [`Op::Delete`], or an [`Op::Expire`] (the key is gone
//!   from a given time on). Its [`Outcome`] is `Ok` (acknowledged: applied between its invoke
//!   and its completion), `Fail` (refused: definitely never applied) or `Unknown` (timed out or
//!   the connection was lost: it may apply at any later time, or never).
//! - The final read (after quiescence) may see the state of any operation that could be
//!   linearized last: an `Ok` or `Unknown` operation `O` such that no `Ok` operation `B` was
//!   invoked after `O` ended (`O`'s end is its completion when `Ok`, never when `Unknown`),
//!   plus "absent" when no operation was acknowledged. An expiry that has passed by the read
//!   counts as a delete; one still to come changes nothing and is left out.
//! - Reads during the run may be stale (replicas are asynchronous): only a value no write had
//!   even been invoked with by the time the read completed is wrong.
//!
//! What a wrong final read is called: *lost* when the key is absent (or unreadable) while only
//! values are allowed, or shows an older value over a newer acknowledged write (*stale*, counted
//! in `lost` too); *resurrected* when it shows a written value while a delete or an expiry is
//! what may come last; *invented* when it shows a value no write that could have applied
//! wrote. Checking is linear in the number of operations of each key.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

/// How many violations a [`Verdict`] keeps as examples.
pub const MAX_EXAMPLES: usize = 10;

/// What an operation does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets the key to this value (and clears any expiry).
    Write(String),
    /// Removes the key.
    Delete,
    /// The key is gone from `at` on (time on the history's clock). For an acknowledged
    /// `PEXPIRE k ttl`, `at` is the latest the expiry can be: its completion plus `ttl`.
    Expire {
        /// When the key is gone by, at the latest.
        at: Duration,
    },
}

/// What the client learned about an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: applied between invoke and completion.
    Ok,
    /// Refused: definitely not applied (an error reply sent before the store changed anything).
    Fail,
    /// No answer (timeout, connection lost) or an ambiguous error: may apply at any later
    /// time, or never.
    Unknown,
}

/// One operation as the client saw it. Times are on one monotonic clock (e.g. since the run
/// started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The key it touched.
    pub key: String,
    /// What it did.
    pub op: Op,
    /// When the client sent it.
    pub invoke: Duration,
    /// When the client got its answer or gave up.
    pub complete: Duration,
    /// What the answer said.
    pub outcome: Outcome,
}

/// A successful read during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The key read.
    pub key: String,
    /// When the read was sent.
    pub invoke: Duration,
    /// When its answer came.
    pub complete: Duration,
    /// The value seen, `None` when the key was absent.
    pub seen: Option<String>,
}

/// What a final read saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The key held this value.
    Value(String),
    /// The key was absent.
    Absent,
    /// Every attempt failed (the reason of the last one).
    Unreadable(String),
}

/// A read after quiescence: every operation has completed or been given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalRead {
    /// The key read.
    pub key: String,
    /// When the read was sent (decides which expiries have passed).
    pub at: Duration,
    /// What it saw.
    pub seen: Seen,
    /// Where the read went (e.g. `"through node 0"`), copied into examples.
    pub via: String,
}

/// What is wrong with a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Absent or unreadable while only values are allowed.
    Lost,
    /// An older value over a newer acknowledged write (counted in `lost` too).
    Stale,
    /// A written value while a delete or an expiry is what may come last.
    Resurrected,
    /// A value no write that could have applied wrote (by then, for a read during the run).
    Invented,
    /// Unreadable while absence is allowed: not a violation, reported apart.
    Unreadable,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Lost => "lost",
            Kind::Stale => "stale (lost)",
            Kind::Resurrected => "resurrected",
            Kind::Invented => "invented",
            Kind::Unreadable => "unreadable",
        })
    }
}

/// One wrong read, for the report's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong.
    pub kind: Kind,
    /// The key.
    pub key: String,
    /// The states the history allows, e.g. `"v3" or absent`.
    pub expected: String,
    /// What the read saw, and where.
    pub seen: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: expected {}, saw {}",
            self.kind, self.key, self.expected, self.seen
        )
    }
}

/// The result of [`History::check`]. Counts are of keys: a key read twice wrongly the same
/// way counts once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Keys whose final read was absent or unreadable while only values are allowed, or showed
    /// a stale value.
    pub lost: usize,
    /// Of `lost`, keys whose final read showed an older value over a newer acknowledged write.
    pub stale: usize,
    /// Keys whose final read showed a value while a delete or an expiry should have won.
    pub resurrected: usize,
    /// Keys read (during the run or at the end) with a value no write could have produced.
    pub invented: usize,
    /// Keys whose final read never succeeded while absence was allowed (not a violation).
    pub unreadable: usize,
    /// Distinct keys the final reads covered.
    pub keys_checked: usize,
    /// The first [`MAX_EXAMPLES`] violations (unreadable keys included), in reading order.
    pub examples: Vec<Violation>,
}

impl Verdict {
    /// No lost, resurrected or invented key.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.resurrected == 0 && self.invented == 0
    }
}

/// The states a final read of one key may see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// Values of writes that may come last.
    pub values: BTreeSet<String>,
    /// A delete or an expiry (passed by the read) may come last.
    pub removed: bool,
    /// No operation was acknowledged: the key may never have been written.
    pub never_written: bool,
}

impl Allowed {
    /// Whether the key may be absent.
    pub fn absent(&self) -> bool {
        self.removed || self.never_written
    }
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut states: Vec<String> = self.values.iter().map(|v| format!("{v:?}")).collect();
        if self.absent() {
            states.push("absent".into());
        }
        if states.is_empty() {
            // Unreachable: with no acknowledged operation, absence is allowed.
            return f.write_str("nothing");
        }
        f.write_str(&states.join(" or "))
    }
}

/// Every operation and read of a run, in any order.
#[derive(Debug, Clone, Default)]
pub struct History {
    ops: Vec<Operation>,
    reads: Vec<Read>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an operation.
    pub fn record(&mut self, op: Operation) {
        self.ops.push(op);
    }

    /// Records a successful read during the run.
    pub fn read(&mut self, read: Read) {
        self.reads.push(read);
    }

    /// The operations recorded.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// The reads recorded.
    pub fn reads(&self) -> &[Read] {
        &self.reads
    }

    /// Every key an operation touched, sorted (what the final reads should cover).
    pub fn keys(&self) -> Vec<String> {
        let keys: BTreeSet<&str> = self.ops.iter().map(|o| o.key.as_str()).collect();
        keys.into_iter().map(str::to_owned).collect()
    }

    /// How many operations of this op kind were acknowledged (`Write`/`Delete`/`Expire`; the
    /// value or the time is ignored).
    pub fn acked(&self, like: &Op) -> usize {
        self.ops
            .iter()
            .filter(|o| {
                o.outcome == Outcome::Ok
                    && std::mem::discriminant(&o.op) == std::mem::discriminant(like)
            })
            .count()
    }

    /// The states a final read of `key` sent at `at` may see.
    pub fn allowed(&self, key: &str, at: Duration) -> Allowed {
        let ops: Vec<&Operation> = self.ops.iter().filter(|o| o.key == key).collect();
        allowed(&ops, at)
    }

    /// Checks the reads during the run and `finals` (any number per key) against the history.
    pub fn check(&self, finals: &[FinalRead]) -> Verdict {
        let mut by_key: HashMap<&str, Vec<&Operation>> = HashMap::new();
        for o in &self.ops {
            by_key.entry(o.key.as_str()).or_default().push(o);
        }
        // Earliest invoke of each value by a write that may have applied; values only refused
        // writes wrote are kept apart, to say so.
        let mut first_write: HashMap<(&str, &str), Duration> = HashMap::new();
        let mut refused: HashSet<(&str, &str)> = HashSet::new();
        for o in &self.ops {
            let Op::Write(v) = &o.op else { continue };
            let id = (o.key.as_str(), v.as_str());
            if o.outcome == Outcome::Fail {
                refused.insert(id);
            } else {
                let t = first_write.entry(id).or_insert(o.invoke);
                *t = (*t).min(o.invoke);
            }
        }
        let invented_expected = |key: &str, v: &str| {
            if refused.contains(&(key, v)) {
                format!("no {v:?} (only a refused write wrote it)")
            } else {
                "a value some write wrote".to_owned()
            }
        };

        let mut found = Found::default();
        let mut checked: HashSet<&str> = HashSet::new();
        for r in finals {
            checked.insert(&r.key);
            let ops = by_key.get(r.key.as_str()).map_or(&[][..], Vec::as_slice);
            let allowed = allowed(ops, r.at);
            let (kind, expected, seen) = match &r.seen {
                Seen::Value(v) if allowed.values.contains(v) => continue,
                Seen::Absent if allowed.absent() => continue,
                Seen::Absent => (Kind::Lost, allowed.to_string(), "absent".to_owned()),
                Seen::Unreadable(e) => {
                    // Absence was allowed: the read says nothing either way.
                    let kind = if allowed.absent() {
                        Kind::Unreadable
                    } else {
                        Kind::Lost
                    };
                    (kind, allowed.to_string(), format!("no answer ({e})"))
                }
                Seen::Value(v) if !first_write.contains_key(&(r.key.as_str(), v.as_str())) => (
                    Kind::Invented,
                    invented_expected(&r.key, v),
                    format!("{v:?}"),
                ),
                Seen::Value(v) if allowed.removed => {
                    (Kind::Resurrected, allowed.to_string(), format!("{v:?}"))
                }
                Seen::Value(v) => (Kind::Stale, allowed.to_string(), format!("{v:?}")),
            };
            found.add(kind, &r.key, expected, format!("{seen} {}", r.via));
        }
        for r in &self.reads {
            let Some(v) = &r.seen else { continue };
            let written = first_write
                .get(&(r.key.as_str(), v.as_str()))
                .is_some_and(|&t| t <= r.complete);
            if !written {
                let expected = if first_write.contains_key(&(r.key.as_str(), v.as_str())) {
                    format!("no {v:?} yet (its write was invoked after the read completed)")
                } else {
                    invented_expected(&r.key, v)
                };
                let seen = format!("{v:?} read during the run at {:?}", r.complete);
                found.add(Kind::Invented, &r.key, expected, seen);
            }
        }
        let count = |kinds: &[Kind]| {
            found
                .keys
                .iter()
                .filter(|(k, _)| kinds.contains(k))
                .map(|(_, key)| key)
                .collect::<HashSet<_>>()
                .len()
        };
        Verdict {
            lost: count(&[Kind::Lost, Kind::Stale]),
            stale: count(&[Kind::Stale]),
            resurrected: count(&[Kind::Resurrected]),
            invented: count(&[Kind::Invented]),
            unreadable: count(&[Kind::Unreadable]),
            keys_checked: checked.len(),
            examples: found.examples,
        }
    }
}

/// Violations found so far: which (kind, key) pairs, and the first few in full.
#[derive(Default)]
struct Found {
    keys: HashSet<(Kind, String)>,
    examples: Vec<Violation>,
}

impl Found {
    fn add(&mut self, kind: Kind, key: &str, expected: String, seen: String) {
        if self.keys.insert((kind, key.to_owned())) && self.examples.len() < MAX_EXAMPLES {
            self.examples.push(Violation {
                kind,
                key: key.to_owned(),
                expected,
                seen: seen.trim_end().to_owned(),
            });
        }
    }
}

/// The states a read of one key's `ops` sent at `at` may see. Linear in `ops`.
fn allowed(ops: &[&Operation], at: Duration) -> Allowed {
    // An expiry still to come changes nothing the read can see.
    let counts = |o: &&&Operation| !matches!(o.op, Op::Expire { at: e } if e > at);
    // An operation may come last unless an acknowledged one was invoked after it ended: the
    // latest such invoke decides for all.
    let latest_ok_invoke = ops
        .iter()
        .filter(counts)
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.invoke)
        .max();
    let mut allowed = Allowed {
        never_written: latest_ok_invoke.is_none(),
        ..Allowed::default()
    };
    for o in ops.iter().filter(counts) {
        let may_be_last = match o.outcome {
            Outcome::Fail => false,
            Outcome::Unknown => true,
            Outcome::Ok => latest_ok_invoke.is_none_or(|b| b <= o.complete),
        };
        if !may_be_last {
            continue;
        }
        match &o.op {
            Op::Write(v) => {
                allowed.values.insert(v.clone());
            }
            Op::Delete | Op::Expire { .. } => allowed.removed = true,
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `op` on key `k` invoked at `from` ms, completed at `to` ms.
    fn op(op: Op, from: u64, to: u64, outcome: Outcome) -> Operation {
        Operation {
            key: "k".into(),
            op,
            invoke: ms(from),
            complete: ms(to),
            outcome,
        }
    }

    fn write(v: &str, from: u64, to: u64, outcome: Outcome) -> Operation {
        op(Op::Write(v.into()), from, to, outcome)
    }

    fn history(ops: Vec<Operation>) -> History {
        let mut h = History::new();
        for o in ops {
            h.record(o);
        }
        h
    }

    /// The verdict of one final read of `k` at 10 s.
    fn final_read(h: &History, seen: Seen) -> Verdict {
        h.check(&[FinalRead {
            key: "k".into(),
            at: ms(10_000),
            seen,
            via: "through node 0".into(),
        }])
    }

    fn value(v: &str) -> Seen {
        Seen::Value(v.into())
    }

    use Outcome::{Fail, Ok, Unknown};

    #[test]
    fn accepts_the_last_acknowledged_write() {
        let h = history(vec![write("v1", 0, 10, Ok), write("v2", 20, 30, Ok)]);
        assert!(final_read(&h, value("v2")).is_clean());
    }

    #[test]
    fn rejects_a_lost_write() {
        let h = history(vec![write("v1", 0, 10, Ok)]);
        let v = final_read(&h, Seen::Absent);
        assert_eq!((v.lost, v.stale, v.resurrected, v.invented), (1, 0, 0, 0));
        assert_eq!(v.examples[0].kind, Kind::Lost);
        assert_eq!(v.examples[0].expected, "\"v1\"");
        assert_eq!(v.examples[0].seen, "absent through node 0");
    }

    #[test]
    fn rejects_an_older_value_over_a_newer_acknowledged_write_as_lost() {
        let h = history(vec![write("v1", 0, 10, Ok), write("v2", 20, 30, Ok)]);
        let v = final_read(&h, value("v1"));
        assert_eq!((v.lost, v.stale, v.resurrected, v.invented), (1, 1, 0, 0));
    }

    #[test]
    fn accepts_either_of_concurrent_overlapping_writes() {
        let h = history(vec![
            write("v0", 0, 5, Ok),
            write("v1", 10, 40, Ok),
            write("v2", 20, 30, Ok),
        ]);
        assert!(final_read(&h, value("v1")).is_clean());
        assert!(final_read(&h, value("v2")).is_clean());
        // v0 ended before both were invoked.
        assert_eq!(final_read(&h, value("v0")).stale, 1);
    }

    #[test]
    fn rejects_a_resurrected_delete() {
        let h = history(vec![write("v1", 0, 10, Ok), op(Op::Delete, 20, 30, Ok)]);
        assert!(final_read(&h, Seen::Absent).is_clean());
        let v = final_read(&h, value("v1"));
        assert_eq!((v.lost, v.resurrected, v.invented), (0, 1, 0));
        assert_eq!(v.examples[0].expected, "absent");
    }

    #[test]
    fn rejects_a_value_resurrected_after_its_expiry() {
        let expire = Op::Expire { at: ms(3_030) };
        let h = history(vec![write("v1", 0, 10, Ok), op(expire, 20, 30, Ok)]);
        assert!(final_read(&h, Seen::Absent).is_clean());
        let v = final_read(&h, value("v1"));
        assert_eq!((v.lost, v.resurrected, v.invented), (0, 1, 0));
    }

    #[test]
    fn an_expiry_still_to_come_keeps_the_value() {
        let expire = Op::Expire { at: ms(60_000) };
        let h = history(vec![write("v1", 0, 10, Ok), op(expire, 20, 30, Ok)]);
        assert!(final_read(&h, value("v1")).is_clean());
        assert_eq!(final_read(&h, Seen::Absent).lost, 1);
    }

    #[test]
    fn a_write_after_an_expiry_clears_it() {
        let expire = Op::Expire { at: ms(3_030) };
        let h = history(vec![
            write("v1", 0, 10, Ok),
            op(expire, 20, 30, Ok),
            write("v2", 40, 50, Ok),
        ]);
        assert!(final_read(&h, value("v2")).is_clean());
        assert_eq!(final_read(&h, Seen::Absent).lost, 1);
    }

    #[test]
    fn rejects_an_invented_value() {
        let h = history(vec![write("v1", 0, 10, Ok)]);
        let v = final_read(&h, value("v9"));
        assert_eq!((v.lost, v.resurrected, v.invented), (0, 0, 1));
    }

    #[test]
    fn a_refused_write_must_not_appear() {
        let h = history(vec![write("v1", 0, 10, Ok), write("v2", 20, 30, Fail)]);
        assert!(final_read(&h, value("v1")).is_clean());
        let v = final_read(&h, value("v2"));
        assert_eq!(v.invented, 1);
        assert!(
            v.examples[0].expected.contains("refused"),
            "{:?}",
            v.examples
        );
        // A refused delete does not make absence acceptable either.
        let h = history(vec![write("v1", 0, 10, Ok), op(Op::Delete, 20, 30, Fail)]);
        assert_eq!(final_read(&h, Seen::Absent).lost, 1);
    }

    #[test]
    fn an_unknown_write_after_a_delete_may_come_last() {
        let h = history(vec![
            write("v1", 0, 10, Ok),
            op(Op::Delete, 20, 30, Ok),
            write("v2", 40, 5_040, Unknown),
        ]);
        assert!(final_read(&h, value("v2")).is_clean());
        assert!(final_read(&h, Seen::Absent).is_clean());
        assert_eq!(final_read(&h, value("v1")).resurrected, 1);
    }

    #[test]
    fn an_unknown_write_may_apply_after_a_later_acknowledged_one() {
        let h = history(vec![
            write("v1", 0, 5_000, Unknown),
            write("v2", 6_000, 6_010, Ok),
        ]);
        assert!(final_read(&h, value("v1")).is_clean());
        assert!(final_read(&h, value("v2")).is_clean());
        assert_eq!(final_read(&h, Seen::Absent).lost, 1);
    }

    #[test]
    fn an_unknown_delete_makes_absence_acceptable() {
        let h = history(vec![
            write("v1", 0, 10, Ok),
            op(Op::Delete, 20, 5_020, Unknown),
        ]);
        assert!(final_read(&h, value("v1")).is_clean());
        assert!(final_read(&h, Seen::Absent).is_clean());
    }

    #[test]
    fn with_nothing_acknowledged_absence_is_acceptable() {
        let h = history(vec![
            write("v1", 0, 5_000, Unknown),
            write("v2", 6_000, 6_010, Fail),
        ]);
        assert!(final_read(&h, Seen::Absent).is_clean());
        assert!(final_read(&h, value("v1")).is_clean());
        assert_eq!(final_read(&h, value("v2")).invented, 1);
    }

    #[test]
    fn an_unreadable_key_is_lost_only_when_a_value_must_be_there() {
        let why = || Seen::Unreadable("TRYAGAIN".into());
        let h = history(vec![write("v1", 0, 10, Ok)]);
        let v = final_read(&h, why());
        assert_eq!((v.lost, v.unreadable), (1, 0));
        let h = history(vec![write("v1", 0, 10, Ok), op(Op::Delete, 20, 30, Ok)]);
        let v = final_read(&h, why());
        assert_eq!((v.lost, v.unreadable), (0, 1));
        assert!(v.is_clean());
        assert_eq!(v.examples[0].kind, Kind::Unreadable);
    }

    #[test]
    fn a_key_read_wrongly_twice_counts_once() {
        let h = history(vec![write("v1", 0, 10, Ok)]);
        let read = |via: &str| FinalRead {
            key: "k".into(),
            at: ms(10_000),
            seen: Seen::Absent,
            via: via.into(),
        };
        let v = h.check(&[read("through node 0"), read("through node 3")]);
        assert_eq!((v.lost, v.keys_checked, v.examples.len()), (1, 1, 1));
    }

    #[test]
    fn reads_during_the_run_may_be_stale_but_not_early_or_invented() {
        let mut h = history(vec![write("v1", 0, 10, Ok), write("v2", 100, 110, Ok)]);
        let read = |from: u64, to: u64, seen: Option<&str>| Read {
            key: "k".into(),
            invoke: ms(from),
            complete: ms(to),
            seen: seen.map(str::to_owned),
        };
        // Stale, absent, and a write seen while it is still in flight: all fine.
        h.read(read(200, 210, Some("v1")));
        h.read(read(200, 210, None));
        h.read(read(95, 105, Some("v2")));
        assert!(h.check(&[]).is_clean());
        // v2 seen before its write was even sent.
        h.read(read(50, 60, Some("v2")));
        assert_eq!(h.check(&[]).invented, 1);
        let mut h = history(vec![write("v1", 0, 10, Ok)]);
        h.read(read(20, 30, Some("v7")));
        assert_eq!(h.check(&[]).invented, 1);
    }

    #[test]
    fn keys_are_checked_apart() {
        let mut h = history(vec![write("v1", 0, 10, Ok)]);
        h.record(Operation {
            key: "other".into(),
            op: Op::Delete,
            invoke: ms(20),
            complete: ms(30),
            outcome: Ok,
        });
        // The delete of "other" does not make "k" absent.
        assert_eq!(final_read(&h, Seen::Absent).lost, 1);
        assert_eq!(h.keys(), ["k", "other"]);
        assert_eq!(h.acked(&Op::Delete), 1);
        assert_eq!(h.acked(&Op::Write(String::new())), 1);
    }

    #[test]
    fn a_hundred_thousand_operations_check_quickly() {
        // Half the keys written then deleted, a run of concurrent writes on one hot key: the
        // check is linear per key, so this takes milliseconds even in a debug build.
        let mut h = History::new();
        let mut finals = Vec::new();
        for i in 0..25_000u64 {
            let key = format!("k{i}");
            let t = i * 10;
            h.record(Operation {
                key: key.clone(),
                op: Op::Write(format!("v{i}")),
                invoke: ms(t),
                complete: ms(t + 5),
                outcome: Ok,
            });
            let removed = i % 2 == 0;
            if removed {
                h.record(Operation {
                    key: key.clone(),
                    op: Op::Delete,
                    invoke: ms(t + 6),
                    complete: ms(t + 8),
                    outcome: Ok,
                });
            }
            let seen = if removed {
                Seen::Absent
            } else {
                Seen::Value(format!("v{i}"))
            };
            finals.push(FinalRead {
                key,
                at: ms(1_000_000),
                seen,
                via: String::new(),
            });
        }
        for i in 0..50_000u64 {
            h.record(Operation {
                key: "hot".into(),
                op: Op::Write(format!("h{i}")),
                invoke: ms(i),
                complete: ms(i + 100_000),
                outcome: Ok,
            });
        }
        finals.push(FinalRead {
            key: "hot".into(),
            at: ms(1_000_000),
            seen: Seen::Value("h17".into()),
            via: String::new(),
        });
        let started = std::time::Instant::now();
        let v = h.check(&finals);
        assert!(v.is_clean(), "{v:?}");
        assert_eq!(v.keys_checked, 25_001);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

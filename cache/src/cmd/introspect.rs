//! SLOWLOG and LATENCY: what the server recorded about the commands it ran
//! (`crate::introspect`).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::table::{self, COMMANDS, Command};
use super::{CmdResult, Ctx, NOT_INT, help, int_arg, sub};
use crate::introspect::CmdStat;

/// SLOWLOG GET [count] | LEN | RESET | HELP
pub fn slowlog(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "slowlog")?;
    let intro = &ctx.shared.intro;
    match s.name {
        "slowlog|get" => {
            let count = match args.get(2) {
                None => Some(10),
                Some(a) => {
                    let n = int_arg(a).map_err(|_| NOT_INT)?;
                    if n < -1 {
                        return Err("ERR count should be greater than or equal to -1".into());
                    }
                    if n == -1 { None } else { Some(n as usize) }
                }
            };
            let entries = intro.slowlog(count);
            let out = &mut *ctx.out;
            out.array(entries.len());
            for e in entries {
                out.array(6);
                out.int(e.id as i64);
                out.int(e.time as i64);
                out.int(e.usec as i64);
                out.array(e.args.len());
                for a in &e.args {
                    out.bulk(a);
                }
                out.bulk(e.addr.as_bytes());
                out.bulk(e.name.as_bytes());
            }
        }
        "slowlog|len" => ctx.out.int(intro.slowlog_len() as i64),
        "slowlog|reset" => {
            intro.slowlog_reset();
            ctx.out.ok();
        }
        _ => help(
            ctx,
            &[
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Prints this help.",
            ],
        ),
    }
    Ok(())
}

/// Writes one command's `LATENCY HISTOGRAM` entry: calls and cumulative counts per
/// power-of-two microsecond bucket.
fn write_histogram(ctx: &mut Ctx<'_>, name: &str, st: &CmdStat) {
    let out = &mut *ctx.out;
    out.bulk(name.as_bytes());
    out.map(2);
    out.bulk(b"calls");
    out.int(st.calls as i64);
    out.bulk(b"histogram_usec");
    let buckets: Vec<usize> = (0..st.hist.len()).filter(|&i| st.hist[i] > 0).collect();
    out.map(buckets.len());
    let mut cumulative = 0;
    for (i, n) in st.hist.iter().enumerate() {
        cumulative += n;
        if *n > 0 {
            out.int(1i64 << i);
            out.int(cumulative as i64);
        }
    }
}

/// The full names (`client|id`) a `LATENCY HISTOGRAM` argument stands for: a command with
/// subcommands stands for all of them.
fn histogram_names(arg: &[u8]) -> Vec<&'static str> {
    let lower = arg.to_ascii_lowercase();
    let found: Option<&'static Command> = table::lookup(&lower).or_else(|| {
        let bar = lower.iter().position(|&c| c == b'|')?;
        table::lookup_sub(table::lookup(&lower[..bar])?, &lower[bar + 1..])
    });
    match found {
        Some(c) if c.subcommands.is_empty() => vec![c.name],
        Some(c) => c.subcommands.iter().map(|s| s.name).collect(),
        None => Vec::new(),
    }
}

/// LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR | GRAPH event | HISTOGRAM
/// [command ...] | HELP
pub fn latency(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "latency")?;
    let intro = &ctx.shared.intro;
    match s.name {
        "latency|latest" => {
            let events = intro.events();
            let out = &mut *ctx.out;
            out.array(events.len());
            for (name, ev) in events {
                let (t, ms) = ev.samples.back().copied().unwrap_or((0, 0));
                out.array(4);
                out.bulk(name.as_bytes());
                out.int(t as i64);
                out.int(ms as i64);
                out.int(ev.max as i64);
            }
        }
        "latency|history" => {
            let name = String::from_utf8_lossy(args[2]);
            let events = intro.events();
            let samples = events.get(name.as_ref()).map(|e| e.samples.clone());
            let samples = samples.unwrap_or_default();
            let out = &mut *ctx.out;
            out.array(samples.len());
            for (t, ms) in samples {
                out.array(2);
                out.int(t as i64);
                out.int(ms as i64);
            }
        }
        "latency|reset" => {
            let names: Vec<String> = args[2..]
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let n = intro.reset_events(&names);
            ctx.out.int(n as i64);
        }
        "latency|graph" => {
            let name = String::from_utf8_lossy(args[2]).into_owned();
            let events = intro.events();
            let Some(ev) = events.get(&name) else {
                return Err(format!("ERR No samples available for event '{name}'").into());
            };
            let mut t = format!(
                "{name} - high {} ms, low {} ms (all time high {} ms)\n",
                ev.samples.iter().map(|s| s.1).max().unwrap_or(0),
                ev.samples.iter().map(|s| s.1).min().unwrap_or(0),
                ev.max
            );
            t.push_str(&"-".repeat(80));
            t.push('\n');
            for (time, ms) in &ev.samples {
                let _ = writeln!(t, "{time} {ms} ms");
            }
            ctx.out.verbatim(t.as_bytes());
        }
        "latency|doctor" => {
            let events = intro.events();
            let threshold = intro.latency_threshold.load(Ordering::Relaxed);
            let mut t = String::new();
            if events.is_empty() {
                t.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sleep for a while, or at least not run the latency monitor, which is set to ");
                let _ = writeln!(t, "{threshold} milliseconds.");
            } else {
                t.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
                for (i, (name, ev)) in events.iter().enumerate() {
                    let n = ev.samples.len().max(1) as u64;
                    let avg = ev.samples.iter().map(|s| s.1).sum::<u64>() / n;
                    let _ = writeln!(
                        t,
                        "{}. {name}: {} latency spikes (average {avg}ms, mean deviation 0ms, period 0 sec). Worst all time event {}ms.",
                        i + 1,
                        ev.samples.len(),
                        ev.max
                    );
                }
                t.push_str("\nI have a few advices for you:\n\n- Check your system for slow commands with SLOWLOG GET, and the latency of this node's host.\n");
            }
            ctx.out.verbatim(t.as_bytes());
        }
        "latency|histogram" => {
            let stats = intro.commands();
            let names: Vec<&'static str> = if args.len() == 2 {
                COMMANDS
                    .iter()
                    .flat_map(|c| {
                        if c.subcommands.is_empty() {
                            vec![c.name]
                        } else {
                            c.subcommands.iter().map(|s| s.name).collect()
                        }
                    })
                    .collect()
            } else {
                let mut v: Vec<&'static str> = Vec::new();
                for a in &args[2..] {
                    for n in histogram_names(a) {
                        if !v.contains(&n) {
                            v.push(n);
                        }
                    }
                }
                v
            };
            let found: Vec<(&'static str, &CmdStat)> = names
                .into_iter()
                .filter_map(|n| stats.get(n).filter(|s| s.calls > 0).map(|s| (n, s)))
                .collect();
            ctx.out.map(found.len());
            for (n, st) in found {
                write_histogram(ctx, n, st);
            }
        }
        _ => help(
            ctx,
            &[
                "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
                "HELP",
                "    Prints this help.",
            ],
        ),
    }
    Ok(())
}

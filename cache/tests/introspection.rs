//! INFO commandstats/errorstats/latencystats, SLOWLOG, LATENCY, CONFIG SET/RESETSTAT and
//! CLIENT REPLY through in-memory sessions.

use cache::session::Session;

/// The value of `field` in an INFO text.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::to_owned)
}

#[test]
fn commandstats_count_calls_failures_and_rejections() {
    let mut s = Session::new();
    assert_eq!(s.cmd(&["CONFIG", "RESETSTAT"]), "+OK\r\n");
    s.cmd(&["SET", "k", "v"]);
    s.cmd(&["SET", "k"]);
    s.cmd(&["LPUSH", "k", "x"]);
    s.cmd(&["NOSUCHCOMMAND"]);
    s.cmd(&["CLIENT", "ID"]);
    let info = s.cmd(&["INFO", "commandstats"]);
    let set = info_field(&info, "cmdstat_set").expect("set is listed");
    assert!(set.starts_with("calls=1,"), "{set}");
    assert!(set.ends_with("rejected_calls=1,failed_calls=0"), "{set}");
    let lpush = info_field(&info, "cmdstat_lpush").expect("lpush is listed");
    assert!(
        lpush.ends_with("rejected_calls=0,failed_calls=1"),
        "{lpush}"
    );
    assert!(info_field(&info, "cmdstat_client|id").is_some());
    let errs = s.cmd(&["INFO", "errorstats"]);
    assert_eq!(
        info_field(&errs, "errorstat_ERR").as_deref(),
        Some("count=2")
    );
    assert_eq!(
        info_field(&errs, "errorstat_WRONGTYPE").as_deref(),
        Some("count=1")
    );
    let stats = s.cmd(&["INFO", "stats"]);
    assert_eq!(
        info_field(&stats, "total_error_replies").as_deref(),
        Some("3")
    );
    // The default sections leave the per-command ones out.
    assert!(!s.cmd(&["INFO"]).contains("cmdstat_"));
    assert!(s.cmd(&["INFO", "all"]).contains("cmdstat_"));
    s.cmd(&["CONFIG", "RESETSTAT"]);
    let errs = s.cmd(&["INFO", "errorstats"]);
    assert!(info_field(&errs, "errorstat_ERR").is_none());
}

#[test]
fn latencystats_follow_the_configured_percentiles() {
    let mut s = Session::new();
    s.cmd(&["SET", "a", "b"]);
    let line = info_field(
        &s.cmd(&["INFO", "latencystats"]),
        "latency_percentiles_usec_set",
    )
    .expect("set has percentiles");
    assert!(line.starts_with("p50=") && line.contains(",p99=") && line.contains(",p99.9="));
    assert_eq!(
        s.cmd(&[
            "CONFIG",
            "SET",
            "latency-tracking-info-percentiles",
            "0.0 50.0 100.0"
        ]),
        "+OK\r\n"
    );
    assert!(
        s.cmd(&["CONFIG", "GET", "latency-tracking-info-percentiles"])
            .contains("0 50 100")
    );
    let line = info_field(
        &s.cmd(&["INFO", "latencystats"]),
        "latency_percentiles_usec_set",
    )
    .expect("set has percentiles");
    assert!(line.starts_with("p0=") && line.contains(",p100="), "{line}");
    assert!(
        s.cmd(&[
            "CONFIG",
            "SET",
            "latency-tracking-info-percentiles",
            "10 101"
        ])
        .starts_with("-ERR CONFIG SET failed")
    );
}

#[test]
fn slowlog_keeps_the_newest_entries_with_summarized_arguments() {
    let mut s = Session::new();
    s.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    s.cmd(&["CONFIG", "SET", "slowlog-max-len", "3"]);
    s.cmd(&["SLOWLOG", "RESET"]);
    let long = "A".repeat(129);
    s.cmd(&["SET", "k", &long]);
    s.cmd(&["PING"]);
    s.cmd(&["PING"]);
    s.cmd(&["ECHO", "x"]);
    assert_eq!(s.cmd(&["SLOWLOG", "LEN"]), ":3\r\n");
    let all = s.cmd(&["SLOWLOG", "GET", "-1"]);
    // Newest first: the ECHO (the SET fell out of the three kept).
    assert!(all.starts_with("*3\r\n*6\r\n"), "{all}");
    assert!(all.contains("$4\r\nECHO\r\n"));
    assert!(!all.contains(&long));
    assert_eq!(
        s.cmd(&["SLOWLOG", "GET", "-2"]),
        "-ERR count should be greater than or equal to -1\r\n"
    );
    s.cmd(&["CONFIG", "SET", "slowlog-max-len", "10"]);
    s.cmd(&["SLOWLOG", "RESET"]);
    s.cmd(&["SET", "k", &long]);
    let e = s.cmd(&["SLOWLOG", "GET", "1"]);
    assert!(
        e.contains(&format!("{}... (1 more bytes)", "A".repeat(128))),
        "{e}"
    );
    // EXEC itself is not logged, the commands it runs are.
    s.cmd(&["SLOWLOG", "RESET"]);
    s.cmd(&["MULTI"]);
    s.cmd(&["PING"]);
    s.cmd(&["EXEC"]);
    let e = s.cmd(&["SLOWLOG", "GET"]);
    assert!(e.contains("PING") && !e.contains("EXEC"), "{e}");
}

#[test]
fn latency_histogram_lists_called_commands_and_subcommands() {
    let mut s = Session::new();
    s.cmd(&["CONFIG", "RESETSTAT"]);
    s.cmd(&["SET", "a", "b"]);
    s.cmd(&["SET", "c", "d"]);
    s.cmd(&["CLIENT", "ID"]);
    let h = s.cmd(&["LATENCY", "HISTOGRAM", "set", "client", "nosuch"]);
    assert!(
        h.starts_with("*4\r\n$3\r\nset\r\n*4\r\n$5\r\ncalls\r\n:2\r\n"),
        "{h}"
    );
    assert!(h.contains("client|id"));
    assert_eq!(s.cmd(&["LATENCY", "LATEST"]), "*0\r\n");
    assert_eq!(s.cmd(&["LATENCY", "RESET", "nosuch"]), ":0\r\n");
    assert_eq!(
        s.cmd(&["LATENCY", "HELP", "x"]),
        "-ERR wrong number of arguments for 'latency|help' command\r\n"
    );
}

#[test]
fn config_set_is_all_or_nothing() {
    let mut s = Session::new();
    assert_eq!(
        s.cmd(&["CONFIG", "SET", "maxmemory", "10000002"]),
        "+OK\r\n"
    );
    let e = s.cmd(&[
        "CONFIG",
        "SET",
        "maxmemory",
        "10000001",
        "maxmemory-clients",
        "200%",
    ]);
    assert_eq!(
        e,
        "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - percentage argument must be less or equal to 100\r\n"
    );
    assert!(s.cmd(&["CONFIG", "GET", "maxmemory"]).contains("10000002"));
    assert!(
        s.cmd(&["CONFIG", "SET", "maxmemory", "1", "maxmemory", "2"])
            .contains("duplicate parameter")
    );
    assert!(
        s.cmd(&["CONFIG", "SET", "daemonize", "yes"])
            .contains("can't set immutable config")
    );
    // Hidden parameters only by name; aliases shown by their own name.
    assert!(!s.cmd(&["CONFIG", "GET", "*"]).contains("key-load-delay"));
    assert!(
        s.cmd(&["CONFIG", "GET", "key-load-delay"])
            .contains("key-load-delay")
    );
    let of = s.cmd(&["CONFIG", "GET", "*of"]);
    assert!(of.contains("slaveof") && of.contains("replicaof"));
}

#[test]
fn client_reply_off_and_skip_drop_replies() {
    let mut s = Session::new();
    assert_eq!(s.cmd(&["CLIENT", "REPLY", "OFF"]), "");
    assert_eq!(s.cmd(&["PING"]), "");
    assert_eq!(s.cmd(&["CLIENT", "REPLY", "ON"]), "+OK\r\n");
    assert_eq!(s.cmd(&["CLIENT", "REPLY", "SKIP"]), "");
    assert_eq!(s.cmd(&["PING"]), "");
    assert_eq!(s.cmd(&["PING"]), "+PONG\r\n");
    // ON right after SKIP answers (it clears the skip).
    s.cmd(&["CLIENT", "REPLY", "SKIP"]);
    assert_eq!(s.cmd(&["CLIENT", "REPLY", "ON"]), "+OK\r\n");
}

#[test]
fn writes_count_as_changes_since_last_save() {
    let mut s = Session::new();
    let changes = |s: &mut Session| {
        info_field(
            &s.cmd(&["INFO", "persistence"]),
            "rdb_changes_since_last_save",
        )
        .and_then(|v| v.parse::<u64>().ok())
        .expect("a number")
    };
    let before = changes(&mut s);
    s.cmd(&["SET", "a", "1"]);
    s.cmd(&["GET", "a"]);
    s.cmd(&["DEL", "a"]);
    assert_eq!(changes(&mut s), before + 2);
}

#[test]
fn commands_not_allowed_in_multi_abort_it() {
    let mut s = Session::new();
    s.cmd(&["MULTI"]);
    assert_eq!(
        s.cmd(&["SHUTDOWN"]),
        "-ERR Command not allowed inside a transaction\r\n"
    );
    assert!(s.cmd(&["EXEC"]).starts_with("-EXECABORT"));
}

#[test]
fn flush_touches_only_watches_of_existing_keys() {
    let mut s = Session::new();
    s.cmd(&["WATCH", "x"]);
    s.cmd(&["FLUSHALL"]);
    s.cmd(&["MULTI"]);
    s.cmd(&["PING"]);
    assert_eq!(s.cmd(&["EXEC"]), "*1\r\n+PONG\r\n");
    s.cmd(&["SET", "x", "1"]);
    s.cmd(&["WATCH", "x"]);
    s.cmd(&["FLUSHALL"]);
    s.cmd(&["MULTI"]);
    s.cmd(&["PING"]);
    assert_eq!(s.cmd(&["EXEC"]), "*-1\r\n");
}

#[test]
fn client_pause_holds_writes_until_unpause() {
    let mut admin = Session::new();
    let mut s = Session::on(admin.shared().clone());
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]),
        "+OK\r\n"
    );
    // Reads run; a write waits, and so does what the client sent after it.
    assert_eq!(s.cmd(&["GET", "k"]), "$-1\r\n");
    assert_eq!(s.cmd(&["SET", "k", "v"]), "");
    assert_eq!(s.cmd(&["PING"]), "");
    let clients = admin.cmd(&["INFO", "clients"]);
    assert!(clients.contains("blocked_clients:1"), "{clients}");
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
    assert_eq!(s.feed(b""), b"+OK\r\n+PONG\r\n");
    assert_eq!(s.cmd(&["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "-1"]),
        "-ERR timeout is negative\r\n"
    );
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "10", "SOME"]),
        "-ERR syntax error\r\n"
    );
}

#[test]
fn scripts_declared_read_only_run_during_a_write_pause() {
    let mut admin = Session::new();
    let mut s = Session::on(admin.shared().clone());
    let lib = "#!lua name=f1\nredis.register_function{function_name='f1', callback=function() return 'hello' end, flags={'no-writes'}}";
    assert_eq!(s.cmd(&["FUNCTION", "LOAD", lib]), "$2\r\nf1\r\n");
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]),
        "+OK\r\n"
    );
    let ro = "#!lua flags=no-writes\nreturn 'unique script'";
    assert_eq!(s.cmd(&["EVAL", ro, "0"]), "$13\r\nunique script\r\n");
    assert_eq!(s.cmd(&["FCALL", "f1", "0"]), "$5\r\nhello\r\n");
    assert_eq!(s.cmd(&["EVAL_RO", "return 1", "0"]), ":1\r\n");
    // In a transaction too: EXEC of read-only scripts is not held.
    assert_eq!(s.cmd(&["MULTI"]), "+OK\r\n");
    let twelve = "#!lua flags=no-writes\nreturn 12";
    assert_eq!(s.cmd(&["EVAL", twelve, "0"]), "+QUEUED\r\n");
    assert_eq!(s.cmd(&["EXEC"]), "*1\r\n:12\r\n");
    let r = s.cmd(&["EVAL_RO", "return redis.call('publish','ch','msg')", "0"]);
    // Raised by a tail call, the error still says where (Redis names the tail call's frame).
    assert!(
        r.starts_with("-ERR Write commands are not allowed from read-only scripts. script:"),
        "{r}"
    );
    // A script that may write waits for the end of the pause.
    assert_eq!(s.cmd(&["EVAL", "return 2", "0"]), "");
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
    assert_eq!(s.feed(b""), b":2\r\n");
}

#[test]
fn expired_keys_are_hidden_but_kept_while_writes_are_paused() {
    let mut s = Session::new();
    s.cmd(&["SET", "k", "v", "PX", "1"]);
    assert_eq!(s.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]), "+OK\r\n");
    // Wait (bounded) for the millisecond TTL to pass, without sleeping.
    let start = std::time::Instant::now();
    while s.cmd(&["GET", "k"]) != "$-1\r\n" {
        assert!(start.elapsed().as_secs() < 5, "the key never expired");
        std::thread::yield_now();
    }
    let expired =
        |s: &mut Session| info_field(&s.cmd(&["INFO", "stats"]), "expired_keys").expect("a count");
    assert_eq!(expired(&mut s), "0");
    assert_eq!(s.cmd(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
    assert_eq!(s.cmd(&["GET", "k"]), "$-1\r\n");
    assert_eq!(expired(&mut s), "1");
}

#[test]
fn subscription_confirmations_are_sent_with_replies_off() {
    let mut s = Session::new();
    s.cmd(&["CLIENT", "REPLY", "OFF"]);
    assert_eq!(
        s.cmd(&["SUBSCRIBE", "ch"]),
        "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    );
    assert_eq!(s.cmd(&["PING"]), "");
}

#[test]
fn a_script_passing_a_commands_error_on_counts_it_once() {
    let mut s = Session::new();
    // Warm the scripting VM: its memory counts against maxmemory.
    assert_eq!(s.cmd(&["EVAL", "return 1", "0"]), ":1\r\n");
    assert_eq!(s.cmd(&["CONFIG", "RESETSTAT"]), "+OK\r\n");
    assert_eq!(s.cmd(&["CONFIG", "SET", "maxmemory", "1"]), "+OK\r\n");
    let r = s.cmd(&["EVAL", "return redis.call('set','x','y')", "1", "x"]);
    assert!(r.starts_with("-OOM command not allowed"), "{r}");
    let errs = s.cmd(&["INFO", "errorstats"]);
    assert_eq!(
        info_field(&errs, "errorstat_OOM").as_deref(),
        Some("count=1"),
        "{errs}"
    );
    let info = s.cmd(&["INFO", "commandstats"]);
    let set = info_field(&info, "cmdstat_set").expect("set is listed");
    assert!(set.contains("rejected_calls=1,failed_calls=0"), "{set}");
    let eval = info_field(&info, "cmdstat_eval").expect("eval is listed");
    assert!(eval.contains("failed_calls=1"), "{eval}");
    // A script flagged as writing is refused before it runs.
    let r = s.cmd(&["EVAL", "#!lua\nreturn 1", "0"]);
    assert!(r.starts_with("-OOM"), "{r}");
    assert_eq!(s.cmd(&["CONFIG", "SET", "maxmemory", "0"]), "+OK\r\n");
    assert_eq!(s.cmd(&["EVAL", "#!lua\nreturn 1", "0"]), ":1\r\n");
    // A write from a read-only script: a rejected call of the command, one error.
    assert_eq!(s.cmd(&["CONFIG", "RESETSTAT"]), "+OK\r\n");
    let r = s.cmd(&["EVAL_RO", "return redis.call('set','x','y')", "1", "x"]);
    assert!(r.starts_with("-ERR Write commands are not allowed"), "{r}");
    let errs = s.cmd(&["INFO", "errorstats"]);
    assert_eq!(
        info_field(&errs, "errorstat_ERR").as_deref(),
        Some("count=1")
    );
}

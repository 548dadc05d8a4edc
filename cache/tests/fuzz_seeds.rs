//! The `session` fuzz target starts from the seeds in `cache/fuzz/seeds/session/` (one inline
//! command per line, passed to libFuzzer beside the growing corpus by `scripts/fuzz`), so that it
//! reaches every command's handler from its first second instead of waiting to guess a name.
//! This keeps the seeds complete: a command added to the table without a seed line fails here.

use std::path::PathBuf;

use cache::cmd::table::COMMANDS;
use cache::session::Session;

fn seed_lines() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/session");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            lines.push((file.clone(), line.to_ascii_lowercase()));
        }
    }
    lines
}

/// The first `n` words of an inline command, lowercase.
fn words(line: &str, n: usize) -> String {
    line.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_command_and_subcommand_has_a_seed() {
    let lines = seed_lines();
    let mut missing = Vec::new();
    for cmd in COMMANDS {
        if !lines.iter().any(|(_, l)| words(l, 1) == cmd.name) {
            missing.push(cmd.name.to_string());
        }
        for sub in cmd.subcommands {
            let want = sub.name.replace('|', " ");
            if !lines.iter().any(|(_, l)| words(l, 2) == want) {
                missing.push(want);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "commands without a fuzz seed line: {missing:?}"
    );
}

#[test]
fn every_seed_file_runs_through_a_session() {
    let lines = seed_lines();
    let mut files: Vec<&str> = lines.iter().map(|(f, _)| f.as_str()).collect();
    files.dedup();
    for file in files {
        let mut s = Session::new();
        s.cmd(&["CONFIG", "SET", "proxima-script-time-limit", "200"]);
        let mut answered = 0;
        for (_, line) in lines.iter().filter(|(f, _)| f == file) {
            if s.closed() {
                break;
            }
            let out = s.feed(format!("{line}\r\n").as_bytes());
            answered += usize::from(!out.is_empty());
        }
        // Most lines get an answer (a blocking command with nothing to pop, a MONITOR or a
        // subscription may not); a parser that swallowed the file would answer none.
        assert!(answered > 0, "{file}: no line was answered");
    }
}

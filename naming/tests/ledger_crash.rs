//! Crash safety of the embedded ledger: a writer process is SIGKILLed at random points, again
//! and again, on the same log; every reopen must find a consistent log (checksums, chain,
//! signatures) that holds every transaction the writer had acknowledged.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use naming::ed25519_dalek::SigningKey;
use naming::embedded::LOG_FILE;
use naming::{EmbeddedConfig, EmbeddedLedger, Ledger, Name, OwnerKey, SystemClock};
use rand::Rng;

const DIR_ENV: &str = "NAMING_CRASH_DIR";

fn open(dir: &std::path::Path) -> (EmbeddedLedger, naming::embedded::OpenReport) {
    EmbeddedLedger::open(
        dir,
        SigningKey::from_bytes(&[42; 32]),
        EmbeddedConfig::default(),
        Arc::new(SystemClock),
    )
    .expect("ledger opens")
}

/// The writer run in a child process by `killed_writer_loses_nothing_acknowledged`; run directly
/// (without the directory variable) it returns at once.
#[tokio::test]
async fn child_writer() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let (ledger, _) = open(std::path::Path::new(&dir));
    let owner = OwnerKey::Ed25519(SigningKey::from_bytes(&[7; 32]));
    let zk = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
    let mut out = std::io::stdout();
    let start = ledger.len();
    for i in start..start + 100_000 {
        let name: Name = format!("crash{i}.proxima").parse().unwrap();
        ledger
            .register(&name, &owner, zk, 1)
            .await
            .expect("register");
        writeln!(out, "ACK {name}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn killed_writer_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: Vec<Name> = Vec::new();
    let mut torn_tails = 0;
    for round in 0..12 {
        let mut child = Command::new(&exe)
            .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let kill_after: usize = rng.gen_range(1..60);
        // Far more than the child acknowledges before it is killed.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Name>(100_000);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ACK ") {
                    let _ = tx.send(n.parse().unwrap());
                }
            }
        });
        // Wait for some acknowledgements, then kill at a random moment (often mid-write).
        let mut seen = 0;
        while seen < kill_after {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(n) => {
                    acked.push(n);
                    seen += 1;
                }
                Err(e) => panic!("round {round}: writer stalled: {e}"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        // Acknowledgements already in the pipe count too.
        acked.extend(rx.try_iter());

        let (ledger, report) = open(dir.path());
        if report.dropped_bytes > 0 {
            torn_tails += 1;
        }
        let records = ledger.verify_log().expect("consistent log after a kill");
        assert_eq!(records, ledger.len());
        assert!(
            records >= acked.len() as u64,
            "round {round}: {records} records but {} acknowledged",
            acked.len()
        );
        for n in &acked {
            assert!(
                ledger.lookup(n).await.unwrap().is_some(),
                "round {round}: acknowledged {n} lost"
            );
        }
        // What the log holds is exactly the writer's prefix: crash0, crash1, ... without gaps.
        for i in 0..records {
            let n: Name = format!("crash{i}.proxima").parse().unwrap();
            assert!(ledger.lookup(&n).await.unwrap().is_some(), "gap at {i}");
        }
        // Continue from what survived (unacknowledged-but-written records count as written).
        acked = (0..records)
            .map(|i| format!("crash{i}.proxima").parse().unwrap())
            .collect();
    }
    assert!(
        !acked.is_empty(),
        "the child writer never acknowledged a registration"
    );
    eprintln!(
        "12 kills, {torn_tails} torn tails dropped, {} records",
        acked.len()
    );
}

/// A torn last frame (any prefix of it) is detected, dropped, and writing continues after it.
#[tokio::test]
async fn torn_tail_is_dropped_and_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    let owner = OwnerKey::Ed25519(SigningKey::from_bytes(&[7; 32]));
    let zk = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
    let path = dir.path().join(LOG_FILE);
    {
        let (l, _) = open(dir.path());
        for i in 0..3 {
            let n: Name = format!("t{i}.proxima").parse().unwrap();
            l.register(&n, &owner, zk, 1).await.unwrap();
        }
    }
    let full = std::fs::read(&path).unwrap();
    let two = {
        let (l, _) = open(dir.path());
        l.read_frames(0, 2)
            .unwrap()
            .iter()
            .map(|f| f.frame.len())
            .sum::<usize>()
    };
    for cut in [two + 1, two + 4, two + 50, full.len() - 1] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let (_l, report) = open(dir.path());
        assert_eq!(report.records, 2, "cut at {cut}");
        assert_eq!(report.dropped_bytes as usize, cut - two);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, two);
    }
    // A flipped byte inside the last frame is corruption of the tail too.
    let mut bad = full.clone();
    let last = bad.len() - 40;
    bad[last] ^= 0x10;
    std::fs::write(&path, &bad).unwrap();
    let (l, report) = open(dir.path());
    assert_eq!(report.records, 2);
    let n: Name = "after.proxima".parse().unwrap();
    l.register(&n, &owner, zk, 1).await.unwrap();
    drop(l);
    let (l, report) = open(dir.path());
    assert_eq!((report.records, report.dropped_bytes), (3, 0));
    assert_eq!(l.verify_log().unwrap(), 3);
}

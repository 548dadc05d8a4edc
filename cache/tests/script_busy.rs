//! A script that has run fast before and then turns long: the other connections must still be
//! answered `BUSY` and be able to `SCRIPT KILL` it, over real sockets on a multi-threaded
//! runtime as the node runs. (Running known-fast scripts on the connection's own worker, to
//! save the hand-off `block_in_place` costs, hung exactly here: the long run blocked the tasks
//! queued on that worker, this test's client among them.)

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::req;

/// Sends one command and returns the first read of its reply (the replies here are short).
async fn ask(s: &mut TcpStream, args: &[&str]) -> String {
    s.write_all(&req(args)).await.unwrap();
    read(s).await
}

async fn read(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("a reply in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_script_that_turns_long_is_answered_busy_and_killed() {
    let (addr, shutdown) = common::start().await;
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        ask(&mut a, &["CONFIG", "SET", "busy-reply-threshold", "50"]).await,
        "+OK\r\n"
    );
    let script = "if ARGV[1] == 'spin' then while true do end end return 1";
    let loaded = ask(&mut a, &["SCRIPT", "LOAD", script]).await;
    let sha = loaded.lines().nth(1).expect("a sha").to_owned();
    // Fast runs first.
    for _ in 0..3 {
        assert_eq!(ask(&mut a, &["EVALSHA", &sha, "0", "go"]).await, ":1\r\n");
    }
    a.write_all(&req(&["EVALSHA", &sha, "0", "spin"]))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let r = ask(&mut b, &["PING"]).await;
        if r.starts_with("-BUSY") {
            break r;
        }
        assert!(Instant::now() < deadline, "never answered BUSY: {r}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(busy.contains("SCRIPT KILL"), "{busy}");
    assert_eq!(ask(&mut b, &["SCRIPT", "KILL"]).await, "+OK\r\n");
    let killed = read(&mut a).await;
    assert!(
        killed.starts_with("-ERR") && killed.contains("killed"),
        "{killed}"
    );
    assert_eq!(ask(&mut a, &["PING"]).await, "+PONG\r\n");
    // The script runs again afterwards.
    assert_eq!(ask(&mut a, &["EVALSHA", &sha, "0", "go"]).await, ":1\r\n");
    shutdown.cancel();
}

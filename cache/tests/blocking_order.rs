//! Clients blocked on a key are served in the order they blocked, as Redis serves them, over
//! real sockets.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::req;

/// Reads until `n` bytes arrived (the tests know their replies' sizes).
async fn read_n(s: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .expect("a reply in time")
        .expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

async fn blocked_clients(s: &mut TcpStream) -> usize {
    s.write_all(&req(&["INFO", "clients"])).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until the server reports `n` blocked clients.
async fn wait_blocked(ctl: &mut TcpStream, n: usize) {
    for _ in 0..1000 {
        if blocked_clients(ctl).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("never saw {n} blocked clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_blocked_gets_the_first_element() {
    let (addr, shutdown) = common::start().await;
    let mut ctl = TcpStream::connect(addr).await.unwrap();
    let mut waiters = Vec::new();
    for i in 0..4 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&req(&["BLPOP", "k", "0"])).await.unwrap();
        wait_blocked(&mut ctl, i + 1).await;
        waiters.push(c);
    }
    // One push of four elements: each waiter gets the one its place in line says.
    ctl.write_all(&req(&["RPUSH", "k", "a", "b", "c", "d"]))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ctl, 4).await, ":4\r\n");
    for (c, want) in waiters.iter_mut().zip(["a", "b", "c", "d"]) {
        assert_eq!(
            read_n(c, 18).await,
            format!("*2\r\n$1\r\nk\r\n$1\r\n{want}\r\n")
        );
    }
    // Pushes one at a time: the first in line is served first again.
    let (mut w1, mut w2) = (waiters.remove(0), waiters.remove(0));
    w1.write_all(&req(&["BLPOP", "k", "0"])).await.unwrap();
    wait_blocked(&mut ctl, 1).await;
    w2.write_all(&req(&["BLPOP", "k", "0"])).await.unwrap();
    wait_blocked(&mut ctl, 2).await;
    ctl.write_all(&req(&["LPUSH", "k", "x"])).await.unwrap();
    assert_eq!(read_n(&mut ctl, 4).await, ":1\r\n");
    assert_eq!(read_n(&mut w1, 18).await, "*2\r\n$1\r\nk\r\n$1\r\nx\r\n");
    ctl.write_all(&req(&["LPUSH", "k", "y"])).await.unwrap();
    assert_eq!(read_n(&mut ctl, 4).await, ":1\r\n");
    assert_eq!(read_n(&mut w2, 18).await, "*2\r\n$1\r\nk\r\n$1\r\ny\r\n");

    // CLIENT UNBLOCK: as a timeout, or with an error; a client not blocked is not touched.
    w1.write_all(&req(&["CLIENT", "ID"])).await.unwrap();
    let id = read_n(&mut w1, 4).await;
    let id = id.trim().trim_start_matches(':').to_owned();
    assert_eq!(id.len(), 1, "a one-digit id in this test");
    ctl.write_all(&req(&["CLIENT", "UNBLOCK", &id]))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ctl, 4).await, ":0\r\n");
    w1.write_all(&req(&["BLPOP", "k", "0"])).await.unwrap();
    wait_blocked(&mut ctl, 1).await;
    ctl.write_all(&req(&["CLIENT", "UNBLOCK", &id, "ERROR"]))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ctl, 4).await, ":1\r\n");
    let e = "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n";
    assert_eq!(read_n(&mut w1, e.len()).await, e);
    w1.write_all(&req(&["BLPOP", "k", "0"])).await.unwrap();
    wait_blocked(&mut ctl, 1).await;
    ctl.write_all(&req(&["CLIENT", "UNBLOCK", &id, "TIMEOUT"]))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ctl, 4).await, ":1\r\n");
    assert_eq!(read_n(&mut w1, 5).await, "*-1\r\n");

    // A client that hangs up while blocked leaves the line at once: it is no longer counted,
    // and the next in line gets the element.
    w1.write_all(&req(&["BLPOP", "k", "0"])).await.unwrap();
    wait_blocked(&mut ctl, 1).await;
    w2.write_all(&req(&["BLPOP", "k", "0"])).await.unwrap();
    wait_blocked(&mut ctl, 2).await;
    drop(w1);
    wait_blocked(&mut ctl, 1).await;
    ctl.write_all(&req(&["LPUSH", "k", "z"])).await.unwrap();
    assert_eq!(read_n(&mut ctl, 4).await, ":1\r\n");
    assert_eq!(read_n(&mut w2, 18).await, "*2\r\n$1\r\nk\r\n$1\r\nz\r\n");
    wait_blocked(&mut ctl, 0).await;
    shutdown.cancel();
}

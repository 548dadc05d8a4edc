//! The cache through redis-py (the plain client in RESP2 and RESP3, pub/sub, a blocking queue,
//! and `RedisCluster` against the one-node cluster): runs `tests/cache/redis_py_session.py`
//! with the project's virtualenv against a running node.

use std::path::Path;
use std::process::Command;

use proxima::harness::TestNode;

#[test]
fn redis_py_sessions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("tools/venv/bin/python");
    assert!(
        python.exists(),
        "redis-py is missing: run scripts/install-deps (it creates tools/venv)"
    );
    let node = TestNode::start(|_| {}).expect("node starts");
    let addr: std::net::SocketAddr = node.addr("redis").unwrap().parse().unwrap();
    let out = Command::new(python)
        .arg(root.join("tests/cache/redis_py_session.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "redis-py session failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

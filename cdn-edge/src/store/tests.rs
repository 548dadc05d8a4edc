use super::*;

fn store(dir: &Path) -> Store {
    let mut c = StoreConfig::new(dir);
    c.hot_max_blob = 64 * 1024;
    Store::open(c).unwrap()
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn small_and_large_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let small = data(1000, 1);
    let large = data(3 * 1024 * 1024 + 17, 2);
    let hs = s.import_bytes(&small, None, true).unwrap();
    let hl = s
        .import_bytes(&large, Some(Hash::of(&large)), true)
        .unwrap();
    assert_eq!(hs, Hash::of(&small));
    assert_eq!(hl, Hash::of(&large));
    drop(s);
    let s = store(dir.path());
    assert!(s.contains(hs) && s.contains(hl));
    let b = s.get(hl).unwrap().unwrap();
    assert!(matches!(b, Blob::File(_)));
    assert_eq!(b.read_verified(0, u64::MAX).unwrap(), &large[..]);
    assert_eq!(
        b.read_verified(20_000, 70_000).unwrap(),
        &large[20_000..90_000]
    );
    assert_eq!(
        b.read_verified(large.len() as u64 - 5, 100).unwrap(),
        &large[large.len() - 5..]
    );
    assert_eq!(
        s.get(hs).unwrap().unwrap().read_verified(0, 9999).unwrap(),
        &small[..]
    );
    assert!(s.get(Hash::of(b"absent")).unwrap().is_none());
    assert_eq!(s.missing(&[hs, Hash::of(b"x")]), vec![Hash::of(b"x")]);
}

#[test]
fn wrong_expected_hash_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let large = data(100_000, 3);
    let err = s
        .import_bytes(&large, Some(Hash::of(b"other")), true)
        .unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }));
    assert_eq!(s.stats(), (0, 0));
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn altered_bytes_are_flagged_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let large = data(2 * 1024 * 1024, 4);
    let h = s.import_bytes(&large, None, true).unwrap();
    let path = s.blob_file_path(h).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[1_500_000] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let b = s.get(h).unwrap().unwrap();
    // The first part still verifies; the altered chunk group does not.
    assert_eq!(b.read_verified(0, 1000).unwrap(), &large[..1000]);
    assert!(matches!(
        b.read_verified(1_490_000, 20_000),
        Err(ReadError::Corrupt(_))
    ));
    assert!(!s.contains(h));
    assert!(!path.exists());
    drop((b, s));
    assert!(!store(dir.path()).contains(h));
}

#[test]
fn verify_all_drops_altered_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let good = s.import_bytes(&data(200_000, 5), None, true).unwrap();
    let bad = s.import_bytes(&data(200_000, 6), None, true).unwrap();
    let path = s.blob_file_path(bad).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    let report = s.verify_all().unwrap();
    assert_eq!(report.ok, 1);
    assert_eq!(report.dropped, vec![bad]);
    assert!(s.contains(good));
}

#[test]
fn leftovers_of_interrupted_writes_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let h = s.import_bytes(&data(50_000, 7), None, true).unwrap();
    let shard = s.shard_dir(h);
    drop(s);
    // A file renamed into place whose index row was never committed.
    let orphan = shard.join(format!("{}.data", Hash::of(b"orphan")));
    fs::write(&orphan, b"partial").unwrap();
    fs::write(dir.path().join("tmp").join("x.part"), b"partial").unwrap();
    let s = store(dir.path());
    assert!(!orphan.exists());
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert!(s.contains(h));
}

#[test]
fn unpinned_blobs_are_evicted_under_the_budget_pinned_never() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = StoreConfig::new(dir.path());
    c.disk_budget = 250_000;
    let s = Store::open(c).unwrap();
    let pinned = s.import_bytes(&data(200_000, 8), None, true).unwrap();
    let a = s.import_bytes(&data(40_000, 9), None, false).unwrap();
    // Over budget: `a` must go, the pinned blob stays even though it alone nearly fills it.
    let b = s.import_bytes(&data(40_000, 10), None, false).unwrap();
    assert!(s.contains(pinned));
    assert!(!s.contains(a));
    assert!(s.contains(b));
    // Pinning protects it.
    assert!(s.pin(b).unwrap());
    let c2 = s.import_bytes(&data(100_000, 11), None, false).unwrap();
    assert!(s.contains(b) && s.contains(pinned));
    assert!(!s.contains(c2));
}

#[test]
fn any_range_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let size = 5 * 16384 * 3 + 1234;
    let large = data(size, 12);
    let h = s.import_bytes(&large, None, true).unwrap();
    let b = s.get(h).unwrap().unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = x % (size as u64 + 10);
        let len = (x >> 20) % 70_000;
        let got = b.read_verified(off, len).unwrap();
        let s0 = (off as usize).min(size);
        let e0 = (off + len).min(size as u64) as usize;
        assert_eq!(got, &large[s0..e0], "offset {off} len {len}");
    }
}

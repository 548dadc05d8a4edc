//! The scenarios of `scenarios/*.toml` at their reduced size (a few nodes on the emulated WAN,
//! each under a minute), with their thresholds asserted. The full size runs with
//! `cargo run --release --example network -- SCENARIO` (see BENCHMARKS.md).

#[path = "../examples/network/mod.rs"]
mod scenario;

/// One scenario at a time: each starts its own network, and two at once on two cores would
/// measure each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(name: &str) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let spec = scenario::Spec::load(name).expect("scenario file");
    let report = scenario::run(&spec, scenario::Size::Reduced, None).expect("the scenario runs");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scenarios")
        .join(name);
    report.write(&dir).expect("write the report");
    eprintln!("{}", report.markdown());
    let failed: Vec<String> = report
        .failed()
        .iter()
        .map(|c| format!("{} = {:?} (want {} {})", c.metric, c.value, c.op, c.limit))
        .collect();
    assert!(
        failed.is_empty(),
        "{name}: thresholds failed: {failed:?}\n(report in {})",
        dir.display()
    );
}

#[test]
fn resolve_and_browse() {
    run("resolve-and-browse");
}

#[test]
fn cache_near() {
    run("cache-near");
}

#[test]
fn churn() {
    run("churn");
}

#[test]
fn hostile_peer() {
    run("hostile-peer");
}

#[test]
fn rogue_member() {
    run("rogue-member");
}

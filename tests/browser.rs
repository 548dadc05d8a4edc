//! The dashboard and a published site in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `scripts/install-deps`) loads the admin page of a node in a 3-node
//! cluster while DNS, HTTP and cache traffic runs, and the test reads what a person would see
//! from the rendered DOM: three points on the map, non-zero rates, the published site listed
//! with a link that opens it. Screenshots (laptop and phone widths) go to `target/browser/`.
//!
//! A missing `chromium` fails the test with the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::cli;
use anyhow::{Context, Result, bail};
use proxima::harness::{Cluster, TestNode, dig, http_get, test_options, wait_for};

/// Where screenshots go for review (`target/browser/`, next to the build).
fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&dir).expect("cannot create target/browser");
    dir
}

/// Runs headless Chromium with a profile of its own (tests run in parallel) and a deadline;
/// returns stdout. `--virtual-time-budget` lets the page's timers run that long (fetches pause
/// virtual time, so polls complete) before the DOM is dumped or the screenshot taken.
fn chromium(args: &[&str]) -> Result<String> {
    let path = which::which("chromium").context(
        "chromium is not installed; run scripts/install-deps test (Debian package `chromium`)",
    )?;
    let profile = tempfile::tempdir()?;
    let mut child = Command::new(path)
        .args([
            "--headless",
            // Root (CI) cannot use Chromium's sandbox; the pages are the test's own.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start chromium")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait()? {
            let out = reader
                .join()
                .map_err(|_| anyhow::anyhow!("reader panicked"))??;
            if !status.success() {
                bail!("chromium {args:?} exited with {status}");
            }
            return Ok(out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("chromium {args:?} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dump_dom(url: &str, extra: &[&str]) -> Result<String> {
    let mut args = vec!["--virtual-time-budget=8000", "--dump-dom"];
    args.extend_from_slice(extra);
    args.push(url);
    chromium(&args)
}

fn screenshot(url: &str, file: &Path, width: u32, height: u32, extra: &[&str]) -> Result<()> {
    let shot = format!("--screenshot={}", file.display());
    let size = format!("--window-size={width},{height}");
    let mut args = vec!["--virtual-time-budget=8000", shot.as_str(), size.as_str()];
    args.extend_from_slice(extra);
    args.push(url);
    chromium(&args)?;
    let len = std::fs::metadata(file)
        .with_context(|| format!("no screenshot at {}", file.display()))?
        .len();
    anyhow::ensure!(
        len > 10_000,
        "screenshot {} is nearly empty",
        file.display()
    );
    Ok(())
}

/// A small site: a page that uses a stylesheet and an image, and checks in the browser that
/// both arrived and applied (the result goes in `data-*` attributes of `<body>`).
fn write_site(dir: &Path) {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Browser site</title>
<link rel="stylesheet" href="/style.css"></head>
<body><h1 id="title">Served through Proxima</h1><img id="logo" src="/img/logo.svg" alt="logo">
<script>
addEventListener('load', () => {
  const img = document.getElementById('logo');
  document.body.dataset.css = getComputedStyle(document.getElementById('title')).color;
  document.body.dataset.img = img.complete ? String(img.naturalWidth) : 'incomplete';
});
</script></body></html>"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("style.css"),
        "h1 { color: rgb(12, 34, 56); font-family: sans-serif; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("img/logo.svg"),
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><rect width="120" height="40" fill="#4a78c2"/></svg>"##,
    )
    .unwrap();
}

/// Registers `site` on `node` and publishes the test site there, with the real CLI.
fn publish_site(node: &TestNode, site: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path());
    let admin = node.admin_url();
    cli(&["name", "register", site, "--node", &admin]).unwrap();
    let path = dir.path().to_str().unwrap();
    cli(&["publish", path, "--name", site, "--node", &admin]).unwrap();
}

/// DNS, HTTP and cache traffic against `node` until `stop`, each on a thread of its own so
/// that one slow client (a `dig` process on a loaded machine) does not stall the others;
/// bounded in count and time.
fn traffic(node: &TestNode, site: &str, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let dns: std::net::SocketAddr = node.addr("dns").unwrap().parse().unwrap();
    let http = node.addr("http").unwrap();
    let redis = node.addr("redis").unwrap();
    let site = site.to_owned();
    let running = move |stop: &AtomicBool, started: Instant| {
        !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(240)
    };
    let mut threads = Vec::new();
    let (s, name) = (stop.clone(), site.clone());
    threads.push(std::thread::spawn(move || {
        let started = Instant::now();
        for _ in 0..5_000u32 {
            if !running(&s, started) {
                break;
            }
            // Names of the ledger (authoritative) and a miss, several queries per `dig`.
            let _ = dig(dns, &[&name, "A", "nothere.proxima", "A", &name, "TXT"]);
            std::thread::sleep(Duration::from_millis(50));
        }
    }));
    let (s, name) = (stop.clone(), site);
    threads.push(std::thread::spawn(move || {
        let started = Instant::now();
        for _ in 0..5_000u32 {
            if !running(&s, started) {
                break;
            }
            let _ = http_get(&format!("http://{http}/blob/{}", "0".repeat(64)));
            let _ = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "--max-time", "5", "--resolve"])
                .arg(format!("{name}:{}:{}", port(&http), ip(&http)))
                .arg(format!("http://{name}:{}/", port(&http)))
                .status();
            std::thread::sleep(Duration::from_millis(50));
        }
    }));
    threads.push(std::thread::spawn(move || {
        let client = redis::cluster::ClusterClient::new(vec![format!("redis://{redis}/")]).unwrap();
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let started = Instant::now();
        for i in 0..20_000u32 {
            if !running(&stop, started) {
                break;
            }
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("browser:{i}"))
                .arg(i)
                .query(&mut conn);
            let _: redis::RedisResult<Option<String>> = redis::cmd("GET")
                .arg(format!("browser:{}", i / 2))
                .query(&mut conn);
            std::thread::sleep(Duration::from_millis(20));
        }
    }));
    threads
}

fn port(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(_, p)| p).unwrap_or(addr)
}

fn ip(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr)
}

fn dashboard_json(node: &TestNode) -> Option<serde_json::Value> {
    let text = http_get(&format!("{}/api/dashboard", node.admin_url())).ok()?;
    serde_json::from_str(&text).ok()
}

/// The highest point of a series in `/api/dashboard`'s window.
fn peak(doc: &serde_json::Value, key: &str) -> f64 {
    doc["points"]["series"][key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_f64)
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0)
}

/// The highest point of series `key` in the window the page charts (its `data-peak`), from
/// the dumped DOM.
fn shown_peak(dom: &str, key: &str) -> Option<f64> {
    let at = dom.find(&format!("data-series=\"{key}\""))?;
    let rest = &dom[at..];
    let v = rest.split("data-peak=\"").nth(1)?.split('"').next()?;
    v.parse().ok()
}

#[test]
fn the_dashboard_shows_a_live_cluster_and_opens_its_sites() {
    which::which("chromium").expect(
        "chromium is not installed; run scripts/install-deps test (Debian package `chromium`)",
    );
    let cluster =
        Cluster::start_meshed(3, |_, _| {}, |_| test_options(), Duration::from_secs(60)).unwrap();
    let (publisher, viewer) = (cluster.node(0), cluster.node(1));
    let site = "browser.proxima";
    publish_site(publisher, site);

    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(viewer, site, stop.clone());

    // What the page will show must be there first: the site's zone reached the viewer, three
    // members, and every rate the test reads has moved.
    let ready = wait_for(Duration::from_secs(90), || {
        dashboard_json(viewer).is_some_and(|d| {
            d["members"].as_array().map_or(0, Vec::len) == 3
                && d["names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|n| n["name"] == site && n["site"].is_string()))
                && peak(&d, "dns.authoritative") > 0.0
                && peak(&d, "http_requests") > 0.0
                && peak(&d, "cache_ops") > 0.0
        })
    });
    if let Err(e) = ready {
        stop.store(true, Ordering::Relaxed);
        panic!(
            "the viewer's dashboard data never showed the cluster under load: {e}\n{}",
            serde_json::to_string_pretty(&dashboard_json(viewer)).unwrap_or_default()
        );
    }

    let url = viewer.admin_url();
    let dom = dump_dom(&url, &[]).unwrap();
    let shots = shots_dir();
    screenshot(&url, &shots.join("dashboard-laptop.png"), 1366, 1600, &[]).unwrap();
    screenshot(&url, &shots.join("dashboard-phone.png"), 390, 3200, &[]).unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }

    // The map: one point per member, this node marked.
    let points = dom.matches("<circle class=\"member ").count();
    assert_eq!(points, 3, "the map shows {points} members, not 3:\n{dom}");
    assert_eq!(dom.matches("class=\"self-ring\"").count(), 1, "{dom}");
    // The charts show the traffic: each rate rose above zero in the window.
    for key in ["dns.authoritative", "http_requests", "cache_ops"] {
        let v = shown_peak(&dom, key).unwrap_or(0.0);
        assert!(v > 0.0, "the page charts {key} at most {v}:\n{dom}");
    }
    // The cache view and the event log have real content.
    assert!(dom.contains("yes: writes accepted"), "{dom}");
    assert!(dom.contains("data-kind=\"join\""), "no join event:\n{dom}");
    // The site is listed with a link through this node's gateway, and the link opens it.
    let http = viewer.addr("http").unwrap();
    let href = format!("http://{site}.localhost:{}/", port(&http));
    assert!(
        dom.contains(&format!("data-name=\"{site}\" href=\"{href}\"")),
        "no link to {href}:\n{dom}"
    );
    let page = dump_dom(&href, &[]).unwrap();
    assert!(page.contains("Served through Proxima"), "{page}");
    assert!(
        page.contains("data-css=\"rgb(12, 34, 56)\""),
        "the site's stylesheet did not apply:\n{page}"
    );
}

#[test]
fn a_site_opens_by_name_with_its_stylesheet_and_image() {
    which::which("chromium").expect(
        "chromium is not installed; run scripts/install-deps test (Debian package `chromium`)",
    );
    let node = TestNode::start(|_| {}).unwrap();
    let site = "pages.proxima";
    publish_site(&node, site);
    let admin = node.admin_url();
    let http = node.addr("http").unwrap();
    // The browser asks for the site by its name; the name resolves to the node's gateway, as
    // the node's DNS would answer it.
    let rules = format!("--host-resolver-rules=MAP {site} {}", ip(&http));
    let url = format!("http://{site}:{}/", port(&http));
    let page = dump_dom(&url, &[&rules]).unwrap();
    assert!(page.contains("Served through Proxima"), "{page}");
    assert!(
        page.contains("data-css=\"rgb(12, 34, 56)\""),
        "the stylesheet did not load or apply:\n{page}"
    );
    assert!(
        page.contains("data-img=\"120\""),
        "the image did not load:\n{page}"
    );
    screenshot(
        &url,
        &shots_dir().join("site-by-name.png"),
        800,
        600,
        &[&rules],
    )
    .unwrap();
    // The gateway served the three files.
    let metrics = http_get(&format!("{admin}/metrics")).unwrap();
    let ok = metrics
        .lines()
        .find(|l| l.starts_with("proxima_cdn_gateway_responses_total{code=\"200\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(ok >= 3.0, "the gateway counted {ok} responses 200");
}

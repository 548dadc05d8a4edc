//! The sites a scenario publishes: an index page that links a stylesheet, a script and an image,
//! with seeded random content so every site's files are distinct blobs. Published from a chosen
//! node through the same admin API `proxima name register` and `proxima publish` use.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cdn_edge::Hash;
use cdn_edge::publish::SiteOptions;
use proxima::cli::name::{NameCommand, NodeUrl, run_name};
use proxima::cli::publish::{PublishArgs, publish};
use rand::{Rng, SeedableRng};

/// A published site.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// Its name, e.g. `site03.proxima`.
    pub name: String,
    /// The node it was published from.
    pub publisher: usize,
    /// Path -> content hash.
    pub files: Vec<(String, Hash)>,
    /// The manifest's hash (the site record).
    pub manifest: Option<Hash>,
    contents: Vec<(String, Vec<u8>)>,
}

const ASSETS: [(&str, usize); 3] = [
    ("style.css", 6_000),
    ("app.js", 24_000),
    ("hero.jpg", 96_000),
];

impl Site {
    /// Site number `idx` of a run with `seed`, to be published from node `publisher`.
    pub(crate) fn generate(seed: u64, idx: usize, publisher: usize) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((idx as u64 + 1) * 0x9e37_79b9));
        let name = format!("site{idx:02}.proxima");
        let mut contents = Vec::new();
        let mut links = String::new();
        for (path, size) in ASSETS {
            let mut b = vec![0u8; size];
            rng.fill(&mut b[..]);
            contents.push((path.to_owned(), b));
            links.push_str(&format!("<link rel=\"preload\" href=\"/{path}\">\n"));
        }
        let filler: String = (0..3000)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect();
        let index = format!(
            "<!doctype html><html><head><title>{name}</title>\n{links}</head><body><h1>{name}</h1><p>{filler}</p></body></html>\n"
        );
        contents.insert(0, ("index.html".to_owned(), index.into_bytes()));
        let files = contents
            .iter()
            .map(|(p, b)| (p.clone(), Hash::of(b)))
            .collect();
        Self {
            name,
            publisher,
            files,
            manifest: None,
            contents,
        }
    }

    /// The files a page view fetches after the index.
    pub(crate) fn assets(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| *p != "index.html")
    }

    /// Whether `body` is what was published at `path`.
    pub(crate) fn matches(&self, path: &str, body: &[u8]) -> bool {
        let path = path.trim_start_matches('/');
        self.files
            .iter()
            .any(|(p, h)| p == path && *h == Hash::of(body))
    }

    /// Every content hash of the site (files and manifest).
    pub(crate) fn hashes(&self) -> Vec<Hash> {
        self.files
            .iter()
            .map(|(_, h)| *h)
            .chain(self.manifest)
            .collect()
    }

    /// Registers the name at `admin` and publishes the site there.
    pub(crate) async fn publish(&mut self, admin: &str) -> Result<()> {
        let dir = tempfile::Builder::new().prefix("proxima-site-").tempdir()?;
        for (p, b) in &self.contents {
            std::fs::write(dir.path().join(p), b)?;
        }
        run_name(NameCommand::Register {
            name: self.name.clone(),
            years: 1,
            target: NodeUrl {
                node: admin.to_owned(),
            },
        })
        .await
        .with_context(|| format!("register {}", self.name))?;
        let report = publish(PublishArgs {
            dir: dir.path().to_path_buf(),
            name: self.name.clone(),
            dry_run: false,
            node: admin.to_owned(),
            site: SiteOptions::default(),
            threads: 1,
        })
        .await
        .with_context(|| format!("publish {}", self.name))?;
        self.manifest = Some(report.manifest);
        Ok(())
    }
}

/// Publishes `count` sites, site `s` from node `s * nodes / count` (spread over the network),
/// with `admin(i)` giving node i's admin URL. Returns the sites.
pub(crate) async fn publish_all(
    seed: u64,
    count: usize,
    nodes: usize,
    admin: impl Fn(usize) -> String,
) -> Result<Vec<Site>> {
    let mut sites = Vec::with_capacity(count);
    for s in 0..count {
        let publisher = (s * nodes / count.max(1)) % nodes;
        let mut site = Site::generate(seed, s, publisher);
        tokio::time::timeout(Duration::from_secs(120), site.publish(&admin(publisher)))
            .await
            .with_context(|| format!("publishing {} timed out", site.name))??;
        sites.push(site);
    }
    Ok(sites)
}

/// Waits until `check()` holds, polling every 100 ms, up to `deadline`; returns the time taken.
pub(crate) async fn until<F, Fut>(deadline: Duration, mut check: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Ok(started.elapsed());
        }
        if started.elapsed() > deadline {
            anyhow::bail!("condition not met within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! `proxima publish` and `proxima get`: the publisher and fetcher sides of the CDN, talking to a
//! node's admin API (see `api::blobs` for the routes).
//!
//! Publishing: scan the directory, hash every file in parallel (progress bar on a terminal),
//! build the manifest, ask the node which blobs it lacks, upload only those (each verified by
//! the node on receipt), pin the rest, store the manifest, then set the name's site record to
//! the manifest's hash through the naming service (which signs and publishes the new zone).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cdn_edge::Hash;
use cdn_edge::manifest::{Manifest, Resolution};
use cdn_edge::publish::{self, HashedFile, SiteOptions};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

/// Uploads in flight at once.
const PARALLEL_UPLOADS: usize = 4;
/// Hashes per `missing`/`pin` request.
const BATCH: usize = 10_000;

/// Options of `proxima publish`.
#[derive(Debug, Clone)]
pub struct PublishArgs {
    /// The site directory.
    pub dir: PathBuf,
    /// The name whose site record to set.
    pub name: String,
    /// Only list what would change.
    pub dry_run: bool,
    /// Admin URL of the node.
    pub node: String,
    /// Manifest settings.
    pub site: SiteOptions,
    /// Hashing threads (0: one per core).
    pub threads: usize,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// Files in the site.
    pub files: usize,
    /// Blobs uploaded (new to the node), including the manifest.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// The manifest's hash.
    pub manifest: Hash,
    /// The zone's response to the site update (JSON), if not a dry run.
    pub zone: Option<serde_json::Value>,
    /// Paths whose blobs the node lacked.
    pub changed: Vec<String>,
}

fn base(node: &str) -> String {
    let b = node.trim_end_matches('/');
    if b.contains("://") {
        b.to_owned()
    } else {
        format!("http://{b}")
    }
}

/// A client of the node's admin API at `base`, sending the admin token (see
/// [`crate::client::admin_http`]).
fn http(base: &str) -> Result<reqwest::Client> {
    // No overall timeout: uploads of large files take as long as they take.
    crate::client::admin_http(
        base,
        reqwest::Client::builder().connect_timeout(Duration::from_secs(10)),
    )
}

#[derive(Debug, Deserialize)]
struct HashList {
    hashes: Vec<String>,
}

async fn error_of(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(text);
    anyhow::anyhow!("{status}: {msg}")
}

/// Hashes the site, then uploads and publishes it (see the module docs).
pub async fn publish(args: PublishArgs) -> Result<PublishReport> {
    let dir = args.dir.clone();
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let threads = args.threads;
    let site = args.site.clone();
    let (hashed, manifest) = tokio::task::spawn_blocking(move || hash_site(&dir, threads, &site))
        .await
        .context("hashing task failed")??;
    let manifest_bytes = manifest.encode()?;
    let manifest_hash = Hash::of(&manifest_bytes);
    let base = base(&args.node);
    let client = http(&base)?;

    // What the node lacks (files and manifest).
    let mut all: Vec<Hash> = hashed.iter().map(|f| f.hash).collect();
    all.push(manifest_hash);
    all.sort();
    all.dedup();
    let mut missing = std::collections::HashSet::new();
    for batch in all.chunks(BATCH) {
        let body =
            serde_json::json!({ "hashes": batch.iter().map(Hash::to_hex).collect::<Vec<_>>() });
        let resp = client
            .post(format!("{base}/api/blobs/missing"))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {base}"))?;
        if !resp.status().is_success() {
            return Err(error_of(resp)
                .await
                .context("asking the node for missing blobs"));
        }
        let list: HashList = resp.json().await?;
        for h in list.hashes {
            missing.insert(h.parse::<Hash>().context("node answered a bad hash")?);
        }
    }
    // One upload per distinct missing blob (identical files share one).
    let mut to_upload: Vec<&HashedFile> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut changed = Vec::new();
    for f in &hashed {
        if missing.contains(&f.hash) {
            changed.push(f.file.path.clone());
            if seen.insert(f.hash) {
                to_upload.push(f);
            }
        }
    }
    if args.dry_run {
        return Ok(PublishReport {
            files: hashed.len(),
            uploaded: 0,
            uploaded_bytes: 0,
            manifest: manifest_hash,
            zone: None,
            changed,
        });
    }

    let total: u64 = to_upload.iter().map(|f| f.file.size).sum();
    let bar = progress(total, "uploading");
    let uploads = futures::stream::iter(to_upload.iter().map(|f| {
        let client = client.clone();
        let base = base.clone();
        let bar = bar.clone();
        async move {
            upload_file(&client, &base, &f.file.disk, f.hash, f.file.size).await?;
            bar.inc(f.file.size);
            Ok::<_, anyhow::Error>(f.file.size)
        }
    }))
    .buffer_unordered(PARALLEL_UPLOADS)
    .try_collect::<Vec<u64>>()
    .await;
    bar.finish_and_clear();
    let uploaded_bytes: u64 = uploads?.iter().sum();
    let mut uploaded = to_upload.len();

    // Pin what the node already had: publishing makes every blob of the site permanent here.
    let present: Vec<Hash> = all
        .iter()
        .filter(|h| !missing.contains(h))
        .copied()
        .collect();
    for batch in present.chunks(BATCH) {
        let body =
            serde_json::json!({ "hashes": batch.iter().map(Hash::to_hex).collect::<Vec<_>>() });
        let resp = client
            .post(format!("{base}/api/blobs/pin"))
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await.context("pinning blobs"));
        }
    }
    if missing.contains(&manifest_hash) {
        let resp = client
            .put(format!("{base}/api/blobs/{manifest_hash}?pin=true"))
            .body(manifest_bytes)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await.context("storing the manifest"));
        }
        uploaded += 1;
    }

    // The naming service signs and publishes the zone with the new site record.
    let resp = client
        .post(format!("{base}/api/names/{}/site", args.name))
        .json(&serde_json::json!({ "manifest": manifest_hash.to_hex() }))
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(error_of(resp)
            .await
            .context(format!("setting the site record of {}", args.name)));
    }
    let zone: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    Ok(PublishReport {
        files: hashed.len(),
        uploaded,
        uploaded_bytes,
        manifest: manifest_hash,
        zone: Some(zone),
        changed,
    })
}

fn progress(total: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

/// Scans and hashes the site on a rayon pool of `threads` (0: one per core).
pub fn hash_site(
    dir: &Path,
    threads: usize,
    site: &SiteOptions,
) -> Result<(Vec<HashedFile>, Manifest)> {
    let (files, redirects) = publish::scan(dir)?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    let bar = progress(total, "hashing");
    let pool = rayon_pool(threads)?;
    let hashed = pool.install(|| publish::hash_files(files, &|n| bar.inc(n)))?;
    bar.finish_and_clear();
    let redirects = match redirects {
        Some(p) => {
            Some(std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let manifest = publish::build_manifest(&hashed, redirects.as_deref(), site)?;
    Ok((hashed, manifest))
}

fn rayon_pool(threads: usize) -> Result<cdn_edge::publish::ThreadPool> {
    cdn_edge::publish::thread_pool(threads).context("cannot start hashing threads")
}

async fn upload_file(
    client: &reqwest::Client,
    base: &str,
    path: &Path,
    hash: Hash,
    size: u64,
) -> Result<()> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let stream = futures::stream::try_unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::with_capacity(256 * 1024);
        let n = (&mut file).take(256 * 1024).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>((n > 0).then(|| (axum::body::Bytes::from(buf), file)))
    });
    let resp = client
        .put(format!("{base}/api/blobs/{hash}?pin=true"))
        .header("Content-Length", size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .with_context(|| format!("uploading {}", path.display()))?;
    if !resp.status().is_success() {
        return Err(error_of(resp)
            .await
            .context(format!("uploading {}", path.display())));
    }
    Ok(())
}

/// `proxima get`: `target` is a hash or `NAME/PATH`. Fetches through the node's admin API,
/// verifies the bytes against the hash locally, and writes `out` (atomically) or stdout.
pub async fn get(node: &str, target: &str, out: Option<&Path>) -> Result<Hash> {
    let base = base(node);
    let client = http(&base)?;
    let hash = if let Ok(h) = target.parse::<Hash>() {
        h
    } else {
        let (name, path) = match target.split_once('/') {
            Some((n, p)) => (n, format!("/{p}")),
            None => (target, "/".to_owned()),
        };
        let resp = client
            .get(format!("{base}/api/sites/{name}"))
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {base}"))?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await.context(format!("resolving {name}")));
        }
        let v: serde_json::Value = resp.json().await?;
        let manifest_hash: Hash = v
            .get("manifest")
            .and_then(|m| m.as_str())
            .and_then(|m| m.parse().ok())
            .context("the node answered without a manifest hash")?;
        let bytes = fetch_bytes(&client, &base, manifest_hash).await?;
        let manifest = Manifest::decode(&bytes).context("the site's manifest does not decode")?;
        let path = cdn_edge::gateway::request::parse_path(&path)
            .map_err(|e| anyhow::anyhow!("bad path {path:?}: {e}"))?;
        match manifest.resolve(&path) {
            Resolution::File {
                entry, status: 200, ..
            } => entry.hash,
            Resolution::Redirect { location, status } => {
                bail!("{target} redirects ({status}) to {location}")
            }
            _ => bail!("{target}: no such file in the site"),
        }
    };
    let resp = client
        .get(format!("{base}/api/blobs/{hash}"))
        .send()
        .await
        .with_context(|| format!("cannot reach the node at {base}"))?;
    if !resp.status().is_success() {
        return Err(error_of(resp).await.context(format!("fetching {hash}")));
    }
    let mut hasher = cdn_edge::hash::Hasher::new();
    let mut stream = resp.bytes_stream();
    match out {
        Some(out) => {
            let dir = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            let mut file = tokio::fs::File::from_std(tmp.reopen()?);
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            let got = hasher.finalize();
            if got != hash {
                bail!("verification failed: content hashes to {got}, expected {hash}");
            }
            tmp.persist(out)
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        None => {
            // Stdout: buffer, verify, then write, so nothing unverified reaches the reader.
            let mut buf = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                buf.extend_from_slice(&chunk);
            }
            let got = hasher.finalize();
            if got != hash {
                bail!("verification failed: content hashes to {got}, expected {hash}");
            }
            use std::io::Write;
            std::io::stdout().write_all(&buf)?;
        }
    }
    Ok(hash)
}

async fn fetch_bytes(client: &reqwest::Client, base: &str, hash: Hash) -> Result<Vec<u8>> {
    let resp = client
        .get(format!("{base}/api/blobs/{hash}"))
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(error_of(resp).await.context(format!("fetching {hash}")));
    }
    let bytes = resp.bytes().await?;
    if Hash::of(&bytes) != hash {
        bail!("verification failed for {hash}");
    }
    Ok(bytes.to_vec())
}

/// `proxima publish DIR --name NAME`.
#[derive(clap::Args, Debug, Clone)]
pub struct PublishCmd {
    /// The site directory.
    pub dir: PathBuf,
    /// The name to publish at (its site record is set to the new manifest).
    #[arg(long)]
    pub name: String,
    /// List what would change without uploading or publishing.
    #[arg(long)]
    pub dry_run: bool,
    /// Index file of directories.
    #[arg(long, default_value = "index.html")]
    pub index: String,
    /// Page served with status 404 (default: 404.html when the site has one).
    #[arg(long)]
    pub not_found: Option<String>,
    /// Serve this file for unknown paths, as single-page apps need (e.g. index.html).
    #[arg(long)]
    pub spa: Option<String>,
    /// Hashing threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Admin URL of the node.
    #[arg(long, env = "PROXIMA_NODE", default_value = crate::client::DEFAULT_NODE_URL)]
    pub node: String,
}

/// `proxima get HASH|NAME/PATH -o FILE`.
#[derive(clap::Args, Debug, Clone)]
pub struct GetCmd {
    /// A blob hash, or NAME/PATH of a published site.
    pub target: String,
    /// Output file (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Admin URL of the node.
    #[arg(long, env = "PROXIMA_NODE", default_value = crate::client::DEFAULT_NODE_URL)]
    pub node: String,
}

/// Runs `proxima publish`; returns what to print.
pub async fn run_publish(cmd: PublishCmd) -> Result<String> {
    let args = PublishArgs {
        dir: cmd.dir,
        name: cmd.name.clone(),
        dry_run: cmd.dry_run,
        node: cmd.node,
        site: SiteOptions {
            index: cmd.index,
            not_found: cmd.not_found,
            spa_fallback: cmd.spa,
        },
        threads: cmd.threads,
    };
    let r = publish(args).await?;
    let mut out = String::new();
    use std::fmt::Write;
    if cmd.dry_run {
        let _ = writeln!(
            out,
            "dry run: {} files, {} to upload:",
            r.files,
            r.changed.len()
        );
        for p in &r.changed {
            let _ = writeln!(out, "  {p}");
        }
        let _ = writeln!(out, "manifest {}", r.manifest);
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "published {} at {}: {} files, {} new blobs ({} bytes) uploaded",
        r.manifest, cmd.name, r.files, r.uploaded, r.uploaded_bytes
    );
    if let Some(seq) = r.zone.as_ref().and_then(|z| z.get("sequence")) {
        let _ = writeln!(out, "zone sequence {seq}");
    }
    Ok(out)
}

/// Runs `proxima get`; returns what to print (nothing when writing to stdout).
pub async fn run_get(cmd: GetCmd) -> Result<String> {
    let hash = get(&cmd.node, &cmd.target, cmd.output.as_deref()).await?;
    Ok(match &cmd.output {
        Some(p) => format!("{} verified -> {}\n", hash, p.display()),
        None => String::new(),
    })
}

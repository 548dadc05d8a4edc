//! The publisher's local half: scan a site directory, hash its files in parallel, read its
//! `_redirects`, and build the manifest. Uploading is the caller's (the CLI talks to a node).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::Hash;
use crate::manifest::{FileEntry, Manifest, ManifestError, parse_redirects, validate_path};

/// Files at least this large are hashed with several threads each (BLAKE3's tree hashing).
const PARALLEL_FILE: u64 = 1 << 20;
/// The Netlify-style redirects file: read into the manifest, not published as a file.
pub const REDIRECTS_FILE: &str = "_redirects";

/// A file found in the site directory.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Path in the site (`css/a.css`).
    pub path: String,
    /// Where it is on disk.
    pub disk: PathBuf,
    /// Its size.
    pub size: u64,
}

/// A hashed file.
#[derive(Debug, Clone)]
pub struct HashedFile {
    /// The file.
    pub file: LocalFile,
    /// Its BLAKE3 hash.
    pub hash: Hash,
    /// Its `Content-Type`.
    pub content_type: String,
}

/// Publishing options that go into the manifest.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// Index file of directories.
    pub index: String,
    /// 404 page; default `404.html` when the site has one.
    pub not_found: Option<String>,
    /// Serve this file for unknown paths (single-page apps).
    pub spa_fallback: Option<String>,
}

impl Default for SiteOptions {
    fn default() -> Self {
        Self {
            index: "index.html".into(),
            not_found: None,
            spa_fallback: None,
        }
    }
}

/// What went wrong while preparing a site.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Reading the directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file name that cannot be a site path.
    #[error("{0}: not a valid site path (must be UTF-8, no backslash)")]
    BadName(PathBuf),
    /// The manifest would be invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A setting names a file the site does not have.
    #[error("{0} is not a file of the site")]
    MissingFile(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Lists the files of a site directory, sorted by path. Hidden files and directories (a name
/// starting with `.`, except `.well-known`) and symbolic links are skipped: publishing must not
/// leak `.git` or follow a link out of the directory.
pub fn scan(dir: &Path) -> Result<(Vec<LocalFile>, Option<PathBuf>), PublishError> {
    let mut files = Vec::new();
    let mut redirects = None;
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || {
                let name = e.file_name().to_string_lossy();
                !name.starts_with('.') || name == ".well-known"
            }
        });
    for entry in walker {
        let entry = entry.map_err(|e| PublishError::Io {
            path: e
                .path()
                .map(Path::to_owned)
                .unwrap_or_else(|| dir.to_owned()),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("walk failed")),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .map_err(|_| PublishError::BadName(entry.path().to_owned()))?;
        let mut parts = Vec::new();
        for c in rel.components() {
            let s = c
                .as_os_str()
                .to_str()
                .ok_or_else(|| PublishError::BadName(entry.path().to_owned()))?;
            parts.push(s);
        }
        let path = parts.join("/");
        if path == REDIRECTS_FILE {
            redirects = Some(entry.path().to_owned());
            continue;
        }
        validate_path(&path).map_err(|_| PublishError::BadName(entry.path().to_owned()))?;
        let size = entry.metadata().map_err(|e| PublishError::Io {
            path: entry.path().to_owned(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("stat failed")),
        })?;
        files.push(LocalFile {
            path,
            disk: entry.path().to_owned(),
            size: size.len(),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, redirects))
}

/// The BLAKE3 hash of a file: memory-mapped, and tree-hashed on the current rayon pool when
/// large (as `b3sum` does).
pub fn hash_file(path: &Path) -> Result<Hash, PublishError> {
    let mut hasher = blake3::Hasher::new();
    let size = std::fs::metadata(path).map_err(io_err(path))?.len();
    if size >= PARALLEL_FILE {
        hasher.update_mmap_rayon(path).map_err(io_err(path))?;
    } else {
        hasher.update_mmap(path).map_err(io_err(path))?;
    }
    Ok(Hash::from_blake3(hasher.finalize()))
}

/// The `Content-Type` for a site path, with a UTF-8 charset for text.
pub fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str();
    let texty = essence.starts_with("text/")
        || matches!(
            essence,
            "application/javascript" | "application/json" | "image/svg+xml" | "application/xml"
        );
    if texty {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

pub use rayon::ThreadPool;

/// A pool of `threads` hashing threads (0: one per core), for [`hash_files`] via `install`.
pub fn thread_pool(threads: usize) -> Result<ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("hash-{i}"))
        .build()
}

/// Hashes `files` in parallel on the current rayon pool, calling `progress(bytes)` as each file
/// is done. Results are in the order of `files`.
pub fn hash_files(
    files: Vec<LocalFile>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<HashedFile>, PublishError> {
    files
        .into_par_iter()
        .map(|file| {
            let hash = hash_file(&file.disk)?;
            progress(file.size);
            let content_type = content_type(&file.path);
            Ok(HashedFile {
                file,
                hash,
                content_type,
            })
        })
        .collect()
}

/// Builds the manifest of hashed files, redirects text and options.
pub fn build_manifest(
    files: &[HashedFile],
    redirects: Option<&str>,
    options: &SiteOptions,
) -> Result<Manifest, PublishError> {
    let entries: BTreeMap<String, FileEntry> = files
        .iter()
        .map(|f| {
            (
                f.file.path.clone(),
                FileEntry {
                    hash: f.hash,
                    size: f.file.size,
                    content_type: f.content_type.clone(),
                },
            )
        })
        .collect();
    let not_found = match &options.not_found {
        Some(p) if !entries.contains_key(p) => return Err(PublishError::MissingFile(p.clone())),
        Some(p) => Some(p.clone()),
        None => entries
            .contains_key("404.html")
            .then(|| "404.html".to_owned()),
    };
    if let Some(p) = &options.spa_fallback
        && !entries.contains_key(p)
    {
        return Err(PublishError::MissingFile(p.clone()));
    }
    let manifest = Manifest {
        entries,
        index: options.index.clone(),
        not_found,
        spa_fallback: options.spa_fallback.clone(),
        redirects: redirects
            .map(parse_redirects)
            .transpose()?
            .unwrap_or_default(),
    };
    manifest.validate()?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_hashes_and_builds() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("css")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        std::fs::write(d.join("index.html"), "<h1>x</h1>").unwrap();
        std::fs::write(d.join("css/a.css"), "body{}").unwrap();
        std::fs::write(d.join(".git/config"), "secret").unwrap();
        std::fs::write(d.join("404.html"), "nf").unwrap();
        let big = vec![7u8; 3 << 20];
        std::fs::write(d.join("big.bin"), &big).unwrap();
        std::fs::write(d.join("_redirects"), "/old /index.html 302\n").unwrap();
        let (files, redirects) = scan(d).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["404.html", "big.bin", "css/a.css", "index.html"]);
        let hashed = hash_files(files, &|_| {}).unwrap();
        assert_eq!(hashed[1].hash, Hash::of(&big));
        assert_eq!(hashed[2].content_type, "text/css; charset=utf-8");
        let text = std::fs::read_to_string(redirects.unwrap()).unwrap();
        let m = build_manifest(&hashed, Some(&text), &SiteOptions::default()).unwrap();
        assert_eq!(m.not_found.as_deref(), Some("404.html"));
        assert_eq!(m.redirects.len(), 1);
        let bad = SiteOptions {
            spa_fallback: Some("app.html".into()),
            ..SiteOptions::default()
        };
        assert!(matches!(
            build_manifest(&hashed, None, &bad),
            Err(PublishError::MissingFile(_))
        ));
    }
}

//! Site manifests: what a published site is, as one canonical blob.
//!
//! A manifest maps each file path of a site to its blob (hash, size, content type) and carries
//! the site's settings: the index file of directories, the 404 page, an optional single-page-app
//! fallback, and redirects read from a Netlify-style `_redirects` file. Its BLAKE3 hash goes in
//! the zone's site record, so a manifest is immutable: a new version of a site is a new manifest.
//!
//! Encoding (version 1), all integers little endian:
//!
//! ```text
//! "PXM" 0x01
//! index        : u8 len, bytes
//! not_found    : u8 0 | u8 1, u16 len, bytes
//! spa_fallback : u8 0 | u8 1, u16 len, bytes
//! entries      : u32 count, then per entry (sorted by path, no duplicates):
//!                u16 len, path bytes; 32-byte hash; u64 size; u8 len, content type
//! redirects    : u32 count, then per rule (in file order):
//!                u16 len, from; u16 len, to; u16 status; u8 force (0|1)
//! ```
//!
//! The encoding is canonical: [`Manifest::decode`] accepts only what [`Manifest::encode`]
//! produces, so one site has one hash. The decoder checks every count against the bytes left
//! before it allocates.

use std::collections::BTreeMap;

use crate::Hash;

const MAGIC: &[u8; 3] = b"PXM";
const VERSION: u8 = 1;
/// Largest manifest accepted (64 MiB: about 500 000 files).
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;
/// Most files in one site.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Most redirect rules.
pub const MAX_REDIRECTS: usize = 10_000;
/// Longest path (bytes).
pub const MAX_PATH: usize = 1024;
/// Smallest encoded entry: empty path is invalid, so at least 1 path byte.
const MIN_ENTRY: usize = 2 + 1 + 32 + 8 + 1;
const MIN_REDIRECT: usize = 2 + 1 + 2 + 1 + 2 + 1;

/// One file of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The blob holding its bytes.
    pub hash: Hash,
    /// Its size in bytes.
    pub size: u64,
    /// Its `Content-Type`.
    pub content_type: String,
}

/// A redirect or rewrite rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Path pattern: starts with `/`; `:name` segments and a trailing `*` match.
    pub from: String,
    /// Target path or URL; `:name` and `:splat` are substituted.
    pub to: String,
    /// 301, 302, 303, 307, 308 (redirect), 200 (rewrite) or 404 (custom not found).
    pub status: u16,
    /// Apply even when a file exists at the path (`!` in `_redirects`).
    pub force: bool,
}

/// A site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Files by path (relative, `/`-separated, no leading slash).
    pub entries: BTreeMap<String, FileEntry>,
    /// File served for a directory (`index.html`).
    pub index: String,
    /// Page served with status 404 for unknown paths.
    pub not_found: Option<String>,
    /// Page served with status 200 for unknown paths (single-page apps); wins over `not_found`.
    pub spa_fallback: Option<String>,
    /// Rules from `_redirects`, first match wins.
    pub redirects: Vec<Redirect>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            index: "index.html".to_owned(),
            not_found: None,
            spa_fallback: None,
            redirects: Vec::new(),
        }
    }
}

/// Why bytes are not a manifest (or a manifest cannot be encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The input ended early.
    #[error("manifest truncated")]
    Truncated,
    /// Not a manifest.
    #[error("not a manifest (bad magic)")]
    BadMagic,
    /// A version this node does not know.
    #[error("manifest version {0} is not supported")]
    Version(u8),
    /// Over a size bound.
    #[error("manifest too large: {0}")]
    TooLarge(&'static str),
    /// A field that is not valid or not canonical.
    #[error("invalid manifest: {0}")]
    Invalid(String),
    /// Bytes after the end.
    #[error("trailing bytes after the manifest")]
    Trailing,
}

fn invalid(s: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(s.into())
}

/// Checks a file path as stored in a manifest: relative, `/`-separated, no empty, `.` or `..`
/// segment, no backslash or control character.
pub fn validate_path(p: &str) -> Result<(), ManifestError> {
    if p.is_empty() || p.len() > MAX_PATH {
        return Err(invalid(format!("path length {} out of range", p.len())));
    }
    if p.chars().any(|c| c.is_control() || c == '\\') {
        return Err(invalid(format!("path {p:?} has a forbidden character")));
    }
    for seg in p.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(invalid(format!("path {p:?} has an empty, . or .. segment")));
        }
    }
    Ok(())
}

fn validate_content_type(ct: &str) -> Result<(), ManifestError> {
    if ct.is_empty() || ct.len() > 255 || !ct.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(invalid(format!(
            "content type {ct:?} is not printable ASCII"
        )));
    }
    Ok(())
}

fn validate_redirect(r: &Redirect) -> Result<(), ManifestError> {
    if !r.from.starts_with('/') || r.from.len() > MAX_PATH {
        return Err(invalid(format!(
            "redirect source {:?} must start with /",
            r.from
        )));
    }
    if r.to.is_empty() || r.to.len() > MAX_PATH {
        return Err(invalid("redirect target empty or too long"));
    }
    if r.from.chars().chain(r.to.chars()).any(|c| c.is_control()) {
        return Err(invalid("redirect with a control character"));
    }
    if !matches!(r.status, 200 | 301 | 302 | 303 | 307 | 308 | 404 | 410) {
        return Err(invalid(format!(
            "redirect status {} not supported",
            r.status
        )));
    }
    Ok(())
}

impl Manifest {
    /// Checks what the types do not: paths, content types, settings, bounds.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooLarge("too many files"));
        }
        if self.redirects.len() > MAX_REDIRECTS {
            return Err(ManifestError::TooLarge("too many redirects"));
        }
        if self.index.is_empty() || self.index.len() > 255 || self.index.contains('/') {
            return Err(invalid(format!("index file {:?}", self.index)));
        }
        validate_path(&self.index)?;
        for p in [&self.not_found, &self.spa_fallback].into_iter().flatten() {
            validate_path(p)?;
        }
        for (path, e) in &self.entries {
            validate_path(path)?;
            validate_content_type(&e.content_type)?;
        }
        for r in &self.redirects {
            validate_redirect(r)?;
        }
        Ok(())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        let mut out = Vec::with_capacity(64 + self.entries.len() * 96);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put8(&mut out, &self.index);
        put_opt(&mut out, self.not_found.as_deref());
        put_opt(&mut out, self.spa_fallback.as_deref());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (path, e) in &self.entries {
            put16(&mut out, path);
            out.extend_from_slice(e.hash.as_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            put8(&mut out, &e.content_type);
        }
        out.extend_from_slice(&(self.redirects.len() as u32).to_le_bytes());
        for r in &self.redirects {
            put16(&mut out, &r.from);
            put16(&mut out, &r.to);
            out.extend_from_slice(&r.status.to_le_bytes());
            out.push(u8::from(r.force));
        }
        if out.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge("encoded size"));
        }
        Ok(out)
    }

    /// The hash of the canonical encoding (what the site record holds).
    pub fn hash(&self) -> Result<Hash, ManifestError> {
        Ok(Hash::of(&self.encode()?))
    }

    /// Decodes a manifest, accepting only the canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge("encoded size"));
        }
        let mut r = Reader(bytes);
        if r.take(3)? != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(ManifestError::Version(version));
        }
        let index = r.str8()?;
        let not_found = r.opt()?;
        let spa_fallback = r.opt()?;
        let count = r.u32()? as usize;
        if count > MAX_ENTRIES {
            return Err(ManifestError::TooLarge("too many files"));
        }
        if count.saturating_mul(MIN_ENTRY) > r.0.len() {
            return Err(ManifestError::Truncated);
        }
        let mut entries = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let path = r.str16()?;
            let hash = Hash(r.array()?);
            let size = r.u64()?;
            let content_type = r.str8()?;
            if last
                .as_deref()
                .is_some_and(|l| l.as_bytes() >= path.as_bytes())
            {
                return Err(invalid("entries not in strictly ascending order"));
            }
            last = Some(path.clone());
            entries.insert(
                path,
                FileEntry {
                    hash,
                    size,
                    content_type,
                },
            );
        }
        let count = r.u32()? as usize;
        if count > MAX_REDIRECTS {
            return Err(ManifestError::TooLarge("too many redirects"));
        }
        if count.saturating_mul(MIN_REDIRECT) > r.0.len() {
            return Err(ManifestError::Truncated);
        }
        let mut redirects = Vec::with_capacity(count);
        for _ in 0..count {
            let from = r.str16()?;
            let to = r.str16()?;
            let status = u16::from_le_bytes(r.array()?);
            let force = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(invalid("force flag not 0 or 1")),
            };
            redirects.push(Redirect {
                from,
                to,
                status,
                force,
            });
        }
        if !r.0.is_empty() {
            return Err(ManifestError::Trailing);
        }
        let m = Self {
            entries,
            index,
            not_found,
            spa_fallback,
            redirects,
        };
        m.validate()?;
        Ok(m)
    }
}

fn put8(out: &mut Vec<u8>, s: &str) {
    // Lengths were bounded by `validate`.
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn put16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put16(out, s);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        if self.0.len() < n {
            return Err(ManifestError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ManifestError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, ManifestError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, ManifestError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ManifestError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self, n: usize) -> Result<String, ManifestError> {
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| invalid("string is not UTF-8"))
    }

    fn str8(&mut self) -> Result<String, ManifestError> {
        let n = self.u8()? as usize;
        self.string(n)
    }

    fn str16(&mut self) -> Result<String, ManifestError> {
        let n = u16::from_le_bytes(self.array()?) as usize;
        self.string(n)
    }

    fn opt(&mut self) -> Result<Option<String>, ManifestError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str16()?)),
            _ => Err(invalid("option tag not 0 or 1")),
        }
    }
}

/// Parses a Netlify-style `_redirects` file: `FROM TO [STATUS[!]]` per line, `#` comments.
/// Conditions (`Country=..`, query matching) are not supported and are reported as errors, so
/// a publisher learns that a rule would not apply rather than finding out from visitors.
pub fn parse_redirects(text: &str) -> Result<Vec<Redirect>, ManifestError> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |m: &str| invalid(format!("_redirects line {}: {m}", i + 1));
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 || fields.len() > 3 {
            return Err(at("expected `FROM TO [STATUS]`"));
        }
        let (status, force) = match fields.get(2) {
            None => (301, false),
            Some(s) => {
                let (num, force) = match s.strip_suffix('!') {
                    Some(n) => (n, true),
                    None => (*s, false),
                };
                let status = num
                    .parse::<u16>()
                    .map_err(|_| at("status is not a number (conditions are not supported)"))?;
                (status, force)
            }
        };
        let rule = Redirect {
            from: fields[0].to_owned(),
            to: fields[1].to_owned(),
            status,
            force,
        };
        validate_redirect(&rule).map_err(|e| at(&e.to_string()))?;
        rules.push(rule);
        if rules.len() > MAX_REDIRECTS {
            return Err(ManifestError::TooLarge("too many redirects"));
        }
    }
    Ok(rules)
}

/// What the gateway should answer for a path of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// Serve this file with this status (200, or 404 for the site's 404 page).
    File {
        /// The file's path in the manifest.
        path: &'a str,
        /// Its entry.
        entry: &'a FileEntry,
        /// 200 or 404.
        status: u16,
    },
    /// Redirect to `location` with a 3xx status.
    Redirect {
        /// The `Location` header.
        location: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
    },
    /// Gone (410) or not found with no page of the site's own (404).
    Status(u16),
}

impl Manifest {
    /// Resolves a request path (percent-decoded, checked by the gateway: starts with `/`, no `.`
    /// or `..` segments). Order, as static hosts do it: forced rules, the file, the directory
    /// index, a redirect to the directory, other rules, SPA fallback, 404 page.
    pub fn resolve<'a>(&'a self, path: &str) -> Resolution<'a> {
        if let Some(r) = self.apply_rules(path, true) {
            return r;
        }
        let rel = path.trim_start_matches('/');
        if rel.is_empty() || rel.ends_with('/') {
            let index = format!("{rel}{}", self.index);
            if let Some(r) = self.file(&index, 200) {
                return r;
            }
        } else {
            if let Some(r) = self.file(rel, 200) {
                return r;
            }
            if self.entries.contains_key(&format!("{rel}/{}", self.index)) {
                return Resolution::Redirect {
                    location: format!("/{rel}/"),
                    status: 301,
                };
            }
        }
        if let Some(r) = self.apply_rules(path, false) {
            return r;
        }
        if let Some(r) = self.spa_fallback.as_deref().and_then(|p| self.file(p, 200)) {
            return r;
        }
        if let Some(r) = self.not_found.as_deref().and_then(|p| self.file(p, 404)) {
            return r;
        }
        Resolution::Status(404)
    }

    fn file<'a>(&'a self, rel: &str, status: u16) -> Option<Resolution<'a>> {
        self.entries
            .get_key_value(rel)
            .map(|(path, entry)| Resolution::File {
                path: path.as_str(),
                entry,
                status,
            })
    }

    fn apply_rules<'a>(&'a self, path: &str, forced: bool) -> Option<Resolution<'a>> {
        for rule in self.redirects.iter().filter(|r| r.force == forced) {
            let Some(target) = match_rule(&rule.from, &rule.to, path) else {
                continue;
            };
            return Some(match rule.status {
                200 | 404 => {
                    // A rewrite (or custom not-found) serves a file of the site, never another
                    // round of rules.
                    let rel = target.trim_start_matches('/');
                    let rel = if rel.is_empty() || rel.ends_with('/') {
                        format!("{rel}{}", self.index)
                    } else {
                        rel.to_owned()
                    };
                    match self.file(&rel, rule.status) {
                        Some(r) => r,
                        None => continue,
                    }
                }
                410 => Resolution::Status(410),
                status => Resolution::Redirect {
                    location: target,
                    status,
                },
            });
        }
        None
    }
}

/// Matches `path` against a rule's `from` pattern; returns the substituted `to`.
fn match_rule(from: &str, to: &str, path: &str) -> Option<String> {
    let mut vars: Vec<(&str, String)> = Vec::new();
    let pat: Vec<&str> = from.trim_start_matches('/').split('/').collect();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut i = 0;
    for (pi, p) in pat.iter().enumerate() {
        if *p == "*" && pi == pat.len() - 1 {
            vars.push((
                "splat",
                segs.get(i..).map(|s| s.join("/")).unwrap_or_default(),
            ));
            i = segs.len();
            break;
        }
        let seg = segs.get(i)?;
        if let Some(name) = p.strip_prefix(':') {
            if seg.is_empty() {
                return None;
            }
            vars.push((name, (*seg).to_owned()));
        } else if p != seg {
            return None;
        }
        i += 1;
    }
    // Trailing slash tolerance: `/a` matches `/a/` as Netlify does.
    let rest = segs.get(i..).unwrap_or_default();
    if !(rest.is_empty() || rest == [""]) {
        return None;
    }
    let mut out = to.to_owned();
    // Longest names first so `:splat` is not eaten by a `:s` placeholder.
    vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in vars {
        out = out.replace(&format!(":{name}"), &value);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(n: u8) -> FileEntry {
        FileEntry {
            hash: Hash([n; 32]),
            size: u64::from(n) * 100,
            content_type: "text/html; charset=utf-8".into(),
        }
    }

    fn site() -> Manifest {
        let mut m = Manifest::default();
        for (i, p) in [
            "index.html",
            "docs/index.html",
            "docs/a.html",
            "404.html",
            "app.html",
        ]
        .iter()
        .enumerate()
        {
            m.entries.insert((*p).to_owned(), entry(i as u8));
        }
        m.not_found = Some("404.html".into());
        m.redirects = parse_redirects(
            "# comment\n/old /docs/a.html 301\n/blog/* /posts/:splat 302\n/u/:id/x /users/:id 307\n/rw /docs/a.html 200\n/docs/a.html /index.html 302!\n/gone /x 410\n",
        )
        .unwrap();
        m
    }

    #[test]
    fn resolves_like_a_static_host() {
        let m = site();
        let file = |r: Resolution<'_>| match r {
            Resolution::File { path, status, .. } => (path.to_owned(), status),
            other => panic!("expected a file, got {other:?}"),
        };
        assert_eq!(file(m.resolve("/")), ("index.html".into(), 200));
        assert_eq!(file(m.resolve("/docs/")), ("docs/index.html".into(), 200));
        assert_eq!(
            m.resolve("/docs"),
            Resolution::Redirect {
                location: "/docs/".into(),
                status: 301
            }
        );
        assert_eq!(file(m.resolve("/nope")), ("404.html".into(), 404));
        assert_eq!(
            m.resolve("/old"),
            Resolution::Redirect {
                location: "/docs/a.html".into(),
                status: 301
            }
        );
        assert_eq!(
            m.resolve("/blog/2024/x"),
            Resolution::Redirect {
                location: "/posts/2024/x".into(),
                status: 302
            }
        );
        assert_eq!(
            m.resolve("/u/42/x"),
            Resolution::Redirect {
                location: "/users/42".into(),
                status: 307
            }
        );
        assert_eq!(file(m.resolve("/rw")), ("docs/a.html".into(), 200));
        // Forced rule wins over the existing file.
        assert!(matches!(
            m.resolve("/docs/a.html"),
            Resolution::Redirect { status: 302, .. }
        ));
        assert_eq!(m.resolve("/gone"), Resolution::Status(410));
        let mut spa = m.clone();
        spa.spa_fallback = Some("app.html".into());
        assert_eq!(file(spa.resolve("/route/deep")), ("app.html".into(), 200));
        let mut bare = Manifest::default();
        bare.entries.insert("a.txt".into(), entry(1));
        assert_eq!(bare.resolve("/zzz"), Resolution::Status(404));
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let m = site();
        let bytes = m.encode().unwrap();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        // Every strict prefix is an error, never a panic.
        for n in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..n]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Manifest::decode(&trailing), Err(ManifestError::Trailing));
    }

    #[test]
    fn huge_counts_fail_before_allocating() {
        let mut b = b"PXM\x01\x0aindex.html\x00\x00".to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Manifest::decode(&b).is_err());
        let mut b = b"PXM\x01\x0aindex.html\x00\x00".to_vec();
        b.extend_from_slice(&900_000u32.to_le_bytes());
        assert_eq!(Manifest::decode(&b), Err(ManifestError::Truncated));
    }

    #[test]
    fn bad_paths_and_rules_are_refused() {
        for p in ["", "/a", "a//b", "a/../b", "./a", "a\\b", "a/\u{0}"] {
            assert!(validate_path(p).is_err(), "{p:?}");
        }
        assert!(parse_redirects("/a").is_err());
        assert!(parse_redirects("/a /b 299").is_err());
        assert!(parse_redirects("/a /b 301 Country=us").is_err());
        assert!(parse_redirects("a /b").is_err());
    }

    fn arb_path() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-zA-Z0-9_.-]{1,8}", 1..4)
            .prop_map(|s| s.join("/"))
            .prop_filter("no dot segments", |p| validate_path(p).is_ok())
    }

    proptest! {
        #[test]
        fn any_valid_manifest_round_trips(
            files in proptest::collection::btree_map(arb_path(), (any::<[u8; 32]>(), any::<u64>(), "[a-z]{1,10}/[a-z0-9.+-]{1,20}"), 0..20),
            nf in proptest::option::of(arb_path()),
            rules in proptest::collection::vec(("/[a-z*:/]{0,12}", "/[a-z:]{0,12}", prop::sample::select(vec![200u16, 301, 302, 404, 410]), any::<bool>()), 0..5),
        ) {
            let m = Manifest {
                entries: files.into_iter().map(|(p, (h, size, ct))| (p, FileEntry { hash: Hash(h), size, content_type: ct })).collect(),
                index: "index.html".into(),
                not_found: nf,
                spa_fallback: None,
                redirects: rules.into_iter().map(|(from, to, status, force)| Redirect { from, to, status, force }).collect(),
            };
            let bytes = m.encode().unwrap();
            let back = Manifest::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.encode().unwrap(), bytes);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = Manifest::decode(&bytes) {
                prop_assert_eq!(m.encode().unwrap(), bytes);
            }
        }
    }
}

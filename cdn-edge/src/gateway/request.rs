//! Pure parsing of the parts of a request the gateway acts on: host, path, `Range`,
//! `If-None-Match`. No I/O; every function takes untrusted text and returns a decision.

/// Largest number of ranges honoured in one request; more are ignored (the whole blob is sent),
/// as RFC 9110 allows, so a request cannot make us build thousands of multipart parts.
pub const MAX_RANGES: usize = 16;

/// The site host named by a `Host` header: lowercased, without port and trailing dot.
/// `None` for an empty or malformed header.
pub fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        let end = rest.find(']')?;
        &rest[..end]
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty()
        || name.len() > 253
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
    {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// Why a request path is refused (all map to 400 Bad Request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an absolute path.
    #[error("the path must start with /")]
    NotAbsolute,
    /// `%` not followed by two hex digits, or an encoded NUL or `/`.
    #[error("bad percent-encoding")]
    BadPercent,
    /// Decodes to something that is not UTF-8.
    #[error("the path is not UTF-8")]
    NotUtf8,
    /// A `.` or `..` segment, a backslash or a control character.
    #[error("path traversal or forbidden character")]
    Traversal,
    /// Longer than the manifest allows.
    #[error("path too long")]
    TooLong,
}

/// Decodes and checks the path of a request URI (without the query). The result starts with
/// `/`; empty segments are merged (`//a` is `/a`) except a trailing slash, which is kept
/// because it means "directory".
pub fn parse_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if raw.len() > 3 * crate::manifest::MAX_PATH {
        return Err(PathError::TooLong);
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadPercent)?;
            let hex = std::str::from_utf8(hex).map_err(|_| PathError::BadPercent)?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| PathError::BadPercent)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) || v == 0 || v == b'/' {
                return Err(PathError::BadPercent);
            }
            decoded.push(v);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    let path = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::Traversal);
    }
    let trailing = path.len() > 1 && path.ends_with('/');
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(PathError::Traversal);
        }
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    if out.len() > crate::manifest::MAX_PATH + 1 {
        return Err(PathError::TooLong);
    }
    Ok(out)
}

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) header: send everything with 200.
    Full,
    /// These inclusive byte ranges, in request order: 206.
    Ranges(Vec<(u64, u64)>),
    /// None of the ranges overlaps the representation: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header (RFC 9110 section 14). Syntax errors and unknown units make
/// the header ignored (200 with everything), as the RFC says.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Full;
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    let mut ranges = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if ranges.len() >= MAX_RANGES {
            return RangeRequest::Full;
        }
        let Some((a, b)) = part.split_once('-') else {
            return RangeRequest::Full;
        };
        let (a, b) = (a.trim(), b.trim());
        let parse = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        let range = if a.is_empty() {
            // Suffix: the last N bytes.
            let Some(n) = parse(b) else {
                return RangeRequest::Full;
            };
            if n == 0 || size == 0 {
                None
            } else {
                Some((size.saturating_sub(n), size - 1))
            }
        } else {
            let Some(start) = parse(a) else {
                return RangeRequest::Full;
            };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match parse(b) {
                    Some(e) if e >= start => e,
                    _ => return RangeRequest::Full,
                }
            };
            (start < size).then(|| (start, end.min(size - 1)))
        };
        ranges.push(range);
    }
    if ranges.is_empty() {
        return RangeRequest::Full;
    }
    let ranges: Vec<(u64, u64)> = ranges.into_iter().flatten().collect();
    if ranges.is_empty() {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Ranges(ranges)
    }
}

/// Whether an `If-None-Match` header matches our strong `etag` (weak comparison, as RFC 9110
/// requires for this header).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || bare(t) == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            normalize_host("Blog.Proxima:8080").as_deref(),
            Some("blog.proxima")
        );
        assert_eq!(
            normalize_host("blog.proxima.").as_deref(),
            Some("blog.proxima")
        );
        assert_eq!(normalize_host("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(normalize_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host("a b"), None);
        assert_eq!(normalize_host("a:b"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("/").unwrap(), "/");
        assert_eq!(parse_path("/a//b/").unwrap(), "/a/b/");
        assert_eq!(parse_path("/a%20b.html").unwrap(), "/a b.html");
        assert_eq!(parse_path("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(parse_path("/../etc/passwd"), Err(PathError::Traversal));
        assert_eq!(parse_path("/a/%2e%2e/b"), Err(PathError::Traversal));
        assert_eq!(parse_path("/a/./b"), Err(PathError::Traversal));
        assert_eq!(parse_path("/a%2Fb"), Err(PathError::BadPercent));
        assert_eq!(parse_path("/a%zz"), Err(PathError::BadPercent));
        assert_eq!(parse_path("/a%"), Err(PathError::BadPercent));
        assert_eq!(parse_path("/a%+1"), Err(PathError::BadPercent));
        assert_eq!(parse_path("/%00"), Err(PathError::BadPercent));
        assert_eq!(parse_path("/%ff"), Err(PathError::NotUtf8));
        assert_eq!(parse_path("/a%5Cb"), Err(PathError::Traversal));
        assert_eq!(parse_path("x"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), Ranges(vec![(0, 4)]));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ranges(vec![(5, 9)]));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ranges(vec![(7, 9)]));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Ranges(vec![(0, 9)]));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ranges(vec![(8, 9)]));
        assert_eq!(
            parse_range(Some("bytes=0-1, 4-5"), 10),
            Ranges(vec![(0, 1), (4, 5)])
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=10-20,30-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("items=0-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 10), Full);
        assert_eq!(parse_range(Some("bytes=+1-2"), 10), Full);
        let many = format!("bytes={}", vec!["0-0"; 17].join(","));
        assert_eq!(parse_range(Some(&many), 10), Full);
    }

    #[test]
    fn etags() {
        let e = "\"abc\"";
        assert!(if_none_match("\"abc\"", e));
        assert!(if_none_match("W/\"abc\"", e));
        assert!(if_none_match("\"x\", \"abc\"", e));
        assert!(if_none_match("*", e));
        assert!(!if_none_match("\"abd\"", e));
    }
}

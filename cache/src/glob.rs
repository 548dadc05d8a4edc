//! Redis's glob-style pattern matching (`KEYS`, `SCAN MATCH`, `PSUBSCRIBE`, `CONFIG GET`):
//! `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
//!
//! Iterative with backtracking to the last `*` only, so a hostile pattern costs
//! O(pattern x string), never exponential time.

/// Whether `string` matches `pattern`.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < string.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, s));
                    continue;
                }
                b'?' => {
                    p += 1;
                    s += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, string[s], nocase)
                        && matched
                    {
                        p = next;
                        s += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if eq(pattern[p + 1], string[s]) {
                        p += 2;
                        s += 1;
                        continue;
                    }
                }
                c => {
                    if eq(c, string[s]) {
                        p += 1;
                        s += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, ss)) => {
                p = sp;
                s = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `pattern[p] == '['`; returns (matched, index
/// after the class).
fn class(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<(bool, usize)> {
    let mut i = p + 1;
    let not = pattern.get(i) == Some(&b'^');
    if not {
        i += 1;
    }
    let fold = |x: u8| if nocase { x.to_ascii_lowercase() } else { x };
    let c = fold(c);
    let mut matched = false;
    loop {
        match pattern.get(i) {
            None => {
                // Unterminated class: Redis treats the end of the pattern as the end.
                return Some((matched != not, i));
            }
            Some(b']') => return Some((matched != not, i + 1)),
            Some(b'\\') if i + 1 < pattern.len() => {
                if fold(pattern[i + 1]) == c {
                    matched = true;
                }
                i += 2;
            }
            Some(&a)
                if pattern.get(i + 1) == Some(&b'-')
                    && i + 2 < pattern.len()
                    && pattern[i + 2] != b']' =>
            {
                let (mut lo, mut hi) = (fold(a), fold(pattern[i + 2]));
                if lo > hi {
                    std::mem::swap(&mut lo, &mut hi);
                }
                if (lo..=hi).contains(&c) {
                    matched = true;
                }
                i += 3;
            }
            Some(&a) => {
                if fold(a) == c {
                    matched = true;
                }
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn patterns() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes(), false);
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("user:*:name", "user:42:name"));
        assert!(!m("user:*:name", "user:42:age"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("news.*", "news.tech"));
        assert!(!m("", "x"));
        assert!(m("", ""));
        let long = "a".repeat(10_000);
        assert!(!m(&"*a".repeat(50).to_string().replace("a", "a*b"), &long));
    }
}

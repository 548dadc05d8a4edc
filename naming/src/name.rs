//! Validated domain names.
//!
//! A [`Name`] is always in canonical form: lowercase ASCII, labels of letters, digits and inner
//! hyphens (LDH), no trailing dot, at most 253 bytes, each label 1..=63 bytes. Internationalized
//! input is converted to punycode (`xn--...`) by the `idna` crate (UTS #46, STD3 rules). A label may
//! also start with one underscore (`_dmarc`, `_sip._tcp`, RFC 8552) so that service records can be
//! owned by their usual names; the ledger refuses such labels for registration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest name in presentation form without the trailing dot (RFC 1035 limits the wire form to
/// 255 bytes, which is 253 characters of text).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The input is empty (or only a dot).
    #[error("empty name")]
    Empty,
    /// Longer than 253 bytes after normalization.
    #[error("name is {0} bytes long; at most 253 are allowed")]
    TooLong(usize),
    /// A label is empty (two dots in a row, or a leading dot).
    #[error("empty label (two dots in a row or a leading dot)")]
    EmptyLabel,
    /// A label is longer than 63 bytes.
    #[error("label {label:?} is {len} bytes long; at most 63 are allowed")]
    LabelTooLong {
        /// The offending label.
        label: String,
        /// Its length.
        len: usize,
    },
    /// A character outside letters, digits and hyphen.
    #[error("label {label:?} has the character {ch:?}; only letters, digits and '-' are allowed")]
    BadChar {
        /// The offending label.
        label: String,
        /// The offending character.
        ch: char,
    },
    /// A label starts or ends with a hyphen.
    #[error("label {0:?} starts or ends with '-'")]
    Hyphen(String),
    /// IDNA (UTS #46) conversion failed.
    #[error("not a valid internationalized name: {0}")]
    Idna(String),
}

/// A validated, normalized domain name (see the module docs for the rules).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Parses and normalizes `input` (case-folded; IDNA converted to punycode; one trailing dot
    /// allowed).
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        // Bound the work before any conversion: IDNA can only shorten or keep ASCII input, and
        // non-ASCII input longer than this cannot fit 253 bytes of punycode either.
        if trimmed.len() > 4 * MAX_NAME_LEN {
            return Err(NameError::TooLong(trimmed.len()));
        }
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(trimmed).map_err(|e| NameError::Idna(e.to_string()))?
        };
        Self::check(&ascii)?;
        Ok(Self(ascii))
    }

    fn check(ascii: &str) -> Result<(), NameError> {
        if ascii.is_empty() {
            return Err(NameError::Empty);
        }
        if ascii.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(ascii.len()));
        }
        for label in ascii.split('.') {
            check_label(label)?;
        }
        Ok(())
    }

    /// The name in presentation form, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels, left to right (`["blog", "proxima"]`).
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.0.split('.')
    }

    /// Number of labels.
    pub fn label_count(&self) -> usize {
        self.0.split('.').count()
    }

    /// The name one level up, or `None` for a single-label name.
    pub fn parent(&self) -> Option<Name> {
        self.0
            .split_once('.')
            .map(|(_, rest)| Name(rest.to_owned()))
    }

    /// The rightmost label as a name.
    pub fn tld(&self) -> Name {
        Name(self.0.rsplit('.').next().unwrap_or(&self.0).to_owned())
    }

    /// True if `self` equals `other` or lies below it (`a.blog.proxima` is a subdomain of
    /// `blog.proxima` and of itself; `xblog.proxima` is not).
    pub fn is_subdomain_of(&self, other: &Name) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(other.0.as_str())
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }

    /// True if every label is plain LDH (no service-style `_` label): what a ledger registers.
    pub fn is_hostname(&self) -> bool {
        !self.0.split('.').any(|l| l.starts_with('_'))
    }

    /// This name and its ancestors, nearest first (`a.b.c`, `b.c`, `c`).
    pub fn ancestors(&self) -> impl Iterator<Item = Name> + '_ {
        let s = self.0.as_str();
        std::iter::once(0)
            .chain(s.match_indices('.').map(|(i, _)| i + 1))
            .map(move |i| Name(s[i..].to_owned()))
    }
}

fn check_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong {
            label: label.to_owned(),
            len: label.len(),
        });
    }
    // One leading underscore marks a service label (`_sip`, `_dmarc`).
    let body = label.strip_prefix('_').unwrap_or(label);
    if body.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if let Some(ch) = body
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::BadChar {
            label: label.to_owned(),
            ch,
        });
    }
    if body.starts_with('-') || body.ends_with('-') {
        return Err(NameError::Hyphen(label.to_owned()));
    }
    if body.len() >= 4 && body[2..4] == *"--" && !body.starts_with("xn--") {
        // RFC 5891 4.2.3.1: "??--" is reserved for IDNA; only the xn-- prefix is valid.
        return Err(NameError::Hyphen(label.to_owned()));
    }
    if let Some(puny) = body.strip_prefix("xn--") {
        // An A-label must decode to a valid U-label (catch garbage like "xn--!!").
        let (_, res) = idna::domain_to_unicode(label);
        if res.is_err() || puny.is_empty() {
            return Err(NameError::Idna(format!("invalid punycode label {label:?}")));
        }
    }
    Ok(())
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({})", self.0)
    }
}

/// Lets maps keyed by `Name` be queried with a `&str` in canonical form (no allocation).
impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_dot_and_idna() {
        assert_eq!(
            Name::parse("Blog.Proxima.").unwrap().as_str(),
            "blog.proxima"
        );
        assert_eq!(
            Name::parse("bücher.proxima").unwrap().as_str(),
            "xn--bcher-kva.proxima"
        );
        assert_eq!(
            Name::parse("xn--bcher-kva.proxima").unwrap().as_str(),
            "xn--bcher-kva.proxima"
        );
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "bad_name!.proxima",
            "bad_name.proxima",
            "-a.proxima",
            "a-.proxima",
            "a b.proxima",
            "ab--c.proxima",
            "_.proxima",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long_label = "a".repeat(64);
        assert!(matches!(
            Name::parse(&format!("{long_label}.proxima")),
            Err(NameError::LabelTooLong { .. })
        ));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(Name::parse(&long), Err(NameError::TooLong(_))));
    }

    #[test]
    fn hierarchy() {
        let n = Name::parse("a.blog.proxima").unwrap();
        let blog = Name::parse("blog.proxima").unwrap();
        assert_eq!(n.parent().unwrap(), blog);
        assert!(n.is_subdomain_of(&blog));
        assert!(blog.is_subdomain_of(&blog));
        assert!(!Name::parse("xblog.proxima").unwrap().is_subdomain_of(&blog));
        assert_eq!(n.tld().as_str(), "proxima");
        assert_eq!(n.labels().collect::<Vec<_>>(), ["a", "blog", "proxima"]);
        let anc: Vec<String> = n.ancestors().map(|a| a.to_string()).collect();
        assert_eq!(anc, ["a.blog.proxima", "blog.proxima", "proxima"]);
        assert!(Name::parse("_sip._tcp.blog.proxima").is_ok());
        assert!(!Name::parse("_dmarc.blog.proxima").unwrap().is_hostname());
    }
}

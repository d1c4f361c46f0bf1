//! A package requirement without `==` (`name`, `name>=1.0`, `name[extra]~=1.2 ; marker`)
//! and the release an install would take now (pure): PEP 440 versions and specifiers
//! (the subset requirements use), a PEP 691 JSON project page, and the choice pip makes:
//! the newest version the specifiers allow, that suits the image's Python
//! (`requires-python`), not yanked, not a pre-release unless a specifier names one, with
//! a wheel for any platform (`py3-none-any`, `py3X-none-any`) or else the sdist.
//!
//! Pinned, the requirement is `name[extras] @ ARTIFACT_URL#sha256=HEX ; marker`: pip
//! checks a direct URL's hash fragment, and 35-worker.sh checks it again itself.

use std::cmp::Ordering;

use serde::Deserialize;

/// A version as PEP 440 reads it: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    /// 0 alpha, 1 beta, 2 release candidate.
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    text: String,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let lower = text.trim().to_ascii_lowercase();
        let lower = lower.strip_prefix('v').unwrap_or(&lower);
        let public = lower.split('+').next()?;
        let (epoch, rest) = match public.split_once('!') {
            Some((e, r)) => (e.parse().ok()?, r),
            None => (0, public),
        };
        let digits_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (numbers, mut tail) = rest.split_at(digits_end);
        let numbers = numbers.trim_end_matches('.');
        if numbers.is_empty() {
            return None;
        }
        let release = numbers
            .split('.')
            .map(|n| n.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        let (mut pre, mut post, mut dev) = (None, None, None);
        // Each part may follow a separator (`.`, `-`, `_`) and carry a number (default 0).
        let take = |tail: &mut &str, words: &[&str]| -> Option<(usize, u64)> {
            let t = tail.trim_start_matches(['.', '-', '_']);
            let (index, word) = words
                .iter()
                .enumerate()
                .filter(|(_, w)| t.starts_with(**w))
                .max_by_key(|(_, w)| w.len())?;
            let after = t[word.len()..].trim_start_matches(['.', '-', '_']);
            let end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            let number = if end == 0 {
                0
            } else {
                after[..end].parse().ok()?
            };
            *tail = &after[end..];
            Some((index, number))
        };
        const PRE: [&str; 7] = ["a", "alpha", "b", "beta", "rc", "c", "pre"];
        if let Some((index, n)) = take(&mut tail, &PRE) {
            let kind = match PRE[index] {
                "a" | "alpha" => 0,
                "b" | "beta" => 1,
                _ => 2,
            };
            pre = Some((kind, n));
        }
        if let Some((_, n)) = take(&mut tail, &["post", "rev", "r"]) {
            post = Some(n);
        } else if let Some(number) = tail
            .strip_prefix('-')
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            post = Some(number.parse().ok()?);
            tail = "";
        }
        if let Some((_, n)) = take(&mut tail, &["dev"]) {
            dev = Some(n);
        }
        if !tail.is_empty() {
            return None;
        }
        Some(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            text: text.trim().to_string(),
        })
    }

    /// A pre-release or a development release.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// The release without trailing zeros (`1.0.0` and `1` are one release).
    fn release_key(&self) -> &[u64] {
        let end = self
            .release
            .iter()
            .rposition(|n| *n != 0)
            .map_or(0, |i| i + 1);
        &self.release[..end]
    }

    /// PEP 440's order: `1.0.dev0 < 1.0a1 < 1.0rc1 < 1.0 < 1.0.post1`.
    fn key(&self) -> (u64, &[u64], (i8, u64), i64, u64) {
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0),
            (None, _, _) => (3, 0),
            (Some((kind, n)), _, _) => (kind as i8, n),
        };
        let post = self.post.map_or(-1, |n| n as i64);
        let dev = self.dev.unwrap_or(u64::MAX);
        (self.epoch, self.release_key(), pre, post, dev)
    }

    /// The first `n` release numbers, zero-padded.
    fn release_prefix(&self, n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| self.release.get(i).copied().unwrap_or(0))
            .collect()
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// One clause of a specifier set: `>=1.0`, `==1.*`, `~=2.2`, `!=1.5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specifier {
    op: String,
    version: Version,
    /// `==1.*` / `!=1.*`: a prefix match.
    wildcard: bool,
}

impl Specifier {
    fn parse(text: &str) -> Option<Specifier> {
        let text = text.trim();
        let op_end = text
            .find(|c: char| !matches!(c, '<' | '>' | '=' | '!' | '~'))
            .unwrap_or(text.len());
        let (op, version) = text.split_at(op_end);
        if !matches!(op, "==" | "!=" | "<=" | ">=" | "<" | ">" | "~=" | "===") {
            return None;
        }
        let version = version.trim();
        let (version, wildcard) = match version.strip_suffix(".*") {
            Some(v) if matches!(op, "==" | "!=") => (v, true),
            _ => (version, false),
        };
        Some(Specifier {
            op: op.to_string(),
            version: Version::parse(version)?,
            wildcard,
        })
    }

    fn contains(&self, v: &Version) -> bool {
        let s = &self.version;
        let prefix_match = || {
            let n = s.release.len();
            v.epoch == s.epoch && v.release_prefix(n) == s.release_prefix(n)
        };
        match self.op.as_str() {
            "==" if self.wildcard => prefix_match(),
            "!=" if self.wildcard => !prefix_match(),
            "==" | "===" => v == s,
            "!=" => v != s,
            "<=" => v <= s,
            ">=" => v >= s,
            // `<1.0` does not take 1.0's own pre-releases; `>1.0` not its post-releases.
            "<" => v < s && !(v.is_prerelease() && !s.is_prerelease() && same_release(v, s)),
            ">" => v > s && !(v.post.is_some() && s.post.is_none() && same_release(v, s)),
            "~=" => {
                let n = s.release.len().saturating_sub(1).max(1);
                v >= s && v.epoch == s.epoch && v.release_prefix(n) == s.release_prefix(n)
            }
            _ => false,
        }
    }
}

fn same_release(a: &Version, b: &Version) -> bool {
    a.epoch == b.epoch && a.release_key() == b.release_key()
}

/// A comma-separated specifier set; empty takes every version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Specifiers(Vec<Specifier>);

impl Specifiers {
    pub fn parse(text: &str) -> Option<Specifiers> {
        let text = text.trim().trim_start_matches('(').trim_end_matches(')');
        if text.trim().is_empty() {
            return Some(Specifiers::default());
        }
        text.split(',')
            .map(Specifier::parse)
            .collect::<Option<_>>()
            .map(Specifiers)
    }

    pub fn contains(&self, version: &Version) -> bool {
        self.0.iter().all(|s| s.contains(version))
    }

    /// A specifier names a pre-release (`>=2.0b1`): pre-releases are then wanted.
    fn names_prerelease(&self) -> bool {
        self.0.iter().any(|s| s.version.is_prerelease())
    }

    /// Exactly one version: `==X` (no wildcard) or `===X`, which nothing can move.
    fn is_exact(&self) -> bool {
        self.0
            .iter()
            .any(|s| (s.op == "==" && !s.wildcard) || s.op == "===")
    }
}

/// A requirement by name: `name[extras] specifiers ; marker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// As written.
    pub name: String,
    /// `[extra,...]` as written, or empty.
    extras: String,
    pub specifiers: Specifiers,
    /// The specifiers as written (`>=1.0`), or empty.
    pub written_specifiers: String,
    /// ` ; marker` as written, or empty.
    marker: String,
}

impl Requirement {
    /// The requirement when `value` is one by name (no URL, no path) that floats: None for
    /// `name==1.0` (nothing to pin), a URL or anything else.
    pub fn parse_floating(value: &str) -> Option<Requirement> {
        if value.contains("://") || value.contains('@') {
            return None;
        }
        let (requirement, marker) = match value.split_once(';') {
            Some((r, m)) => (r, format!(" ; {}", m.trim())),
            None => (value, String::new()),
        };
        let requirement = requirement.trim();
        let name_end = requirement
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .unwrap_or(requirement.len());
        let (name, rest) = requirement.split_at(name_end);
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return None;
        }
        let rest = rest.trim_start();
        let (extras, rest) = match rest.strip_prefix('[') {
            Some(after) => {
                let (inside, rest) = after.split_once(']')?;
                (format!("[{inside}]"), rest)
            }
            None => (String::new(), rest),
        };
        let specifiers = Specifiers::parse(rest)?;
        if specifiers.is_exact() {
            return None;
        }
        Some(Requirement {
            name: name.to_string(),
            extras,
            specifiers,
            written_specifiers: rest.trim().to_string(),
            marker,
        })
    }

    /// PEP 503's normalized name: the project page's path under the index.
    pub fn project(&self) -> String {
        normalize(&self.name)
    }

    /// What floated, for the record: the specifiers, or `any version`.
    pub fn floating(&self) -> String {
        if self.written_specifiers.is_empty() {
            "any version".to_string()
        } else {
            self.written_specifiers.clone()
        }
    }

    /// `name[extras] @ URL#sha256=HEX ; marker`: what pip installs exactly and checks.
    pub fn pinned(&self, url: &str, sha256: &str) -> String {
        format!(
            "{}{} @ {}{}",
            self.name,
            self.extras,
            with_sha256(url, sha256),
            self.marker
        )
    }
}

/// `url` with `sha256=HEX` in its fragment (after what is there), pip's hash check.
pub fn with_sha256(url: &str, sha256: &str) -> String {
    match url.split_once('#') {
        Some((base, fragment)) if !fragment.is_empty() => {
            format!("{base}#{fragment}&sha256={sha256}")
        }
        Some((base, _)) => format!("{base}#sha256={sha256}"),
        None => format!("{url}#sha256={sha256}"),
    }
}

/// A URL's fragment already carries a sha256 (`#sha256=HEX`): it is pinned.
pub fn has_sha256(url: &str) -> bool {
    url.split_once('#').is_some_and(|(_, fragment)| {
        fragment.split('&').any(|part| {
            part.strip_prefix("sha256=")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    })
}

/// PEP 503: lower case, runs of `-`, `_`, `.` as one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    for part in name
        .split(['-', '_', '.'])
        .filter(|p| !p.is_empty())
        .map(str::to_ascii_lowercase)
    {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&part);
    }
    out
}

/// A project page of a PEP 691 JSON simple index (what is read of it).
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectPage {
    #[serde(default)]
    pub files: Vec<IndexFile>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IndexFile {
    pub filename: String,
    pub url: String,
    #[serde(default)]
    pub hashes: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "requires-python")]
    pub requires_python: Option<String>,
    /// `false`, `true`, or the reason as a string (yanked).
    #[serde(default)]
    pub yanked: serde_json::Value,
}

impl IndexFile {
    fn is_yanked(&self) -> bool {
        match &self.yanked {
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::String(_) => true,
            _ => false,
        }
    }
}

/// The artifact chosen: its version, its file and the URL as the index gives it (maybe
/// relative to the page), and its sha256 when the index gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub version: String,
    pub filename: String,
    pub url: String,
    pub sha256: Option<String>,
}

/// Why no release suits: for the error, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRelease(pub String);

/// The image's Python as a version (`3.12`), for `requires-python` and wheel tags.
#[derive(Debug, Clone)]
pub struct Python {
    version: Version,
    minor: u64,
}

impl Python {
    pub fn parse(text: &str) -> Option<Python> {
        let version = Version::parse(text)?;
        if version.release.first() != Some(&3) || version.release.len() < 2 {
            return None;
        }
        let minor = version.release[1];
        Some(Python { version, minor })
    }
}

/// The version and artifact of `file` when it is an sdist or a wheel of `project` this
/// Python can install on any platform; the wheel is preferred (`true`).
fn usable(file: &IndexFile, project: &str, python: &Python) -> Option<(Version, bool)> {
    let name = &file.filename;
    if let Some(stem) = name.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) || normalize(parts[0]) != project {
            return None;
        }
        let [py, abi, platform] = parts[parts.len() - 3..] else {
            return None;
        };
        let python_ok = py.split('.').any(|tag| {
            tag == "py3"
                || tag
                    .strip_prefix("py3")
                    .and_then(|m| m.parse::<u64>().ok())
                    .is_some_and(|m| m <= python.minor)
        });
        if !(python_ok && abi == "none" && platform == "any") {
            return None;
        }
        return Some((Version::parse(parts[1])?, true));
    }
    let stem = [".tar.gz", ".zip"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))?;
    let (dist, version) = stem.rsplit_once('-')?;
    if normalize(dist) != project {
        return None;
    }
    Some((Version::parse(version)?, false))
}

/// The release an install of `requirement` takes now from `page`, for `python`.
pub fn choose(
    requirement: &Requirement,
    page: &ProjectPage,
    python: &Python,
) -> Result<Choice, NoRelease> {
    let project = requirement.project();
    let allow_pre = requirement.specifiers.names_prerelease();
    let mut candidates: Vec<(Version, bool, &IndexFile)> = page
        .files
        .iter()
        .filter(|f| !f.is_yanked())
        .filter(|f| {
            f.requires_python
                .as_deref()
                .and_then(Specifiers::parse)
                .is_none_or(|s| s.contains(&python.version))
        })
        .filter_map(|f| usable(f, &project, python).map(|(v, wheel)| (v, wheel, f)))
        .filter(|(v, _, _)| requirement.specifiers.contains(v))
        .collect();
    if candidates.is_empty() {
        return Err(NoRelease(format!(
            "no release of `{}` on the index matches `{}` with a wheel for any platform or an sdist, not yanked, for Python {}",
            requirement.name,
            requirement.floating(),
            python.version
        )));
    }
    let finals: Vec<_> = candidates
        .iter()
        .filter(|(v, _, _)| !v.is_prerelease())
        .cloned()
        .collect();
    // Pre-releases only when asked for, or when nothing else matches (as pip does).
    if !allow_pre && !finals.is_empty() {
        candidates = finals;
    }
    // The newest version; a wheel before the sdist; then by name, so the choice is stable.
    candidates.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(a.2.filename.cmp(&b.2.filename))
    });
    let (version, _, file) = &candidates[0];
    Ok(Choice {
        version: version.to_string(),
        filename: file.filename.clone(),
        url: file.url.clone(),
        sha256: file
            .hashes
            .get("sha256")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|h| h.to_ascii_lowercase()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text}"))
    }

    fn specs(text: &str) -> Specifiers {
        Specifiers::parse(text).unwrap()
    }

    #[test]
    fn versions_order_as_pep_440_says() {
        let ordered = [
            "0.9",
            "1.0.dev1",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0.post1",
            "1.0.1",
            "1.1",
            "2",
            "1!0.1",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0-1"), v("1.0.post1"));
        assert_eq!(v("1.0RC1"), v("1.0c1"));
        assert!(v("1.0a1").is_prerelease() && v("1.0.dev0").is_prerelease());
        assert!(!v("1.0.post1").is_prerelease());
        for bad in ["", "x", "1.0x", "1..0a"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn specifiers_match_as_pip_matches_them() {
        for (set, yes, no) in [
            (">=1.0", &["1.0", "1.5", "2.0"][..], &["0.9", "1.0rc1"][..]),
            (">=1.0,<2", &["1.0", "1.9.9"], &["2.0", "0.1"]),
            ("<2", &["1.9"], &["2.0", "2.0a1", "2.0.dev1"]),
            (">1.0", &["1.0.1"], &["1.0", "1.0.post1"]),
            ("~=1.2", &["1.2", "1.9"], &["2.0", "1.1"]),
            ("~=1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]),
            ("==1.*", &["1.0", "1.9.1"], &["2.0", "0.9"]),
            ("!=1.5", &["1.4", "1.6"], &["1.5", "1.5.0"]),
            ("!=1.5.*", &["1.4", "1.6"], &["1.5.1"]),
            ("", &["0.1", "9"], &[]),
            ("(>=1.0)", &["1.0"], &["0.9"]),
        ] {
            let s = specs(set);
            for y in yes {
                assert!(s.contains(&v(y)), "{set} takes {y}");
            }
            for n in no {
                assert!(!s.contains(&v(n)), "{set} refuses {n}");
            }
        }
        assert!(Specifiers::parse(">>1").is_none());
        assert!(Specifiers::parse("1.0").is_none());
    }

    #[test]
    fn only_a_requirement_that_floats_is_read() {
        let r = Requirement::parse_floating("UWorker_X[a,b]>=1.0,<2 ; python_version>'3'").unwrap();
        assert_eq!(r.project(), "uworker-x");
        assert_eq!(r.floating(), ">=1.0,<2");
        assert_eq!(
            r.pinned("https://f.example/u-1.5-py3-none-any.whl", &"ab".repeat(32)),
            format!(
                "UWorker_X[a,b] @ https://f.example/u-1.5-py3-none-any.whl#sha256={} ; python_version>'3'",
                "ab".repeat(32)
            )
        );
        assert_eq!(
            Requirement::parse_floating("uworker").unwrap().floating(),
            "any version"
        );
        for fixed in [
            "uworker==1.0",
            "uworker===1.0",
            "uworker>=1,==1.2",
            "uworker @ https://h/u.whl",
            "git+https://h/w.git",
            "https://h/u-1.0.tar.gz",
            "-e x",
            "uworker>>1",
        ] {
            assert_eq!(Requirement::parse_floating(fixed), None, "{fixed}");
        }
        assert!(Requirement::parse_floating("uworker==1.*").is_some());
    }

    #[test]
    fn a_sha256_goes_into_the_fragment_after_what_is_there() {
        let h = "0f".repeat(32);
        assert_eq!(
            with_sha256("https://h/a.whl", &h),
            format!("https://h/a.whl#sha256={h}")
        );
        assert_eq!(
            with_sha256("https://h/a.tgz#egg=a", &h),
            format!("https://h/a.tgz#egg=a&sha256={h}")
        );
        assert!(has_sha256(&with_sha256("https://h/a.tgz#egg=a", &h)));
        assert!(!has_sha256("https://h/a.tgz#sha256=00"));
        assert!(!has_sha256("https://h/a.tgz"));
    }

    fn file(name: &str, requires: Option<&str>, yanked: serde_json::Value) -> IndexFile {
        IndexFile {
            filename: name.into(),
            url: format!("../../files/{name}"),
            hashes: [("sha256".to_string(), format!("{:0>64}", name.len()))].into(),
            requires_python: requires.map(str::to_string),
            yanked,
        }
    }

    fn page() -> ProjectPage {
        let no = serde_json::Value::Bool(false);
        ProjectPage {
            files: vec![
                file("uworker-1.0.tar.gz", None, no.clone()),
                file("uworker-1.0-py3-none-any.whl", None, no.clone()),
                file("uworker-1.1.tar.gz", None, no.clone()),
                // 1.2: a wheel for one platform only, and its sdist.
                file(
                    "uworker-1.2-cp312-cp312-manylinux_2_17_x86_64.whl",
                    None,
                    no.clone(),
                ),
                file("uworker-1.2.tar.gz", Some(">=3.8"), no.clone()),
                // 1.3: yanked.
                file(
                    "uworker-1.3-py3-none-any.whl",
                    None,
                    serde_json::json!("broken"),
                ),
                // 1.4: needs a newer Python than 3.12.
                file("uworker-1.4-py3-none-any.whl", Some(">=3.13"), no.clone()),
                file("uworker-2.0b1-py3-none-any.whl", None, no.clone()),
                file("other-9.0-py3-none-any.whl", None, no),
            ],
        }
    }

    fn pick(requirement: &str, python: &str) -> Result<Choice, NoRelease> {
        choose(
            &Requirement::parse_floating(requirement).unwrap(),
            &page(),
            &Python::parse(python).unwrap(),
        )
    }

    #[test]
    fn the_newest_release_that_suits_is_taken_yanked_pre_and_too_new_left_out() {
        let c = pick("uworker", "3.12").unwrap();
        assert_eq!(
            (c.version.as_str(), c.filename.as_str()),
            ("1.2", "uworker-1.2.tar.gz")
        );
        assert_eq!(c.url, "../../files/uworker-1.2.tar.gz");
        assert_eq!(c.sha256.as_deref(), Some(format!("{:0>64}", 18).as_str()));
        // Python 3.13 suits 1.4's requires-python.
        assert_eq!(pick("uworker", "3.13").unwrap().version, "1.4");
        // A wheel before the sdist of the same version.
        assert_eq!(
            pick("uworker<1.1", "3.12").unwrap().filename,
            "uworker-1.0-py3-none-any.whl"
        );
        // A pre-release when a specifier names one.
        assert_eq!(pick("uworker>=2.0b1", "3.12").unwrap().version, "2.0b1");
        assert_eq!(pick("uworker~=1.1", "3.12").unwrap().version, "1.2");
        let none = pick("uworker>=3", "3.12").unwrap_err();
        assert!(
            none.0.contains("`uworker`") && none.0.contains(">=3"),
            "{none:?}"
        );
    }

    #[test]
    fn only_pre_releases_match_then_a_pre_release_is_taken() {
        assert_eq!(pick("uworker>1.4", "3.13").unwrap().version, "2.0b1");
    }

    #[test]
    fn the_python_is_a_3_x_version() {
        assert!(Python::parse("3.12").is_some());
        assert!(Python::parse("3.12.3").is_some());
        for bad in ["3", "2.7", "x", ""] {
            assert!(Python::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_pep_691_page_reads_with_its_yanked_forms() {
        let page: ProjectPage = serde_json::from_str(
            r#"{"meta": {"api-version": "1.1"}, "name": "uworker", "versions": ["1.0"],
                "files": [
                  {"filename": "uworker-1.0.tar.gz", "url": "https://f/u-1.0.tar.gz",
                   "hashes": {"sha256": "AB"}, "requires-python": null},
                  {"filename": "uworker-1.0-py3-none-any.whl", "url": "u.whl", "hashes": {},
                   "yanked": "bad build"}
                ]}"#,
        )
        .unwrap();
        assert!(!page.files[0].is_yanked());
        assert!(page.files[1].is_yanked());
    }
}

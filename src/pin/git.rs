//! A git worker source as pip reads it, and its pinned form (pure).
//!
//! `[NAME @ ]git+http(s)://[USERINFO@]HOST/PATH[@REF][?QUERY][#FRAGMENT][ ; MARKER]`:
//! like pip, the ref is what follows the last `@` of the path; the fragment
//! (`subdirectory=src`, `egg=...`) and whatever stands around the URL are kept as written.
//! Pinned, the ref is the full commit: `git+https://HOST/PATH@<40 hex>#subdirectory=src`,
//! what pip installs exactly.

use super::PinError;

/// A `git+http(s)://` value, cut into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// Text before the URL (`name @ `), or empty.
    prefix: String,
    /// `git+https` or `git+http`.
    scheme: String,
    /// As written (percent-encoded); every userinfo of an http(s) URL is a credential.
    userinfo: Option<String>,
    /// The authority without its userinfo: `host` or `host:port`.
    host: String,
    /// From the first `/`, without the ref.
    path: String,
    reference: Option<String>,
    /// Without its `?`.
    query: Option<String>,
    /// Without its `#`.
    fragment: Option<String>,
    /// Text after the URL (` ; marker`), or empty.
    suffix: String,
}

/// A value pinned: the ref it had, the commit, and the value to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The ref as written; None for the remote's HEAD.
    pub reference: Option<String>,
    /// The full commit, 40 lower-case hex digits.
    pub commit: String,
    /// The value at that commit (credentials as written, for the install).
    pub value: String,
}

/// Which refs of `git ls-remote`'s listing name the commit, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// No ref: the remote's HEAD (its default branch, what pip clones).
    Head,
    /// A full ref name (`refs/pull/1/head`), exactly.
    Exact(String),
    /// A short name: the branch, else the tag (pip's order), a tag peeled to its commit.
    Name(String),
}

impl Wanted {
    /// The patterns for `git ls-remote`, so the remote lists only these refs.
    pub fn patterns(&self) -> Vec<String> {
        match self {
            Wanted::Head => vec!["HEAD".into()],
            Wanted::Exact(name) => vec![name.clone(), format!("{name}^{{}}")],
            Wanted::Name(name) => vec![
                format!("refs/heads/{name}"),
                format!("refs/tags/{name}"),
                format!("refs/tags/{name}^{{}}"),
            ],
        }
    }

    /// The commit in `listing` (`<hex>\t<ref>` lines), if it lists the ref. A peeled
    /// line (`ref^{}`) wins over its tag: it names the commit, the tag its tag object.
    pub fn commit_in(&self, listing: &str) -> Option<String> {
        let refs: Vec<(&str, &str)> = listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(hex, _)| is_full_commit(hex))
            .collect();
        let find = |name: &str| {
            let peeled = format!("{name}^{{}}");
            refs.iter()
                .find(|(_, r)| *r == peeled)
                .or_else(|| refs.iter().find(|(_, r)| *r == name))
                .map(|(hex, _)| hex.to_ascii_lowercase())
        };
        match self {
            Wanted::Head => find("HEAD"),
            Wanted::Exact(name) => find(name),
            Wanted::Name(name) => {
                find(&format!("refs/heads/{name}")).or_else(|| find(&format!("refs/tags/{name}")))
            }
        }
    }
}

/// 40 hex digits: a full SHA-1 commit (pip's own test for a commit).
pub fn is_full_commit(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl GitSource {
    /// None when `value` is not a `git+http(s)://` URL (alone or as `name @ URL`); an
    /// error when it is one pip could not install (no host or path, an empty ref, a
    /// ref git would refuse).
    pub fn parse(value: &str) -> Result<Option<GitSource>, PinError> {
        let Some(start) = value.find("git+http") else {
            return Ok(None);
        };
        let (prefix, rest) = value.split_at(start);
        if !(prefix.trim().is_empty() || prefix.trim_end().ends_with('@')) {
            return Ok(None);
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (url, suffix) = rest.split_at(end);
        let Some((scheme, after)) = url.split_once("://") else {
            return Ok(None);
        };
        if !matches!(scheme, "git+https" | "git+http") {
            return Ok(None);
        }
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, tail) = after.split_at(authority_end);
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((info, host)) => (Some(info.to_string()), host.to_string()),
            None => (None, authority.to_string()),
        };
        let (tail, fragment) = match tail.split_once('#') {
            Some((t, f)) => (t, Some(f.to_string())),
            None => (tail, None),
        };
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (tail, None),
        };
        let (path, reference) = match path.rsplit_once('@') {
            Some((p, r)) => (p, Some(r.to_string())),
            None => (path, None),
        };
        let source = GitSource {
            prefix: prefix.to_string(),
            scheme: scheme.to_string(),
            userinfo,
            host,
            path: path.to_string(),
            reference,
            query,
            fragment,
            suffix: suffix.to_string(),
        };
        let malformed = |reason: &str| {
            Err(PinError::Malformed {
                url: source.url(),
                reason: reason.to_string(),
            })
        };
        if source.host.is_empty() {
            return malformed("it has no host");
        }
        if source.path.trim_matches('/').is_empty() {
            return malformed("it names no repository path after the host");
        }
        if let Some(reference) = &source.reference {
            if let Err(reason) = check_ref(reference) {
                return malformed(&reason);
            }
        }
        Ok(Some(source))
    }

    /// The repository's URL as git fetches it, without credentials, ref or fragment:
    /// `https://HOST/PATH`. Safe to print, and what goes on git's command line.
    pub fn url(&self) -> String {
        let transport = self.scheme.trim_start_matches("git+");
        let query = self
            .query
            .as_ref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        format!("{transport}://{}{}{query}", self.host, self.path)
    }

    /// `host` or `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The URL's userinfo as written (percent-encoded), when it has one.
    pub fn credential(&self) -> Option<&str> {
        self.userinfo.as_deref()
    }

    /// The ref as written; None for the remote's HEAD.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// The refs that name the commit.
    pub fn wanted(&self) -> Wanted {
        match &self.reference {
            None => Wanted::Head,
            Some(r) if r.starts_with("refs/") => Wanted::Exact(r.clone()),
            Some(r) => Wanted::Name(r.clone()),
        }
    }

    /// The value as it is, when its ref is already a full commit.
    pub fn already_pinned(&self) -> Option<Pin> {
        let reference = self.reference.as_deref().filter(|r| is_full_commit(r))?;
        Some(Pin {
            reference: Some(reference.to_string()),
            commit: reference.to_ascii_lowercase(),
            value: self.at(reference),
        })
    }

    /// The pin at `commit` (40 hex digits, from the remote).
    pub fn pinned(&self, commit: &str) -> Pin {
        Pin {
            reference: self.reference.clone(),
            commit: commit.to_ascii_lowercase(),
            value: self.at(&commit.to_ascii_lowercase()),
        }
    }

    /// The value with its ref replaced by (or set to) `reference`, all else as written.
    fn at(&self, reference: &str) -> String {
        let userinfo = self
            .userinfo
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let query = self
            .query
            .as_ref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let fragment = self
            .fragment
            .as_ref()
            .map(|f| format!("#{f}"))
            .unwrap_or_default();
        format!(
            "{}{}://{userinfo}{}{}@{reference}{query}{fragment}{}",
            self.prefix, self.scheme, self.host, self.path, self.suffix
        )
    }
}

/// A ref as `git check-ref-format` would take it (short names too): never empty, no
/// option-like leading `-`, no space, control character or `~^:?*[\`, no `..` or `@{`,
/// no `/` at either end, no `//`, not ending in `.` or `.lock`.
fn check_ref(reference: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("its ref (after the last `@`) {why}"));
    if reference.is_empty() {
        return bad("is empty: name a branch, a tag or a commit after `@`, or leave out the `@`");
    }
    if reference.starts_with('-') {
        return bad("begins with `-`");
    }
    if reference
        .chars()
        .any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c))
    {
        return bad("holds a character git refuses in a ref (space, control, or one of ~^:?*[\\)");
    }
    if reference.contains("..") || reference.contains("@{") || reference.contains("//") {
        return bad("holds `..`, `@{` or `//`, which git refuses in a ref");
    }
    if reference.starts_with('/')
        || reference.ends_with('/')
        || reference.ends_with('.')
        || reference.ends_with(".lock")
    {
        return bad("begins or ends in a way git refuses (`/`, `.`, `.lock`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str =
        "git+https://github.com/Odin-SMR/molflow-microq-worker.git#subdirectory=src";
    const COMMIT: &str = "9e0d2b4c0123456789abcdef0123456789abcdef";

    fn parse(value: &str) -> GitSource {
        GitSource::parse(value).unwrap().unwrap()
    }

    #[test]
    fn the_default_source_floats_on_head_and_pins_before_its_fragment() {
        let source = parse(DEFAULT);
        assert_eq!(
            source.url(),
            "https://github.com/Odin-SMR/molflow-microq-worker.git"
        );
        assert_eq!(source.host(), "github.com");
        assert_eq!(source.reference(), None);
        assert_eq!(source.wanted(), Wanted::Head);
        assert_eq!(source.already_pinned(), None);
        let pin = source.pinned(COMMIT);
        assert_eq!(
            pin.value,
            format!("git+https://github.com/Odin-SMR/molflow-microq-worker.git@{COMMIT}#subdirectory=src")
        );
        assert_eq!(pin.reference, None);
        assert_eq!(pin.commit, COMMIT);
        // The pinned value is pinned: parsed again, it asks no one and stays as it is.
        let again = parse(&pin.value).already_pinned().unwrap();
        assert_eq!(again.value, pin.value);
        assert_eq!(again.commit, COMMIT);
    }

    #[test]
    fn a_branch_a_tag_or_a_full_ref_is_replaced_by_the_commit() {
        for (value, reference, wanted, pinned) in [
            (
                "git+https://h.example/o/w.git@main#subdirectory=src",
                "main",
                Wanted::Name("main".into()),
                format!("git+https://h.example/o/w.git@{COMMIT}#subdirectory=src"),
            ),
            (
                "git+https://h.example/o/w.git@v1.2.0",
                "v1.2.0",
                Wanted::Name("v1.2.0".into()),
                format!("git+https://h.example/o/w.git@{COMMIT}"),
            ),
            (
                "git+https://h.example/o/w.git@feature/x#egg=w&subdirectory=src",
                "feature/x",
                Wanted::Name("feature/x".into()),
                format!("git+https://h.example/o/w.git@{COMMIT}#egg=w&subdirectory=src"),
            ),
            (
                "git+http://127.0.0.1:8080/w.git@refs/pull/7/head",
                "refs/pull/7/head",
                Wanted::Exact("refs/pull/7/head".into()),
                format!("git+http://127.0.0.1:8080/w.git@{COMMIT}"),
            ),
            (
                "uworker @ git+https://h.example/o/w.git@main ; python_version >= \"3.10\"",
                "main",
                Wanted::Name("main".into()),
                format!(
                    "uworker @ git+https://h.example/o/w.git@{COMMIT} ; python_version >= \"3.10\""
                ),
            ),
        ] {
            let source = parse(value);
            assert_eq!(source.reference(), Some(reference), "{value}");
            assert_eq!(source.wanted(), wanted, "{value}");
            assert_eq!(source.pinned(COMMIT).value, pinned, "{value}");
        }
        assert_eq!(
            Wanted::Name("v1".into()).patterns(),
            ["refs/heads/v1", "refs/tags/v1", "refs/tags/v1^{}"]
        );
        assert_eq!(Wanted::Head.patterns(), ["HEAD"]);
    }

    #[test]
    fn credentials_stay_in_the_value_and_out_of_the_url_git_is_given() {
        let value =
            "git+https://x-access-token:ghp_S3cr%40t@github.com/o/w.git@main#subdirectory=src";
        let source = parse(value);
        assert_eq!(source.credential(), Some("x-access-token:ghp_S3cr%40t"));
        assert_eq!(source.url(), "https://github.com/o/w.git");
        assert_eq!(source.host(), "github.com");
        assert_eq!(
            source.pinned(COMMIT).value,
            format!("git+https://x-access-token:ghp_S3cr%40t@github.com/o/w.git@{COMMIT}#subdirectory=src")
        );
        // A password with `@` written raw: the host is after the last `@` of the authority.
        let source = parse("git+https://u:p@ss@h.example/w.git@v1");
        assert_eq!(source.credential(), Some("u:p@ss"));
        assert_eq!(source.host(), "h.example");
        assert_eq!(source.reference(), Some("v1"));
    }

    #[test]
    fn a_full_commit_is_already_pinned() {
        let upper = COMMIT.to_ascii_uppercase();
        for commit in [COMMIT.to_string(), upper] {
            let value = format!("git+https://h.example/w.git@{commit}#subdirectory=src");
            let pin = parse(&value).already_pinned().unwrap();
            assert_eq!(pin.value, value, "left exactly as written");
            assert_eq!(pin.commit, COMMIT);
        }
        // An abbreviated commit is a name to look up (and no remote lists it).
        assert_eq!(
            parse("git+https://h.example/w.git@9e0d2b4").already_pinned(),
            None
        );
    }

    #[test]
    fn other_values_are_not_git_sources() {
        for value in [
            "uworker==1.0",
            "uworker",
            "./worker",
            "https://h.example/w-1.0.tar.gz",
            "git+ssh://git@github.com/o/w.git",
            "git+file:///srv/w.git",
            "hg+https://h.example/w",
            "my git+https://h.example/w.git",
        ] {
            assert_eq!(GitSource::parse(value).unwrap(), None, "{value}");
        }
    }

    #[test]
    fn a_git_url_pip_could_not_install_is_refused_without_its_credentials() {
        for (value, said) in [
            ("git+https://u:T0ken@h.example/w.git@", "is empty"),
            ("git+https://u:T0ken@/w.git", "no host"),
            ("git+https://u:T0ken@h.example", "no repository path"),
            ("git+https://u:T0ken@h.example/#egg=w", "no repository path"),
            (
                "git+https://u:T0ken@h.example/w.git@--upload-pack=x",
                "begins with `-`",
            ),
            ("git+https://u:T0ken@h.example/w.git@a..b", "`..`"),
            ("git+https://u:T0ken@h.example/w.git@v1^{}", "character"),
            ("git+https://u:T0ken@h.example/w.git@x.lock", "ends"),
        ] {
            let error = GitSource::parse(value).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(said), "{value}: {message}");
            assert!(!message.contains("T0ken"), "{message}");
        }
    }

    #[test]
    fn the_commit_is_picked_from_the_listing_as_pip_would_check_it_out() {
        let (a, b, c, t) = (
            "a".repeat(40),
            "b".repeat(40),
            "c".repeat(40),
            "d".repeat(40),
        );
        let listing = format!(
            "{a}\tHEAD\n{c}\trefs/remotes/origin/HEAD\n{a}\trefs/heads/main\n\
             {t}\trefs/tags/v1\n{b}\trefs/tags/v1^{{}}\n{c}\trefs/tags/light\n\
             {c}\trefs/tags/main\n{b}\trefs/pull/7/head\n"
        );
        let commit = |wanted: Wanted| wanted.commit_in(&listing);
        assert_eq!(commit(Wanted::Head), Some(a.clone()), "HEAD exactly");
        assert_eq!(
            commit(Wanted::Name("main".into())),
            Some(a.clone()),
            "a branch before a tag of the same name"
        );
        assert_eq!(
            commit(Wanted::Name("v1".into())),
            Some(b.clone()),
            "an annotated tag peeled to its commit"
        );
        assert_eq!(commit(Wanted::Name("light".into())), Some(c.clone()));
        assert_eq!(
            commit(Wanted::Exact("refs/pull/7/head".into())),
            Some(b.clone())
        );
        assert_eq!(commit(Wanted::Name("gone".into())), None);
        assert_eq!(commit(Wanted::Name("pull/7/head".into())), None);
        assert_eq!(Wanted::Head.commit_in("not a listing\n"), None);
        assert_eq!(
            Wanted::Head.commit_in(&format!("{}\tHEAD\n", "A".repeat(40))),
            Some(a),
            "lower case"
        );
    }
}

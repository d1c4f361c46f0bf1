//! Pins what floats (issue 28): a remote input a definition names, resolved at plan time
//! to an immutable form, so that the fingerprint says what an image holds. So far: a git
//! `worker_source` (`git+https://HOST/PATH[@REF][#subdirectory=...]`) becomes the same URL
//! at the full commit its ref names now (no ref: the remote's HEAD).
//!
//! - `git` parses such a value and forms its pinned value, and picks the commit from
//!   `git ls-remote`'s listing (pure);
//! - `ls_remote` asks the remote (the edge: runs git, with a timeout, its credentials
//!   neither on a command line nor in any message).
//!
//! `plan`, `build` and `matrix` pin (through `commands::Session::load_pinned`): the
//! pinned value replaces the variable's, so it enters the manifest, the fingerprint and
//! packer's variables; the record lists each pin (`record::InputPin`). The offline
//! commands (`fingerprint`, `render`, `validate`, and `test`) use the value as written.

pub mod git;
pub mod index;
pub mod ls_remote;
pub mod requirement;

use std::path::PathBuf;

use crate::fingerprint::Manifest;
use crate::record::{InputPin, PinKind};

pub use git::{GitSource, Pin};
pub use ls_remote::Git;
use requirement::Requirement;

/// What git said when it failed: its exit status and its standard error, credentials
/// masked. The source of `PinError::ListRefs`.
#[derive(Debug)]
pub struct GitSaid {
    pub status: String,
    pub stderr: String,
}

impl std::fmt::Display for GitSaid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stderr = self.stderr.trim();
        if stderr.is_empty() {
            write!(f, "git ls-remote {}", self.status)
        } else {
            write!(
                f,
                "git ls-remote {}: {}",
                self.status,
                stderr.replace('\n', "; ")
            )
        }
    }
}

impl std::error::Error for GitSaid {}

/// What an HTTP server said when a pin's request failed (a status, or a transport failure
/// in words that name no URL). The source of `PinError::Index` and `PinError::Content`.
#[derive(Debug)]
pub struct HttpSaid(pub String);

impl std::fmt::Display for HttpSaid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpSaid {}

/// Why a git source could not be pinned. Every message names the repository by its URL
/// without credentials (`https://HOST/PATH`), never the credentials.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("worker_source `{url}` is no git URL pip can install: {reason}")]
    Malformed { url: String, reason: String },
    #[error("pinning worker_source {url}: git ({}) was not found; install git (2.31 or newer), which resolves a git worker_source to its commit", .program.display())]
    GitMissing {
        url: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pinning worker_source {url}: git could not be run")]
    Run {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pinning worker_source {url}: {host} did not answer within {seconds} s (git ls-remote was stopped)")]
    TimedOut {
        url: String,
        host: String,
        seconds: u64,
    },
    #[error("pinning worker_source {url}: the refs of the repository at {host} could not be listed (is it reachable, and are the URL's credentials right?)")]
    ListRefs {
        url: String,
        host: String,
        #[source]
        source: GitSaid,
    },
    #[error("pinning worker_source: the package index at {host} could not give {url} (is index_url right and reachable?)")]
    Index {
        url: String,
        host: String,
        #[source]
        source: HttpSaid,
    },
    #[error("pinning worker_source: the package index at {host} answered {url} with a page that is not PEP 691 JSON")]
    BadPage {
        url: String,
        host: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("pinning worker_source `{requirement}` against the package index at {host}: {reason}")]
    NoRelease {
        requirement: String,
        host: String,
        reason: String,
    },
    #[error("pinning worker_source: {url} at {host} could not be read to hash its content")]
    Content {
        url: String,
        host: String,
        #[source]
        source: HttpSaid,
    },
    #[error("pinning worker_source: no HTTP client could be made")]
    HttpClient {
        #[source]
        source: reqwest::Error,
    },
    #[error("[pins] python `{python}` is no Python 3 version: write `major.minor`, e.g. \"3.12\" (Ubuntu 24.04's)")]
    BadPython { python: String },
    #[error("pinning worker_source {url}: the repository at {host} has no {}; give a branch, a tag, a full ref (`refs/...`) or a full 40-hex commit", .reference.as_deref().map_or_else(|| "HEAD".to_string(), |r| format!("branch or tag `{r}` (an abbreviated commit cannot be looked up)")))]
    NoSuchRef {
        url: String,
        host: String,
        reference: Option<String>,
    },
}

impl crate::exit::Coded for PinError {
    fn code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            PinError::Malformed { .. }
            | PinError::GitMissing { .. }
            | PinError::BadPython { .. } => Code::BadInput,
            PinError::Run { .. }
            | PinError::TimedOut { .. }
            | PinError::ListRefs { .. }
            | PinError::NoSuchRef { .. }
            | PinError::Index { .. }
            | PinError::BadPage { .. }
            | PinError::NoRelease { .. }
            | PinError::Content { .. }
            | PinError::HttpClient { .. } => Code::External,
        }
    }
}

/// The image's Python when `[pins] python` does not say: Ubuntu 24.04's.
pub const DEFAULT_PYTHON: &str = "3.12";

/// What pins need: how to run git, the package index and the image's Python.
#[derive(Debug, Clone)]
pub struct Pinner {
    pub git: Git,
    /// A PEP 691 simple index (`https://pypi.org/simple/`).
    pub index_url: String,
    /// `major.minor`, for `requires-python` and wheel tags.
    pub python: String,
}

impl Pinner {
    /// The environment variable naming the git program (default: `git` on PATH); the
    /// tests point it at a stand-in so that no test reaches the default definition's
    /// github.com.
    pub const GIT_ENV: &'static str = "UWORKER_IMAGE_GIT";
    /// The environment variable naming the index, over `[pins] index_url`.
    pub const INDEX_ENV: &'static str = "UWORKER_IMAGE_INDEX_URL";

    pub fn from_env(env: &crate::env::Env, settings: &crate::definition::PinSettings) -> Pinner {
        Pinner {
            git: Git::new(env.get(Pinner::GIT_ENV).unwrap_or("git"), Git::TIMEOUT),
            index_url: env
                .get(Pinner::INDEX_ENV)
                .map(str::to_string)
                .or_else(|| settings.index_url.clone())
                .unwrap_or_else(|| index::DEFAULT_INDEX.to_string()),
            python: settings
                .python
                .clone()
                .unwrap_or_else(|| DEFAULT_PYTHON.to_string()),
        }
    }
}

/// A value pinned for the build: what to install (credentials as written) and what the
/// record says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub value: String,
    pub entry: InputPin,
}

/// The input `input`'s value `value` pinned: None when nothing in it floats (not a remote
/// input this module knows, or already at a full commit); an error when it cannot be
/// resolved (exit 3, naming the host) or is malformed (exit 2). Never an unpinned value.
pub fn pin_input(input: &str, value: &str, pinner: &Pinner) -> Result<Option<Resolved>, PinError> {
    if let Some(requirement) = Requirement::parse_floating(value) {
        return pin_requirement(input, value, &requirement, pinner).map(Some);
    }
    if GitSource::parse(value)?.is_none() {
        return pin_url(input, value);
    }
    pin_git(input, value, pinner)
}

fn pin_git(input: &str, value: &str, pinner: &Pinner) -> Result<Option<Resolved>, PinError> {
    let Some(source) = GitSource::parse(value)? else {
        return Ok(None);
    };
    if source.already_pinned().is_some() {
        return Ok(None);
    }
    let pin = pinner.git.resolve(&source)?;
    let entry = InputPin {
        input: input.to_string(),
        kind: PinKind::Git,
        written: crate::userinfo::strip(value).value,
        resolved: crate::userinfo::strip(&pin.value).value,
        floating: pin.reference.clone().unwrap_or_else(|| "HEAD".into()),
        pinned: pin.commit.clone(),
        previous: None,
    };
    Ok(Some(Resolved {
        value: pin.value,
        entry,
    }))
}

/// A requirement by name: the release an install takes now from the index, pinned to its
/// artifact's URL and sha256 (the index's, else the content's own).
fn pin_requirement(
    input: &str,
    value: &str,
    requirement: &Requirement,
    pinner: &Pinner,
) -> Result<Resolved, PinError> {
    let python = requirement::Python::parse(&pinner.python).ok_or_else(|| PinError::BadPython {
        python: pinner.python.clone(),
    })?;
    let (page, page_url) = index::project_page(&pinner.index_url, &requirement.project())?;
    let choice =
        requirement::choose(requirement, &page, &python).map_err(|why| PinError::NoRelease {
            requirement: value.trim().to_string(),
            host: index::host_of(&pinner.index_url),
            reason: why.0,
        })?;
    let url = index::resolve(&page_url, &choice.url)?;
    // The URL without a fragment the index may have put there (its own `#sha256=`).
    let url = url.split('#').next().unwrap_or(&url).to_string();
    let sha256 = match choice.sha256 {
        Some(sha256) => sha256,
        None => index::content_sha256(&url)?,
    };
    let pinned = requirement.pinned(&url, &sha256);
    Ok(Resolved {
        entry: InputPin {
            input: input.to_string(),
            kind: PinKind::Requirement,
            written: crate::userinfo::strip(value).value,
            resolved: crate::userinfo::strip(&pinned).value,
            floating: requirement.floating(),
            pinned: format!("{} sha256:{sha256}", choice.version),
            previous: None,
        },
        value: pinned,
    })
}

/// The http(s) URL of `value` (`URL`, or `name @ URL`, before a marker): its start and end.
fn http_url(value: &str) -> Option<(usize, usize)> {
    let start = ["https://", "http://"]
        .iter()
        .filter_map(|scheme| value.find(scheme))
        .min()?;
    let before = value[..start].trim();
    if !(before.is_empty() || before.ends_with('@')) {
        return None;
    }
    let end = value[start..]
        .find(|c: char| c.is_whitespace() || c == ';')
        .map_or(value.len(), |e| start + e);
    Some((start, end))
}

/// Any other http(s) URL (a wheel, an sdist): pinned to the sha256 of its content, unless
/// its fragment has one already.
fn pin_url(input: &str, value: &str) -> Result<Option<Resolved>, PinError> {
    let Some((start, end)) = http_url(value) else {
        return Ok(None);
    };
    let url = &value[start..end];
    if requirement::has_sha256(url) {
        return Ok(None);
    }
    let fetched = url.split('#').next().unwrap_or(url);
    let sha256 = index::content_sha256(fetched)?;
    let pinned = format!(
        "{}{}{}",
        &value[..start],
        requirement::with_sha256(url, &sha256),
        &value[end..]
    );
    Ok(Some(Resolved {
        entry: InputPin {
            input: input.to_string(),
            kind: PinKind::Url,
            written: crate::userinfo::strip(value).value,
            resolved: crate::userinfo::strip(&pinned).value,
            floating: "content".into(),
            pinned: format!("sha256:{sha256}"),
            previous: None,
        },
        value: pinned,
    }))
}

/// The `sha256=HEX` of a URL's fragment in `value`, when there is one.
fn fragment_sha256(value: &str) -> Option<String> {
    let (_, fragment) = value.split_once('#')?;
    fragment
        .split(|c: char| c == '&' || c.is_whitespace() || c == ';')
        .find_map(|part| part.strip_prefix("sha256="))
        .filter(|hex| hex.len() == 64)
        .map(str::to_ascii_lowercase)
}

/// What `value` (an earlier manifest's, credentials left out) was pinned to, in the terms
/// of `kind`'s `InputPin::pinned`; None when it was not pinned (or is of another kind).
pub fn pinned_in(kind: PinKind, value: &str) -> Option<String> {
    match kind {
        PinKind::Git => GitSource::parse(value)
            .ok()
            .flatten()?
            .already_pinned()
            .map(|p| p.commit),
        // The version is not in the value, only its artifact: the hash tells them apart,
        // and the version read from the wheel or sdist name goes before it.
        PinKind::Requirement => {
            let sha256 = fragment_sha256(value)?;
            let (start, end) = http_url(value)?;
            let url = value[start..end].split('#').next()?;
            let file = url.rsplit('/').next()?;
            let version = file
                .strip_suffix(".whl")
                .and_then(|stem| stem.split('-').nth(1))
                .or_else(|| {
                    [".tar.gz", ".zip"]
                        .iter()
                        .find_map(|s| file.strip_suffix(s))
                        .and_then(|stem| stem.rsplit_once('-'))
                        .map(|(_, v)| v)
                })?;
            Some(format!("{version} sha256:{sha256}"))
        }
        PinKind::Url => fragment_sha256(value).map(|hex| format!("sha256:{hex}")),
    }
}

/// `pins` with what `previous` (an earlier run's manifest) had pinned each input to, where
/// that differs.
pub fn against_previous(mut pins: Vec<InputPin>, previous: Option<&Manifest>) -> Vec<InputPin> {
    let Some(previous) = previous else {
        return pins;
    };
    for pin in &mut pins {
        pin.previous = previous
            .variables
            .get(&pin.input)
            .and_then(|value| pinned_in(pin.kind, value))
            .filter(|before| *before != pin.pinned);
    }
    pins
}

/// The pinned form of `value`: None when it is not a `git+http(s)://` URL (nothing this
/// module pins yet); the value itself, without asking anyone, when it already names a
/// full commit; else the commit its ref names now on the remote, asked through `git`.
pub fn pin(value: &str, git: &Git) -> Result<Option<Pin>, PinError> {
    let Some(source) = GitSource::parse(value)? else {
        return Ok(None);
    };
    if let Some(pin) = source.already_pinned() {
        return Ok(Some(pin));
    }
    git.resolve(&source).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Code, Coded as _};

    #[test]
    fn a_pinned_value_or_another_kind_asks_no_one() {
        // A git that cannot run: any attempt to use it would fail.
        let git = Git::new("/nonexistent/git", std::time::Duration::from_secs(1));
        assert!(pin("uworker==1.0", &git).unwrap().is_none());
        assert!(pin("./worker", &git).unwrap().is_none());
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let value = format!("git+https://u:p@h.example/o/w.git@{commit}#subdirectory=src");
        let pinned = pin(&value, &git).unwrap().unwrap();
        assert_eq!(pinned.value, value);
        assert_eq!(pinned.commit, commit);
        let floating = pin("git+https://h.example/o/w.git", &git).unwrap_err();
        assert!(
            matches!(floating, PinError::GitMissing { .. }),
            "{floating}"
        );
        assert_eq!(floating.code(), Code::BadInput);
    }

    fn pinner(index_url: &str) -> Pinner {
        Pinner {
            git: Git::new("/nonexistent/git", std::time::Duration::from_secs(1)),
            index_url: index_url.to_string(),
            python: DEFAULT_PYTHON.to_string(),
        }
    }

    /// sha256 of `text`, lower-case hex.
    fn sha(text: &str) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    }

    /// A PEP 691 index on loopback: `uworker` 1.0 (wheel and sdist) and 1.1 (sdist, whose
    /// hash the index does not give), and the artifacts.
    fn index() -> crate::loopback::Server {
        crate::loopback::Server::start("127.0.0.1", |request: &crate::loopback::Request| {
            let page = format!(
                r#"{{"meta":{{"api-version":"1.0"}},"name":"uworker","files":[
                {{"filename":"uworker-1.0-py3-none-any.whl","url":"/files/uworker-1.0-py3-none-any.whl","hashes":{{"sha256":"{}"}}}},
                {{"filename":"uworker-1.1.tar.gz","url":"../../files/uworker-1.1.tar.gz","hashes":{{}},"requires-python":">=3.8"}}
                ]}}"#,
                sha("wheel 1.0")
            );
            match request.path.as_str() {
                "/simple/uworker/" => crate::loopback::Answer::new(200, &page)
                    .header("Content-Type", "application/vnd.pypi.simple.v1+json"),
                "/files/uworker-1.1.tar.gz" => crate::loopback::Answer::new(200, "sdist 1.1"),
                "/files/w.tar.gz" => crate::loopback::Answer::new(200, "a tarball"),
                _ => crate::loopback::Answer::new(404, "no"),
            }
        })
    }

    #[test]
    fn a_requirement_is_pinned_to_the_newest_artifact_and_its_sha256() {
        let server = index();
        let pinner = pinner(&format!("{}/simple/", server.url));
        let resolved = pin_input("worker_source", "uworker>=1.0", &pinner)
            .unwrap()
            .unwrap();
        let url = format!("{}/files/uworker-1.1.tar.gz", server.url);
        let hash = sha("sdist 1.1");
        assert_eq!(resolved.value, format!("uworker @ {url}#sha256={hash}"));
        assert_eq!(resolved.entry.kind, PinKind::Requirement);
        assert_eq!(resolved.entry.floating, ">=1.0");
        assert_eq!(resolved.entry.pinned, format!("1.1 sha256:{hash}"));
        // Read back from a manifest, it is what was pinned.
        assert_eq!(
            pinned_in(PinKind::Requirement, &resolved.value),
            Some(resolved.entry.pinned.clone())
        );
        // The index's own hash, for the wheel of 1.0.
        let older = pin_input("worker_source", "uworker<1.1", &pinner)
            .unwrap()
            .unwrap();
        assert_eq!(
            older.value,
            format!(
                "uworker @ {}/files/uworker-1.0-py3-none-any.whl#sha256={}",
                server.url,
                sha("wheel 1.0")
            )
        );
        // Exact, or nothing on the index that suits: left as is, or exit 3 naming it.
        assert_eq!(
            pin_input("worker_source", "uworker==1.0", &pinner).unwrap(),
            None
        );
        let none = pin_input("worker_source", "uworker>=2", &pinner).unwrap_err();
        assert_eq!(none.code(), Code::External);
        assert!(none.to_string().contains("127.0.0.1"), "{none}");
        let missing = pin_input("worker_source", "other", &pinner).unwrap_err();
        assert!(matches!(missing, PinError::Index { .. }), "{missing:?}");
        let python = Pinner {
            python: "three".into(),
            ..pinner.clone()
        };
        let bad = pin_input("worker_source", "uworker", &python).unwrap_err();
        assert_eq!(bad.code(), Code::BadInput);
    }

    #[test]
    fn a_git_branch_is_pinned_to_its_commit_and_a_full_commit_left_as_written() {
        // The tiers' git stand-in: each ref at the SHA-1 of "URL REF".
        let git = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/git-ls-remote");
        let pinner = Pinner {
            git: Git::new(git, std::time::Duration::from_secs(20)),
            ..pinner("http://127.0.0.1:9/unused/")
        };
        let value = "git+https://u:T0ken@h.example/w.git@main#subdirectory=src";
        let resolved = pin_input("worker_source", value, &pinner).unwrap().unwrap();
        let commit = resolved.entry.pinned.clone();
        assert!(git::is_full_commit(&commit), "{commit}");
        assert_eq!(
            resolved.value,
            format!("git+https://u:T0ken@h.example/w.git@{commit}#subdirectory=src")
        );
        assert_eq!(resolved.entry.kind, PinKind::Git);
        assert_eq!(resolved.entry.floating, "main");
        assert_eq!(
            resolved.entry.resolved,
            format!("git+https://h.example/w.git@{commit}#subdirectory=src")
        );
        assert_eq!(
            resolved.entry.written,
            "git+https://h.example/w.git@main#subdirectory=src"
        );
        assert_eq!(resolved.entry.previous, None);
        assert_eq!(
            pinned_in(PinKind::Git, &resolved.entry.resolved).as_deref(),
            Some(commit.as_str())
        );
        assert_eq!(
            pin_input("worker_source", &resolved.value, &pinner).unwrap(),
            None
        );
        // No ref: the remote's HEAD.
        let head = pin_input("worker_source", "git+https://h.example/w.git", &pinner)
            .unwrap()
            .unwrap();
        assert_eq!(head.entry.floating, "HEAD");
        assert_ne!(head.entry.pinned, commit);
        // Against an earlier manifest: the previous commit where it differs.
        let mut previous: Manifest = serde_json::from_value(serde_json::json!({
            "schema": 1, "image": "u", "target": "t", "template_sha256": "00",
            "files": [], "variables": {"worker_source": format!("git+https://h.example/w.git@{}", "a".repeat(40))},
            "secrets": {}, "base_image": {"by": "id", "value": "b", "resolved_id": "b"},
            "packer_version": "1.6.6"
        }))
        .unwrap();
        let moved = against_previous(vec![resolved.entry.clone()], Some(&previous));
        assert_eq!(moved[0].previous, Some("a".repeat(40)));
        previous
            .variables
            .insert("worker_source".into(), resolved.entry.resolved.clone());
        let same = against_previous(vec![resolved.entry.clone()], Some(&previous));
        assert_eq!(same[0].previous, None);
        assert_eq!(
            against_previous(vec![resolved.entry], None)[0].previous,
            None
        );
    }

    #[test]
    fn a_url_is_pinned_to_its_contents_sha256() {
        let server = index();
        let pinner = pinner("http://127.0.0.1:9/unused/");
        let url = format!("{}/files/w.tar.gz", server.url);
        let hash = sha("a tarball");
        for (value, pinned) in [
            (url.clone(), format!("{url}#sha256={hash}")),
            (
                format!("w @ {url}#egg=w ; python_version >= '3'"),
                format!("w @ {url}#egg=w&sha256={hash} ; python_version >= '3'"),
            ),
        ] {
            let resolved = pin_input("worker_source", &value, &pinner)
                .unwrap()
                .unwrap();
            assert_eq!(resolved.value, pinned);
            assert_eq!(resolved.entry.kind, PinKind::Url);
            assert_eq!(resolved.entry.pinned, format!("sha256:{hash}"));
            assert_eq!(
                pinned_in(PinKind::Url, &resolved.value).as_deref(),
                Some(resolved.entry.pinned.as_str())
            );
            // Pinned, it is left as it is.
            assert_eq!(pin_input("worker_source", &pinned, &pinner).unwrap(), None);
        }
        let gone = pin_input(
            "worker_source",
            &format!("{}/files/gone.whl", server.url),
            &pinner,
        )
        .unwrap_err();
        assert_eq!(gone.code(), Code::External);
        // Not URLs of this kind: nothing to pin here.
        for other in ["hg+https://h/w", "./worker", "git+ssh://git@h/w.git"] {
            assert_eq!(
                pin_input("worker_source", other, &pinner).unwrap(),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn what_cannot_be_resolved_is_external_and_a_bad_url_bad_input() {
        let url = || "https://h.example/o/w.git".to_string();
        let host = || "h.example".to_string();
        let external = [
            PinError::Run {
                url: url(),
                source: std::io::Error::other("x"),
            },
            PinError::TimedOut {
                url: url(),
                host: host(),
                seconds: 30,
            },
            PinError::ListRefs {
                url: url(),
                host: host(),
                source: GitSaid {
                    status: "exit status: 128".into(),
                    stderr: "fatal".into(),
                },
            },
            PinError::NoSuchRef {
                url: url(),
                host: host(),
                reference: None,
            },
        ];
        for error in external {
            assert_eq!(error.code(), Code::External, "{error}");
            assert!(error.to_string().contains("h.example"), "{error}");
        }
        let malformed = PinError::Malformed {
            url: url(),
            reason: "r".into(),
        };
        assert_eq!(malformed.code(), Code::BadInput);
    }
}

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
pub mod ls_remote;

use std::path::PathBuf;

use crate::fingerprint::Manifest;
use crate::record::{InputPin, PinKind};

pub use git::{GitSource, Pin};
pub use ls_remote::Git;

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
            PinError::Malformed { .. } | PinError::GitMissing { .. } => Code::BadInput,
            PinError::Run { .. }
            | PinError::TimedOut { .. }
            | PinError::ListRefs { .. }
            | PinError::NoSuchRef { .. } => Code::External,
        }
    }
}

/// What pins need: how to run git.
#[derive(Debug, Clone, Default)]
pub struct Pinner {
    pub git: Git,
}

impl Pinner {
    /// The environment variable naming the git program (default: `git` on PATH); the
    /// tests point it at a stand-in so that no test reaches the default definition's
    /// github.com.
    pub const GIT_ENV: &'static str = "UWORKER_IMAGE_GIT";

    pub fn from_env(env: &crate::env::Env) -> Pinner {
        Pinner {
            git: Git::new(env.get(Pinner::GIT_ENV).unwrap_or("git"), Git::TIMEOUT),
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

/// What `value` (an earlier manifest's, credentials left out) was pinned to, in the terms
/// of `kind`'s `InputPin::pinned`; None when it was not pinned (or is of another kind).
pub fn pinned_in(kind: PinKind, value: &str) -> Option<String> {
    match kind {
        PinKind::Git => GitSource::parse(value)
            .ok()
            .flatten()?
            .already_pinned()
            .map(|p| p.commit),
        PinKind::Requirement | PinKind::Url => None,
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

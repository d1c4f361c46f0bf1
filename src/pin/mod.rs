//! Pins what floats (issue 28): a remote input a definition names, resolved at plan time
//! to an immutable form, so that the fingerprint says what an image holds. So far: a git
//! `worker_source` (`git+https://HOST/PATH[@REF][#subdirectory=...]`) becomes the same URL
//! at the full commit its ref names now (no ref: the remote's HEAD).
//!
//! - `git` parses such a value and forms its pinned value, and picks the commit from
//!   `git ls-remote`'s listing (pure).
//!
//! Not wired into plan or the fingerprint yet.

pub mod git;

pub use git::{GitSource, Pin};

/// Why a git source could not be pinned. Every message names the repository by its URL
/// without credentials (`https://HOST/PATH`), never the credentials.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("worker_source `{url}` is no git URL pip can install: {reason}")]
    Malformed { url: String, reason: String },
}

impl crate::exit::Coded for PinError {
    fn code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            PinError::Malformed { .. } => Code::BadInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Code, Coded as _};

    #[test]
    fn a_bad_url_is_bad_input() {
        let url = || "https://h.example/o/w.git".to_string();
        let malformed = PinError::Malformed {
            url: url(),
            reason: "r".into(),
        };
        assert_eq!(malformed.code(), Code::BadInput);
    }
}

//! Is a failed build worth another attempt? Transient: the cloud or the network failed
//! (5xx, "No valid host", a server or image in ERROR, SSH never came up, rate limits).
//! Permanent: retrying cannot help (credentials, missing resources, the template, a
//! provisioning script that failed). Unknown errors count as permanent: an hours-long
//! retry of a broken definition costs more than a re-run by hand.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Transient(String),
    Permanent(String),
}

/// Checked first: any of these makes the failure permanent.
const PERMANENT: [&str; 14] = [
    "script exited with non-zero exit status",
    "authentication failed",
    "the request you have made requires authentication",
    "got 401",
    "got 403",
    "got 404",
    "policy doesn't allow",
    "quota exceeded",
    "quota exceeded for",
    "unknown configuration key",
    "failed to prepare build",
    "unable to find image",
    "could not find",
    "error uploading",
];

const TRANSIENT: [&str; 22] = [
    "no valid host",
    "timeout waiting for ssh",
    "error waiting for server",
    "error waiting for image",
    "error creating image",
    "error launching source server",
    "error stopping server",
    "got 500",
    "got 502",
    "got 503",
    "got 504",
    "got 429",
    "internal server error",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
    "too many requests",
    "connection reset by peer",
    "connection refused",
    "i/o timeout",
    "unexpected eof",
    "state: error",
];

/// Classifies a failed build by the errors packer reported.
pub fn classify(errors: &[String]) -> Failure {
    let text = errors.join("\n");
    let lower = text.to_lowercase();
    let summary = errors
        .last()
        .cloned()
        .unwrap_or_else(|| "packer failed without an error message".into());
    if PERMANENT.iter().any(|p| lower.contains(p)) {
        return Failure::Permanent(summary);
    }
    if TRANSIENT.iter().any(|p| lower.contains(p)) {
        return Failure::Transient(summary);
    }
    Failure::Permanent(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(message: &str) -> &'static str {
        match classify(&[message.to_string()]) {
            Failure::Transient(_) => "TRANSIENT",
            Failure::Permanent(_) => "PERMANENT",
        }
    }

    #[test]
    fn packer_1_6_6_messages_seen_here() {
        assert_eq!(
            class("Script exited with non-zero exit status: 1.Allowed exit codes are: [0]"),
            "PERMANENT"
        );
        assert_eq!(class("Timeout waiting for SSH."), "TRANSIENT");
        assert_eq!(class("Failed to prepare build: \"smog\"\n\n1 error(s) occurred:\n\n* Authentication failed"), "PERMANENT");
        assert_eq!(class("something nobody has seen"), "PERMANENT");
        assert_eq!(
            classify(&[]),
            Failure::Permanent("packer failed without an error message".into())
        );
    }
}

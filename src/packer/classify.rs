//! Is a failed build worth another attempt? Transient: the cloud or the network failed
//! (5xx, rate limits, timeouts, a server that went to ERROR, an image save that broke,
//! SSH that never came up). Permanent: retrying cannot help (credentials, a bad request,
//! a missing flavor, network or image, quota, the template, a provisioning script that
//! failed). Unknown errors count as permanent: an hours-long retry of a broken
//! definition costs more than a re-run by hand.
//!
//! Packer's openstack builder wraps the cloud's answer in a step message
//! ("Error launching source server: <cause>"), so the rules look at the cause before
//! the step: the step alone does not say whether the cloud was down or the request was
//! wrong. The first rule that matches wins.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Transient(String),
    Permanent(String),
}

#[derive(Clone, Copy)]
enum Kind {
    Transient,
    Permanent,
}

/// (lower-case substring, kind), in order. Sources: packer 1.6.6 and
/// packer-plugin-openstack's builder steps, gophercloud's error texts (which packer
/// 1.6.6 bundles: "Authentication failed", "Resource not found", "Bad request with",
/// "Request forbidden", "Internal Server Error", the 503 and 429 sentences, and
/// "Expected HTTP response code [..] ..., but got N instead" for the rest).
const RULES: &[(&str, Kind)] = &[
    // The server refused packer's SSH key: the same key is refused next time.
    (SSH_AUTH_FAILED, Kind::Permanent),
    // What the definition did: the same script fails the same way next time.
    ("script exited with non-zero exit status", Kind::Permanent),
    ("failed to prepare build", Kind::Permanent),
    ("unknown configuration key", Kind::Permanent),
    // Credentials.
    ("authentication failed", Kind::Permanent),
    (
        "the request you have made requires authentication",
        Kind::Permanent,
    ),
    ("tried to re-authenticate", Kind::Permanent),
    ("got 401", Kind::Permanent),
    // An image save that broke is the cloud's doing, even when Glance answers 404
    // for an image it lost (the plugin retries those ten times first).
    ("error waiting for image", Kind::Transient),
    // The cloud or the network failed.
    ("internal server error", Kind::Transient),
    ("temporary overloading or maintenance", Kind::Transient),
    ("too many requests", Kind::Transient),
    ("timed out waiting for the request", Kind::Transient),
    ("got 500", Kind::Transient),
    ("got 502", Kind::Transient),
    ("got 503", Kind::Transient),
    ("got 504", Kind::Transient),
    ("got 429", Kind::Transient),
    ("got 408", Kind::Transient),
    ("service unavailable", Kind::Transient),
    ("bad gateway", Kind::Transient),
    ("gateway timeout", Kind::Transient),
    ("connection reset by peer", Kind::Transient),
    ("connection refused", Kind::Transient),
    ("i/o timeout", Kind::Transient),
    ("tls handshake timeout", Kind::Transient),
    ("unexpected eof", Kind::Transient),
    ("no valid host", Kind::Transient),
    // The request itself is wrong: a retry sends it again.
    ("bad request with", Kind::Permanent),
    ("request forbidden", Kind::Permanent),
    ("resource not found", Kind::Permanent),
    ("method not allowed", Kind::Permanent),
    ("got 400", Kind::Permanent),
    ("got 403", Kind::Permanent),
    ("got 404", Kind::Permanent),
    ("got 409", Kind::Permanent),
    ("quota exceeded", Kind::Permanent),
    ("policy doesn't allow", Kind::Permanent),
    ("no image was found matching filters", Kind::Permanent),
    ("unable to find", Kind::Permanent),
    ("could not find", Kind::Permanent),
    ("error from name lookup", Kind::Permanent),
    // Steps whose failure, with no cause above, is the cloud's: a server that went to
    // ERROR ("unexpected state 'ERROR'"), SSH that never answered.
    ("timeout waiting for ssh", Kind::Transient),
    ("unexpected state 'error'", Kind::Transient),
    ("error waiting for server", Kind::Transient),
    ("error launching source server", Kind::Transient),
    ("error creating image", Kind::Transient),
    ("error stopping server", Kind::Transient),
    ("error creating volume", Kind::Transient),
    ("error waiting for volume", Kind::Transient),
    ("the status of volume is error", Kind::Transient),
];

/// Packer's words when every SSH login was refused ("Packer experienced an authentication
/// error when trying to connect via SSH ... unable to authenticate"), after
/// `ssh_handshake_attempts` tries.
const SSH_AUTH_FAILED: &str = "packer experienced an authentication error";

/// Failures whose packer message does not say why, and what does.
const EXPLAINED: &[(&str, &str)] = &[(
    SSH_AUTH_FAILED,
    "the server refused the SSH key: the server gets the run's key pair from cloud-init, \
     which reads it from Nova's metadata, so check that the base image runs cloud-init, \
     that `ssh_username` is its login user, and that the security groups and network let \
     packer reach port 22 of that server. (A key pair Nova generates is RSA, which packer \
     before 1.8.1 signs as ssh-rsa, refused by OpenSSH 8.8 and later: the tool gives packer \
     an ed25519 key of its own instead.)",
)];

/// Classifies a failed build by the errors packer reported.
pub fn classify(errors: &[String]) -> Failure {
    let lower = errors.join("\n").to_lowercase();
    let mut summary = errors
        .last()
        .cloned()
        .unwrap_or_else(|| "packer failed without an error message".into());
    if let Some((_, why)) = EXPLAINED.iter().find(|(needle, _)| lower.contains(needle)) {
        summary = format!("{summary}\n  why: {why}");
    }
    let kind = RULES
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map_or(Kind::Permanent, |(_, kind)| *kind);
    match kind {
        Kind::Transient => Failure::Transient(summary),
        Kind::Permanent => Failure::Permanent(summary),
    }
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

    /// The openstack builder's step messages around gophercloud's error texts, as the
    /// plugin formats them ("Error launching source server: %s", ...).
    #[test]
    fn openstack_builder_messages() {
        let cases = [
            ("Error launching source server: Internal Server Error", "TRANSIENT"),
            (
                "Error launching source server: The service is currently unable to handle the request due to a temporary overloading or maintenance. This is a temporary condition. Try again later.",
                "TRANSIENT",
            ),
            (
                "Error launching source server: Expected HTTP response code [202] when accessing [POST https://nova.example:8774/v2.1/servers], but got 502 instead\n<html><body>Bad Gateway</body></html>",
                "TRANSIENT",
            ),
            (
                "Error launching source server: Too many requests have been sent in a given amount of time. Pause requests, wait up to one minute, and try again.",
                "TRANSIENT",
            ),
            (
                "Error waiting for server (5c1b7c34-2b3e-4bd8-9a0f-0d2f3e8e0c1a) to become ready: unexpected state 'ERROR', wanted target '[ACTIVE]'",
                "TRANSIENT",
            ),
            (
                "Error waiting for server (5c1b7c34) to stop: unexpected state 'ERROR', wanted target '[SHUTOFF]'",
                "TRANSIENT",
            ),
            ("Error stopping server: Internal Server Error", "TRANSIENT"),
            ("Error creating image: The server timed out waiting for the request", "TRANSIENT"),
            ("Error waiting for image: Resource not found", "TRANSIENT"),
            (
                "Error waiting for image: Expected HTTP response code [200] when accessing [GET https://glance.example:9292/v2/images/1], but got 500 instead",
                "TRANSIENT",
            ),
            (
                "Error launching source server: Bad request with: [POST https://nova.example:8774/v2.1/servers], error message: {\"badRequest\": {\"message\": \"Invalid flavorRef provided.\", \"code\": 400}}",
                "PERMANENT",
            ),
            ("Error launching source server: Resource not found", "PERMANENT"),
            (
                "Error launching source server: Request forbidden: [POST https://nova.example:8774/v2.1/servers], error message: {\"forbidden\": {\"message\": \"Quota exceeded for instances: Requested 1, but already used 10 of 10 instances\", \"code\": 403}}",
                "PERMANENT",
            ),
            ("Error uploading temporary keypair to compute server: Authentication failed", "PERMANENT"),
            (
                "Unable to find specified flavor by ID or name!\n\nError from ID lookup: Resource not found\n\nError from name lookup: Unable to find flavor with name c1.small",
                "PERMANENT",
            ),
            (
                "No image was found matching filters: {Name:Ubuntu 22.04 Visibility: Owner: Tags:[]} properties map[]",
                "PERMANENT",
            ),
            (
                "Error using provided floating IP '192.0.2.10': Resource not found",
                "PERMANENT",
            ),
            ("Tried to re-authenticate 3 times with no success.", "PERMANENT"),
            ("Error creating volume: Internal Server Error", "TRANSIENT"),
            ("Error waiting for volume: The status of volume is error", "TRANSIENT"),
        ];
        for (message, want) in cases {
            assert_eq!(class(message), want, "{message}");
        }
    }

    /// Packer 1.6.6's words once `ssh_handshake_attempts` logins were refused (a key
    /// type or signature the server does not take, a wrong user, a key not installed).
    #[test]
    fn a_refused_ssh_login_is_permanent_and_says_why() {
        let refused = "Packer experienced an authentication error when trying to connect via SSH. This can happen if your username/password are wrong. You may want to double-check your credentials as part of your debugging process. original error: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain";
        let Failure::Permanent(summary) = classify(&[refused.to_string()]) else {
            panic!("retried: {:?}", classify(&[refused.to_string()]));
        };
        assert!(summary.starts_with(refused), "{summary}");
        for said in ["cloud-init", "ssh_username", "ed25519", "ssh-rsa"] {
            assert!(summary.contains(said), "{said}: {summary}");
        }
        let Failure::Permanent(plain) =
            classify(&["Script exited with non-zero exit status: 2".into()])
        else {
            panic!()
        };
        assert!(!plain.contains("why:"), "{plain}");
    }

    #[test]
    fn the_summary_is_the_last_error() {
        let errors = ["first".to_string(), "Timeout waiting for SSH.".to_string()];
        assert_eq!(
            classify(&errors),
            Failure::Transient("Timeout waiting for SSH.".into())
        );
    }
}

//! What stops a command before it runs anything: a setting it needs is missing, or the
//! cloud contradicts the definition (its base image, its floating IP). Each says what to do.

use thiserror::Error;

use crate::exit::{Code, Coded};
use crate::openstack::client::OpenStackError;

/// How to give a command cloud credentials, for every message that lacks them.
pub const CREDENTIAL_SOURCES: &str = "set OS_CLOUD to a clouds.yaml entry, export the RC file's OS_AUTH_URL with OS_USERNAME/OS_PASSWORD or OS_APPLICATION_CREDENTIAL_ID/SECRET, or pass --openrc FILE";

#[derive(Debug, Error)]
pub enum CommandError {
    #[error("no OpenStack credentials in the environment: {command} needs {needs}; {CREDENTIAL_SOURCES}")]
    NoCloudCredentials {
        command: &'static str,
        needs: &'static str,
    },
    #[error("worker config: {keys}: not set: export them, or put `export NAME=value` lines in the --worker-config file (fork pull requests: --without-secrets)")]
    MissingWorkerKeys { keys: String },
    #[error("worker config: {unset}: not set, but {set} is: command mode needs both (set neither for docker execution mode)")]
    HalfCommandMode { unset: String, set: String },
    #[error("test: test_host: not set: put \"test_host\": \"HOST[:PORT]\" in the --var-file, or pass --var test_host=HOST[:PORT]")]
    NoTestHost,
    #[error("test: test_ssh_key: not set: the SSH private key for the test host (--var-file or --var test_ssh_key=PATH)")]
    NoTestSshKey,
    #[error("build: the verification needs the OpenSSH client `ssh` on PATH: install openssh-client, or set `[verify] enabled = false` in {definition}")]
    NoSshClient { definition: String },
    #[error("{origin}: test_ssh_key: cannot read {path}")]
    TestSshKeyUnreadable {
        origin: String,
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{origin}: source_image_name: no active image named `{name}` in Glance")]
    NoSuchBaseImage { origin: String, name: String },
    #[error("{origin}: source_image_name: {} active images are named `{name}`{}: {}; packer would refuse the name, and the newest may be anyone's: pin the base by ID (source_image = \"<id>\"), or list the one owner you trust in trusted_base_owners", .candidates.len(), among_trusted(*.accepted, .trusted), .candidates.join("; "))]
    AmbiguousBaseImage {
        origin: String,
        name: String,
        /// Each image: ID, owner, visibility, created.
        candidates: Vec<String>,
        /// How many of them trusted_base_owners accepts (not one).
        accepted: usize,
        trusted: Vec<String>,
    },
    #[error("{origin}: trusted_base_owners: {image} {}", untrusted(.owner, .trusted))]
    UntrustedBaseImage {
        origin: String,
        /// Which image: "`NAME` resolves to image ID," or "image ID is".
        image: String,
        owner: Option<String>,
        trusted: Vec<String>,
    },
    #[error("{origin}: source_image: image {id} cannot be read in Glance")]
    SourceImageUnreadable {
        origin: String,
        id: String,
        #[source]
        error: Box<OpenStackError>,
    },
    #[error("{origin}: source_image: image {id} is {status}, not active")]
    SourceImageInactive {
        origin: String,
        id: String,
        status: String,
    },
    #[error("{origin}: floating_ip: packer takes the floating IP's ID: write \"{id}\" (the ID of {address})")]
    FloatingIpAddress {
        origin: String,
        id: String,
        address: String,
    },
}

fn among_trusted(accepted: usize, trusted: &[String]) -> String {
    match (accepted, trusted) {
        (_, []) => String::new(),
        (0, _) => format!(
            ", none owned by trusted_base_owners ({})",
            trusted.join(", ")
        ),
        _ => format!(
            ", {accepted} of them owned by trusted_base_owners ({})",
            trusted.join(", ")
        ),
    }
}

fn untrusted(owner: &Option<String>, trusted: &[String]) -> String {
    match owner {
        Some(owner) => format!(
            "owned by project {owner}, which is not in trusted_base_owners ({}): add it there if you trust it, or name another image",
            trusted.join(", ")
        ),
        None => "of an owner Glance does not tell, so not one of trusted_base_owners".into(),
    }
}

impl Coded for CommandError {
    fn code(&self) -> Code {
        match self {
            // Glance failing to answer is the cloud's failure, not the definition's.
            CommandError::SourceImageUnreadable { error, .. } => error.code(),
            CommandError::NoCloudCredentials { .. }
            | CommandError::MissingWorkerKeys { .. }
            | CommandError::HalfCommandMode { .. }
            | CommandError::NoTestHost
            | CommandError::NoTestSshKey
            | CommandError::NoSshClient { .. }
            | CommandError::TestSshKeyUnreadable { .. }
            | CommandError::NoSuchBaseImage { .. }
            | CommandError::UntrustedBaseImage { .. }
            | CommandError::AmbiguousBaseImage { .. }
            | CommandError::SourceImageInactive { .. }
            | CommandError::FloatingIpAddress { .. } => Code::BadInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_without_credentials_names_every_way_to_give_them() {
        for (command, needs) in [("build", "Compute"), ("prune", "Glance")] {
            let text = CommandError::NoCloudCredentials { command, needs }.to_string();
            for source in [
                "OS_CLOUD",
                "OS_AUTH_URL",
                "OS_APPLICATION_CREDENTIAL_ID",
                "--openrc",
            ] {
                assert!(text.contains(source), "{text}");
            }
            assert!(text.contains(&format!("{command} needs {needs}")), "{text}");
        }
    }

    #[test]
    fn an_unreadable_base_image_is_the_clouds_failure_only_when_the_cloud_failed() {
        let unreadable = |error| CommandError::SourceImageUnreadable {
            origin: "image.toml [target.t]".into(),
            id: "img".into(),
            error: Box::new(error),
        };
        let down = unreadable(OpenStackError::Unavailable {
            method: "GET".into(),
            url: "http://glance/v2/images/img".into(),
            reason: "HTTP 503".into(),
            attempts: 3,
        });
        assert_eq!(down.code(), Code::External);
        let missing = unreadable(OpenStackError::Api {
            method: "GET".into(),
            url: "http://glance/v2/images/img".into(),
            status: 404,
            message: "not found".into(),
        });
        assert_eq!(missing.code(), Code::BadInput);
        assert_eq!(CommandError::NoTestHost.code(), Code::BadInput);
    }

    #[test]
    fn several_base_images_of_a_name_are_each_named_with_the_way_out() {
        let error = |accepted, trusted: &[&str]| {
            CommandError::AmbiguousBaseImage {
                origin: "image.toml [target.t]".into(),
                name: "Ubuntu".into(),
                candidates: vec![
                    "a (owner x, public, created 1)".into(),
                    "b (owner y, private, created 2)".into(),
                ],
                accepted,
                trusted: trusted.iter().map(|t| t.to_string()).collect(),
            }
            .to_string()
        };
        let text = error(2, &[]);
        assert!(
            text.starts_with("image.toml [target.t]: source_image_name: 2 active images are named `Ubuntu`: a (owner x, public, created 1); b (owner y, private, created 2); packer would refuse"),
            "{text}"
        );
        assert!(
            text.contains("source_image = \"<id>\"") && text.contains("trusted_base_owners"),
            "{text}"
        );
        assert!(error(0, &["z"]).contains("`Ubuntu`, none owned by trusted_base_owners (z): a "));
        assert!(error(2, &["x", "y"])
            .contains("`Ubuntu`, 2 of them owned by trusted_base_owners (x, y): a "));
        assert_eq!(
            CommandError::AmbiguousBaseImage {
                origin: String::new(),
                name: String::new(),
                candidates: vec![],
                accepted: 0,
                trusted: vec![]
            }
            .code(),
            Code::BadInput
        );
    }

    #[test]
    fn an_untrusted_base_image_names_its_owner_and_the_trusted_ones() {
        let error = |owner: Option<&str>| CommandError::UntrustedBaseImage {
            origin: "image.toml [target.t]".into(),
            image: "image img is".into(),
            owner: owner.map(str::to_string),
            trusted: vec!["ours".into(), "theirs".into()],
        };
        assert_eq!(
            error(Some("evil")).to_string(),
            "image.toml [target.t]: trusted_base_owners: image img is owned by project evil, which is not in trusted_base_owners (ours, theirs): add it there if you trust it, or name another image"
        );
        assert!(error(None).to_string().ends_with(
            "image img is of an owner Glance does not tell, so not one of trusted_base_owners"
        ));
    }
}

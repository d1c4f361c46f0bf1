//! The vocabulary of packer user variables: which names the tool owns, which are the
//! definition's, how worker keys map to variables, and `{{user `x`}}` reference checks.

use std::collections::BTreeMap;

/// The seed's variables.json key for the floating IP (kept as a template variable).
pub const FLOATING_IP: &str = "openstack_free_floating_ip";
/// The seed's variables.json key naming the worker config file (an input, not a template variable).
pub const WORKER_CONFIG_FILE_KEY: &str = "uworker_config_file";
pub const TEST_HOST: &str = "test_host";
pub const TEST_PORT: &str = "test_port";
pub const TEST_SSH_KEY: &str = "test_ssh_key";
pub const TEST_SSH_USERNAME: &str = "test_ssh_username";
/// Where the definition lives on the machine running packer (scripts are found through it).
pub const DEFINITION_DIR: &str = "definition_dir";
/// The generated worker config file (0600, in the private work dir).
pub const WORKER_CONFIG_PATH: &str = "worker_config_path";
pub const MANIFEST_FILE: &str = "manifest_file";
pub const IMAGE_FINGERPRINT: &str = "image_fingerprint";
pub const GIT_COMMIT: &str = "git_commit";
pub const RUN_URL: &str = "run_url";
pub const RUN_ID: &str = "run_id";
/// Where a `worker_source` outside the definition is on the machine running packer.
pub const WORKER_SOURCE_DIR: &str = "worker_source_dir";
/// The run's own key pair in Nova, and its private key file (0600, in the work dir).
pub const SSH_KEYPAIR_NAME: &str = "ssh_keypair_name";
pub const SSH_PRIVATE_KEY_FILE: &str = "ssh_private_key_file";
/// When the run will have ended, cleanup included (RFC 3339): `sweep` judges by it.
pub const RUN_DEADLINE: &str = "run_deadline";
/// The run's private directory on the host (`/tmp/uworker-image.<random>`, made 0700 by
/// the first step, removed by the last): every script, packer's variable files and the
/// worker config are uploaded there, never to a predictable path in a shared directory.
pub const UPLOAD_DIR: &str = "upload_dir";
/// The tool's SBOM script (in the work dir) and where packer downloads the SBOM to:
/// declared only by a definition with `sbom = true`.
pub const SBOM_SCRIPT: &str = "sbom_script";
pub const SBOM_FILE: &str = "sbom_file";

/// Every variable name the tool itself defines; definitions may not reuse them.
pub const RESERVED: [&str; 20] = [
    FLOATING_IP,
    WORKER_CONFIG_FILE_KEY,
    TEST_HOST,
    TEST_PORT,
    TEST_SSH_KEY,
    TEST_SSH_USERNAME,
    DEFINITION_DIR,
    WORKER_CONFIG_PATH,
    MANIFEST_FILE,
    IMAGE_FINGERPRINT,
    GIT_COMMIT,
    RUN_URL,
    RUN_ID,
    WORKER_SOURCE_DIR,
    SSH_KEYPAIR_NAME,
    SSH_PRIVATE_KEY_FILE,
    RUN_DEADLINE,
    UPLOAD_DIR,
    SBOM_SCRIPT,
    SBOM_FILE,
];

/// The seed's variables.json keys (what `--var-file` accepts besides definition variables).
pub const SEED_KEYS: [&str; 5] = [
    FLOATING_IP,
    WORKER_CONFIG_FILE_KEY,
    TEST_HOST,
    TEST_SSH_KEY,
    TEST_SSH_USERNAME,
];

/// Environment variables of the tool itself that look like worker keys but are not.
pub const TOOL_ENV_PREFIX: &str = "UWORKER_IMAGE_";
pub const FINGERPRINT_KEY_ENV: &str = "UWORKER_FINGERPRINT_KEY";

pub fn is_user_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !RESERVED.contains(&name)
        && !name.starts_with("uworker_")
}

/// A worker config key: `UWORKER_[A-Z0-9_]+`, minus the tool's own variables.
pub fn is_worker_key(key: &str) -> bool {
    key.strip_prefix("UWORKER_").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }) && !key.starts_with(TOOL_ENV_PREFIX)
        && key != FINGERPRINT_KEY_ENV
}

/// The packer variable that carries a worker key's value (always sensitive).
pub fn worker_variable(key: &str) -> String {
    key.to_ascii_lowercase()
}

/// Names a step may reference with `{{user `NAME`}}`: the tool's, the definition's
/// `variables`, and the variable of each worker key that is a template variable.
pub fn template_variable_names<'k>(
    variables: &BTreeMap<String, String>,
    worker_keys: impl IntoIterator<Item = &'k String>,
) -> Vec<String> {
    RESERVED
        .iter()
        .filter(|n| **n != WORKER_CONFIG_FILE_KEY)
        .map(|n| n.to_string())
        .chain(variables.keys().cloned())
        .chain(worker_keys.into_iter().map(|k| worker_variable(k)))
        .collect()
}

/// Every `{{user `NAME`}}` in `text` must name a known variable.
pub fn check_references(text: &str, known: &[String]) -> Result<(), String> {
    for name in references(text) {
        if !known.iter().any(|k| k == name) {
            return Err(format!(
                "`{{{{user `{name}`}}}}` names no variable; declare it under [variables] (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// Whether `text` holds a `{{user `NAME`}}` reference to `name`.
pub fn references_variable(text: &str, name: &str) -> bool {
    references(text).contains(&name)
}

/// The NAMEs of `{{user `NAME`}}` (spaces around `user` allowed, as packer allows).
fn references(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some((_, after)) = rest.split_once("{{") {
        let Some((inner, next)) = after.split_once("}}") else {
            break;
        };
        if let Some(arg) = inner.trim().strip_prefix("user") {
            let arg = arg.trim();
            if let Some(name) = arg.strip_prefix('`').and_then(|a| a.strip_suffix('`')) {
                names.push(name);
            }
        }
        rest = next;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_user_references() {
        assert_eq!(
            references("a {{user `x`}} b {{ user `y_2` }} {{timestamp}}"),
            vec!["x", "y_2"]
        );
        let known = vec!["x".to_string()];
        assert!(check_references("{{user `x`}}", &known).is_ok());
        let err = check_references("{{user `nope`}}", &known).unwrap_err();
        assert!(err.contains("`nope`"), "{err}");
    }

    #[test]
    fn worker_keys_exclude_the_tools_own_variables() {
        assert!(is_worker_key("UWORKER_JOB_API_ROOT"));
        assert!(!is_worker_key("UWORKER_IMAGE_DIR"));
        assert!(!is_worker_key(FINGERPRINT_KEY_ENV));
        assert!(!is_worker_key("UWORKER_"));
        assert!(!is_worker_key("UWORKER_lower"));
        assert!(!is_worker_key("OS_PASSWORD"));
    }

    #[test]
    fn user_variable_names_avoid_reserved_ones() {
        assert!(is_user_variable_name("worker_source"));
        assert!(!is_user_variable_name(FLOATING_IP));
        assert!(!is_user_variable_name("uworker_job_api_password"));
        assert!(!is_user_variable_name("Upper"));
        assert!(!is_user_variable_name("1x"));
    }
}

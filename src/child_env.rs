//! The environment of the programs the tool runs (packer, shellcheck): an allow-list,
//! so the tool's secrets reach only the process that needs them.

/// The allow-listed part of the tool's own environment (names and values that are not
/// UTF-8 are left out: none the children need can be such).
pub fn of_process(cloud: bool) -> Vec<(String, String)> {
    allow_listed(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        cloud,
    )
}

/// A child's environment, from the tool's: only what packer, its SSH client and the other
/// tools the tool runs (shellcheck) read. Never GITHUB_TOKEN, never the worker's UWORKER_*
/// secrets (they reach packer through the 0600 var-file), never unrelated credentials
/// (AWS_*, ...). OS_* only for a packer run that talks to the cloud.
pub fn allow_listed(
    vars: impl IntoIterator<Item = (String, String)>,
    cloud: bool,
) -> Vec<(String, String)> {
    const NAMES: [&str; 17] = [
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "LANG",
        "TZ",
        "SSH_AUTH_SOCK",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "XDG_CONFIG_HOME",
    ];
    vars.into_iter()
        .filter(|(key, _)| {
            NAMES.contains(&key.as_str())
                || key.starts_with("LC_")
                || key.starts_with("PACKER_")
                || key == "CHECKPOINT_DISABLE"
                || (cloud && key.starts_with("OS_"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_sees_only_what_it_reads() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("OS_PASSWORD", "s3cret"),
            ("OS_AUTH_URL", "http://keystone"),
            ("PACKER_LOG", "1"),
            ("LC_ALL", "C.UTF-8"),
            ("GITHUB_TOKEN", "ghs_x"),
            ("UWORKER_JOB_API_PASSWORD", "pw"),
            ("UWORKER_FINGERPRINT_KEY", "k"),
            ("AWS_SECRET_ACCESS_KEY", "a"),
            ("ACTIONS_RUNTIME_TOKEN", "t"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let keys = |cloud| {
            let mut keys: Vec<String> = allow_listed(vars.clone(), cloud)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(
            keys(true),
            [
                "HOME",
                "LC_ALL",
                "OS_AUTH_URL",
                "OS_PASSWORD",
                "PACKER_LOG",
                "PATH"
            ]
        );
        assert_eq!(keys(false), ["HOME", "LC_ALL", "PACKER_LOG", "PATH"]);
    }
}

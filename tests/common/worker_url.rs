//! A worker_source URL of a private repository, whose credentials are a secret: every
//! output and file outside the 0600 ones must be free of them (tests/cli/worker_source.rs,
//! and the install script as root in tests/services/worker_install.rs).

/// A private repository's URL: a token with `$`, quotes and a percent-encoded `@`.
pub const TOKEN: &str = "ghp_T0k$en'q\"x%40y";
pub const USER: &str = "x-access-token";

pub fn private_url() -> String {
    format!("git+https://{USER}:{TOKEN}@127.0.0.1:9/o/worker.git#subdirectory=src")
}

pub const PUBLIC_URL: &str = "git+https://127.0.0.1:9/o/worker.git#subdirectory=src";

pub fn assert_no_credentials(what: &str, text: &str) {
    for secret in [TOKEN, "ghp_T0k", "T0k$en", "x%40y", USER] {
        assert!(!text.contains(secret), "{what} holds {secret:?}:\n{text}");
    }
}

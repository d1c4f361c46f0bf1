//! `validate`: real packer (syntax-only without credentials) and real shellcheck.

use crate::common;

use common::*;

#[test]
fn valid_definition_passes_syntax_only_and_shellcheck() {
    let f = full_fixture();
    let r = run_tool(f.path(), &["validate"], &worker_env());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("packer validate, syntax only (no OpenStack credentials"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("shellcheck: 1 script(s) clean"),
        "{}",
        r.stdout
    );
}

#[test]
fn shellcheck_findings_make_it_invalid() {
    let f = full_fixture();
    f.script(
        "scripts/base.sh",
        "#!/usr/bin/env bash\necho $UNQUOTED_VAR\n",
    );
    let r = run_tool(f.path(), &["validate"], &worker_env());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("scripts/base.sh:2:"), "{}", r.stdout);
    assert!(r.stdout.contains("SC2086"), "{}", r.stdout);
    let skipped = run_tool(f.path(), &["validate", "--no-shellcheck"], &worker_env());
    assert_eq!(skipped.code, 0, "{}", skipped.all());
}

#[test]
fn fork_pull_requests_validate_without_secrets() {
    let f = full_fixture();
    let r = run_tool(f.path(), &["validate", "--without-secrets"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let json = run_tool(
        f.path(),
        &["--output", "json", "validate", "--without-secrets"],
        &[],
    );
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["packer"]["mode"], "syntax-only");
}

#[test]
fn the_default_definition_is_valid() {
    let r = run_tool(
        &default_definition(),
        &["validate", "--without-secrets"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        // scripts/setup.sh installs shellcheck: the scripts must have been checked.
        r.stdout.contains("script(s) clean"),
        "{}",
        r.stdout
    );
}

//! Secrets in `validate`, which runs the real packer and shellcheck (the other commands:
//! tests/cli/secrets.rs): its output holds none, packer's own output is redacted, and its
//! work directory is removed.

use crate::common;

use common::*;

#[test]
fn validate_prints_no_secret() {
    let fixture = full_fixture();
    let vars = worker_env();
    let runs = [
        run_tool(fixture.path(), &["-v", "validate"], &vars),
        run_tool(fixture.path(), &["--output", "json", "validate"], &vars),
    ];
    assert_no_worker_secret(&runs);
    assert_eq!(runs[0].code, 0, "{}", runs[0].all());
}

#[test]
fn a_failing_packer_validate_is_redacted() {
    // Full validation against a closed port: packer fails, and its output passes through
    // the redactor. The OpenStack password is a secret too.
    let fixture = full_fixture();
    let mut vars = worker_env();
    let os_password = "os 'pass' $word";
    vars.extend([
        ("OS_AUTH_URL", "http://127.0.0.1:9/v3"),
        ("OS_USERNAME", "ci-user"),
        ("OS_PASSWORD", os_password),
        ("OS_PROJECT_NAME", "ci-project"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
    ]);
    let r = run_tool(fixture.path(), &["validate"], &vars);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("packer validate, full"), "{}", r.stdout);
    assert!(r.stdout.contains("connection refused"), "{}", r.stdout);
    assert!(!r.all().contains(os_password));
    assert!(!r.all().contains(NASTY_PASSWORD));
}

#[test]
fn the_work_directory_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = full_fixture();
    let mut cmd = tool(&worker_env());
    cmd.env("TMPDIR", tmp.path())
        .arg("--dir")
        .arg(fixture.path())
        .arg("validate");
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "left behind"
    );
}

//! Secrets with quotes, `$`, spaces and newlines: they reach the worker config byte for
//! byte and appear nowhere else.

mod common;

use std::process::Command;

use common::*;

#[test]
fn generated_worker_config_sources_to_the_exact_values() {
    let fixture = full_fixture();
    let out = tempfile::tempdir().unwrap();
    let extra = "tab\there 'single' \"double\" \\ $(id) ${HOME}";
    let mut vars = worker_env();
    vars.push(("UWORKER_REGISTRY_URL", extra));
    render_out(fixture.path(), out.path(), &vars, &[]);
    let conf = out.path().join("uworker.conf");
    for shell in ["bash", "sh"] {
        for (key, expected) in &vars {
            // printf %s prints the value as the shell holds it after `.`.
            let got = Command::new(shell)
                .arg("-c")
                .arg(format!(". \"$1\" && printf %s \"${key}\""))
                .arg(shell)
                .arg(&conf)
                .env_clear()
                .output()
                .unwrap();
            assert!(got.status.success(), "{shell}: {got:?}");
            assert_eq!(
                String::from_utf8(got.stdout).unwrap(),
                *expected,
                "{shell} {key}"
            );
        }
    }
}

#[test]
fn no_output_and_no_public_file_contains_a_secret() {
    let fixture = full_fixture();
    let vars = worker_env();
    let out = tempfile::tempdir().unwrap();
    let runs = [
        run_tool(fixture.path(), &["render"], &vars),
        run_tool(
            fixture.path(),
            &["render", "--out", out.path().to_str().unwrap()],
            &vars,
        ),
        run_tool(fixture.path(), &["-v", "validate"], &vars),
        run_tool(fixture.path(), &["--output", "json", "validate"], &vars),
        run_tool(
            fixture.path(),
            &["--target", "north", "fingerprint", "--explain"],
            &vars,
        ),
        run_tool(
            fixture.path(),
            &["--target", "north", "--output", "json", "fingerprint"],
            &vars,
        ),
        run_tool(fixture.path(), &["--target", "north", "plan"], &vars),
        run_tool(
            fixture.path(),
            &["--target", "north", "--output", "json", "plan"],
            &vars,
        ),
    ];
    let template = std::fs::read_to_string(out.path().join("template.json")).unwrap();
    for secret in [NASTY_PASSWORD, NASTY_USERNAME, API_ROOT] {
        for (i, r) in runs.iter().enumerate() {
            assert!(
                !r.all().contains(secret),
                "run {i} printed a secret:\n{}",
                r.all()
            );
            for line in secret.lines().filter(|l| l.len() > 3) {
                assert!(!r.all().contains(line), "run {i} printed part of a secret");
            }
        }
        assert!(!template.contains(secret));
    }
    assert_eq!(runs[2].code, 0, "{}", runs[2].all());
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

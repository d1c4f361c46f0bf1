//! Secrets with quotes, `$`, spaces and newlines: they reach the worker config byte for
//! byte and appear nowhere else (`validate`, which runs packer and shellcheck:
//! tests/services/secrets_validate.rs).

use crate::common;

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
    assert_no_worker_secret(&runs);
    for secret in [NASTY_PASSWORD, NASTY_USERNAME, API_ROOT] {
        assert!(!template.contains(secret));
    }
    for r in &runs {
        assert_eq!(r.code, 0, "{}", r.all());
    }
}

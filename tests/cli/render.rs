//! `render`: snapshots of every rendered template (each also checked by the real packer in
//! tests/services/render_packer.rs).

use crate::common;

use common::*;

fn render_checked(def: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    let printed = run_tool(def, &[&["render"], args].concat(), vars);
    assert_eq!(printed.code, 0, "{}", printed.all());
    printed.stdout
}

#[test]
fn default_definition_template() {
    let text = render_checked(&default_definition(), &[], &[]);
    snapshot_settings().bind(|| insta::assert_snapshot!("render_default", text));
}

#[test]
fn every_step_kind_and_two_targets() {
    let fixture = full_fixture();
    let text = render_checked(fixture.path(), &[], &[]);
    snapshot_settings().bind(|| insta::assert_snapshot!("render_full", text));
}

/// The seed's variables.json and worker config file, as the seed README writes them.
#[test]
fn seed_variables_json_renders_a_runnable_var_file() {
    let seed = seed_var_file();
    let key = seed.path().join("cloud.key");
    let var_file = seed.path().join("variables.json");

    let out = tempfile::tempdir().unwrap();
    let def = default_definition();
    let rendered = render_out(
        &def,
        out.path(),
        &[],
        &["--var-file", var_file.to_str().unwrap()],
    );
    assert!(!rendered.all().contains("second line"));
    assert_eq!(mode(&out.path().join("variables.json")), 0o600);
    assert_eq!(mode(&out.path().join("uworker.conf")), 0o600);
    let template = out.path().join("template.json");
    let var_file_out = out.path().join("variables.json");

    // The var-file holds the secrets (0600); the snapshot shows it with values masked
    // and machine-specific paths replaced.
    let vars_text = std::fs::read_to_string(&var_file_out).unwrap();
    let vars: serde_json::Value = serde_json::from_str(&vars_text).unwrap();
    assert_eq!(vars["uworker_job_api_password"], NASTY_PASSWORD);
    assert_eq!(vars["openstack_free_floating_ip"], "130.238.29.214");
    assert_eq!(vars["test_host"], "130.238.29.14");
    assert_eq!(vars["test_port"], "22");
    assert_eq!(
        vars["test_ssh_key"],
        key.to_str().unwrap(),
        "relative to the var-file"
    );
    // The run's private directory on the host: a new unpredictable name each time.
    let upload_dir = vars["upload_dir"].as_str().unwrap().to_string();
    let random = upload_dir.strip_prefix("/tmp/uworker-image.").unwrap();
    assert!(
        random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()),
        "{upload_dir}"
    );
    let mut masked = vars.clone();
    masked["upload_dir"] = "/tmp/uworker-image.[RANDOM]".into();
    for key in [
        "uworker_job_api_password",
        "uworker_job_api_username",
        "uworker_job_api_root",
    ] {
        masked[key] = "[SECRET]".into();
    }
    let masked = serde_json::to_string_pretty(&masked).unwrap();
    let masked = masked
        .replace(out.path().to_str().unwrap(), "[OUT]")
        .replace(seed.path().to_str().unwrap(), "[SEED]")
        .replace(
            def.canonicalize().unwrap().to_str().unwrap(),
            "[DEFINITION]",
        );
    assert!(!masked.contains("alice") && !masked.contains("second line"));
    snapshot_settings().bind(|| insta::assert_snapshot!("render_seed_var_file", masked));
    assert_eq!(
        std::fs::read_to_string(&template).unwrap(),
        render_checked(&def, &[], &[]),
        "the template does not depend on the values"
    );
}

#[test]
fn render_out_replaces_earlier_files_and_keeps_modes() {
    let fixture = full_fixture();
    let out = tempfile::tempdir().unwrap();
    let vars = worker_env();
    let mut upload_dirs = Vec::new();
    for _ in 0..2 {
        render_out(fixture.path(), out.path(), &vars, &[]);
        let values: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join("variables.json")).unwrap(),
        )
        .unwrap();
        upload_dirs.push(values["upload_dir"].as_str().unwrap().to_string());
    }
    assert_eq!(mode(&out.path().join("uworker.conf")), 0o600);
    assert_ne!(
        upload_dirs[0], upload_dirs[1],
        "a new private directory per run"
    );
}

//! `matrix`: the targets as a GitHub Actions `strategy.matrix`, and `--needs-build`
//! against a real Keystone + Glance (tests/harness/openstack.sh).

use crate::common;

use common::openstack::*;
use common::*;

/// `uworker-image --dir DEF GLOBAL... matrix ARGS...`, which must succeed with one line
/// of JSON; returns the run and the targets in the matrix.
fn run_matrix(
    def: &std::path::Path,
    global: &[&str],
    args: &[&str],
    vars: &[(&str, &str)],
) -> (Run, Vec<String>) {
    let r = run_tool(def, &[global, &["matrix"], args].concat(), vars);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout.lines().count(), 1, "one line for GITHUB_OUTPUT");
    let parsed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let targets = parsed["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["target"].as_str().unwrap().to_string())
        .collect();
    (r, targets)
}

fn matrix(def: &std::path::Path, global: &[&str], vars: &[(&str, &str)]) -> (Run, Vec<String>) {
    run_matrix(def, global, &[], vars)
}

fn needs_build(def: &std::path::Path, vars: &[(&str, &str)]) -> (Run, Vec<String>) {
    run_matrix(def, &[], &["--needs-build"], vars)
}

#[test]
fn every_target_is_in_the_matrix() {
    let f = full_fixture();
    let (r, targets) = matrix(f.path(), &[], &[]);
    assert_eq!(targets, ["north", "south"]);
    snapshot_settings().bind(|| insta::assert_snapshot!("matrix_full", r.stdout));

    let (_, default) = matrix(&default_definition(), &[], &[]);
    assert_eq!(default, ["smog"]);
}

#[test]
fn target_narrows_the_matrix_to_one_existing_target() {
    let f = full_fixture();
    let (_, targets) = matrix(f.path(), &["--target", "south"], &[]);
    assert_eq!(targets, ["south"]);
    let (_, from_env) = matrix(f.path(), &[], &[("UWORKER_IMAGE_TARGET", "north")]);
    assert_eq!(from_env, ["north"]);
    // A workflow passes an empty dispatch input as an empty variable: that means unset.
    let empty = [
        ("UWORKER_IMAGE_TARGET", ""),
        ("UWORKER_IMAGE_NEEDS_BUILD", ""),
    ];
    let (r, all) = matrix(f.path(), &[], &empty);
    assert_eq!(all, ["north", "south"]);
    assert!(
        r.stderr.is_empty(),
        "no lookup without --needs-build: {}",
        r.stderr
    );

    let r = run_tool(f.path(), &["--target", "east", "matrix"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.is_empty(), "no matrix on bad input: {}", r.stdout);
    assert!(
        r.stderr.contains("image.toml")
            && r.stderr.contains("no target named `east`")
            && r.stderr.contains("north, south"),
        "{}",
        r.stderr
    );
}

#[test]
fn without_credentials_needs_build_says_it_cannot_look_and_keeps_every_target() {
    let f = full_fixture();
    let (r, targets) = needs_build(f.path(), &[]);
    assert_eq!(targets, ["north", "south"]);
    for target in ["north", "south"] {
        assert!(
            r.stderr.contains(&format!(
                "matrix: {target}: build (no OpenStack credentials"
            )) && r.stderr.contains("cannot look for an image"),
            "{}",
            r.stderr
        );
    }
    // -q keeps stderr for errors only; the matrix is unchanged.
    let quiet = run_tool(f.path(), &["-q", "matrix", "--needs-build"], &[]);
    assert_eq!(quiet.code, 0, "{}", quiet.all());
    assert_eq!(quiet.stdout, r.stdout);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

fn two_targets(name: &str) -> Fixture {
    let f = Fixture::new(&format!(
        "name = \"{name}\"\n\
         [target.hit]\nsource_image = \"base-hit\"\nflavor = \"f\"\n\
         [target.miss]\nsource_image = \"base-miss\"\nflavor = \"f\"\n\
         [[provision]]\nscript = \"s.sh\"\n"
    ));
    f.script("s.sh", "#!/bin/sh\necho hi\n");
    f
}

#[test]
fn needs_build_drops_a_target_whose_image_exists_and_keeps_a_missing_one() {
    let name = unique("matrix");
    let f = two_targets(&name);
    let vars = os_env("appcred");
    let vars = env_pairs(&vars);

    let (_, before) = needs_build(f.path(), &vars);
    assert_eq!(before, ["hit", "miss"], "no image yet: both need a build");

    let plan = run_tool(
        f.path(),
        &["--target", "hit", "--output", "json", "plan"],
        &vars,
    );
    assert_eq!(plan.code, 0, "{}", plan.all());
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let fingerprint = plan["fingerprint"].as_str().unwrap();
    let image = create_image(
        &cloud(),
        &format!("{name}-hit-1"),
        &[("uworker_fingerprint", fingerprint)],
        true,
    );
    assert_eq!(image.status, "active");

    let (r, after) = needs_build(f.path(), &vars);
    assert_eq!(after, ["miss"], "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "matrix: hit: skip (image {} already has this fingerprint)",
            image.id
        )) && r
            .stderr
            .contains("matrix: miss: build (no image has this fingerprint yet)"),
        "{}",
        r.stderr
    );

    // The flag reads its environment variable too; --target still narrows.
    let mut with_env = vars.clone();
    with_env.push(("UWORKER_IMAGE_NEEDS_BUILD", "true"));
    let (_, hit_only) = matrix(f.path(), &["--target", "hit"], &with_env);
    assert!(hit_only.is_empty(), "hit has its image: {hit_only:?}");
    let r = run_tool(f.path(), &["--target", "hit", "matrix"], &vars);
    assert_eq!(r.stdout.trim(), r#"{"include":[{"target":"hit"}]}"#);
}

#[test]
fn a_refused_login_fails_rather_than_building_everything() {
    let f = two_targets(&unique("matrix"));
    let mut vars = os_env("appcred");
    let wrong = "wrong 'secret' $x";
    vars.iter_mut()
        .find(|(k, _)| k == "OS_APPLICATION_CREDENTIAL_SECRET")
        .unwrap()
        .1 = wrong.into();
    let r = run_tool(f.path(), &["matrix", "--needs-build"], &env_pairs(&vars));
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.is_empty(), "no matrix: {}", r.stdout);
    assert!(
        r.stderr.contains("OS_APPLICATION_CREDENTIAL_SECRET") && !r.all().contains(wrong),
        "{}",
        r.stderr
    );
}

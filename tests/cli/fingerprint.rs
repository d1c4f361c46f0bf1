//! Fingerprint invariants (property tests over real files) and `plan`.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use proptest::prelude::*;

const DEF: &str = crate::definition_with_target_t!(
    "fp",
    r#"[variables]
flavor_hint = "small"
[[provision]]
script = "scripts/run.sh"
[[provision]]
file = "tree/"
destination = "/opt/tree"
[[provision]]
inline = ["echo test"]
only = "test"
"#
);

/// Writes the definition and `files` (relative path, content, executable) in the given order.
fn materialize(dir: &Path, files: &[(String, Vec<u8>, bool)]) {
    std::fs::write(dir.join("image.toml"), DEF).unwrap();
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/run.sh"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::create_dir_all(dir.join("tree")).unwrap();
    for (rel, content, exec) in files {
        let path = dir.join("tree").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let mode = if *exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn fingerprint(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> String {
    let r = run_tool(dir, &[args, &["fingerprint"]].concat(), vars);
    assert_eq!(r.code, 0, "{}", r.all());
    let last = r.stdout.lines().last().unwrap().to_string();
    assert!(last.starts_with("sha256:") && last.len() == 71, "{last}");
    last
}

fn file_strategy() -> impl Strategy<Value = Vec<(String, Vec<u8>, bool)>> {
    let name = "[a-z]{1,6}(/[a-z]{1,6}){0,2}";
    proptest::collection::btree_map(
        name,
        (
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<bool>(),
        ),
        1..6,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, (c, e))| (format!("{k}.f"), c, e))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Location, creation order and mtimes never change it.
    #[test]
    fn same_content_anywhere_same_fingerprint(files in file_strategy()) {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let nested = b.path().join("deeper/checkout");
        std::fs::create_dir_all(&nested).unwrap();
        materialize(a.path(), &files);
        let mut reversed = files.clone();
        reversed.reverse();
        materialize(&nested, &reversed);
        // A later mtime on every file of the second copy.
        std::thread::sleep(std::time::Duration::from_millis(10));
        for (rel, content, _) in &files {
            std::fs::write(nested.join("tree").join(rel), content).unwrap();
        }
        prop_assert_eq!(fingerprint(a.path(), &[], &[]), fingerprint(&nested, &[], &[]));
    }

    /// Content, exec bit and names all count.
    #[test]
    fn content_mode_and_name_changes_change_it(files in file_strategy(), which in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        materialize(dir.path(), &files);
        let before = fingerprint(dir.path(), &[], &[]);
        let (rel, content, exec) = &files[which.index(files.len())];
        let path = dir.path().join("tree").join(rel);

        let mut changed = content.clone();
        changed.push(b'!');
        std::fs::write(&path, &changed).unwrap();
        let after_content = fingerprint(dir.path(), &[], &[]);
        prop_assert_ne!(&before, &after_content);
        std::fs::write(&path, content).unwrap();

        let mode = if *exec { 0o644 } else { 0o755 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        prop_assert_ne!(&before, &fingerprint(dir.path(), &[], &[]));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(if *exec { 0o755 } else { 0o644 })).unwrap();
        prop_assert_eq!(&before, &fingerprint(dir.path(), &[], &[]), "restored");

        std::fs::rename(&path, path.with_extension("renamed")).unwrap();
        prop_assert_ne!(&before, &fingerprint(dir.path(), &[], &[]));
    }
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    materialize(
        dir.path(),
        &[
            ("a.txt".into(), b"a".to_vec(), false),
            ("sub/b.sh".into(), b"b".to_vec(), true),
        ],
    );
    dir
}

#[test]
fn variables_and_the_template_count_but_test_only_steps_do_not() {
    let dir = fixture();
    let base = fingerprint(dir.path(), &[], &[]);
    assert_ne!(
        base,
        fingerprint(dir.path(), &[], &["--var", "flavor_hint=large"])
    );
    assert_ne!(
        base,
        fingerprint(
            dir.path(),
            &[],
            &["--var", "openstack_free_floating_ip=192.0.2.1"]
        )
    );
    assert_eq!(
        base,
        fingerprint(dir.path(), &[], &["--var", "test_host=127.0.0.1:2222"]),
        "test host is not an input"
    );
    let toml = DEF.replace("echo test", "echo other test");
    std::fs::write(dir.path().join("image.toml"), toml).unwrap();
    assert_eq!(base, fingerprint(dir.path(), &[], &[]), "test-only step");
    let toml = DEF.replace("flavor = \"f\"", "flavor = \"g\"");
    std::fs::write(dir.path().join("image.toml"), toml).unwrap();
    assert_ne!(base, fingerprint(dir.path(), &[], &[]), "template");
}

#[test]
fn secret_values_count_only_through_the_key() {
    let dir = fixture();
    let mut vars = worker_env();
    let no_secrets = fingerprint(dir.path(), &[], &[]);
    assert_eq!(
        no_secrets,
        fingerprint(dir.path(), &vars, &[]),
        "names only: a fork PR matches"
    );
    vars[2] = ("UWORKER_JOB_API_PASSWORD", "rotated");
    assert_eq!(no_secrets, fingerprint(dir.path(), &vars, &[]));

    let key = (
        "UWORKER_FINGERPRINT_KEY",
        "0123456789abcdef0123456789abcdef-key",
    );
    let mut keyed = worker_env();
    keyed.push(key);
    let with_key = fingerprint(dir.path(), &keyed, &[]);
    assert_ne!(with_key, no_secrets);
    keyed[2] = ("UWORKER_JOB_API_PASSWORD", "rotated");
    assert_ne!(
        with_key,
        fingerprint(dir.path(), &keyed, &[]),
        "a rotated password rebuilds"
    );
    let other_key = [
        worker_env(),
        vec![(
            "UWORKER_FINGERPRINT_KEY",
            "another-32-byte-long-key-0123456789",
        )],
    ]
    .concat();
    assert_ne!(with_key, fingerprint(dir.path(), &other_key, &[]));

    // A `pass_through` key is declared too: a run without it (a fork PR) matches one with.
    let toml = format!("{DEF}[worker]\npass_through = [\"UWORKER_EXTRA\"]\n");
    std::fs::write(dir.path().join("image.toml"), toml).unwrap();
    let without = fingerprint(dir.path(), &[], &[]);
    assert_ne!(without, no_secrets, "the key's name counts");
    assert_eq!(
        without,
        fingerprint(dir.path(), &[("UWORKER_EXTRA", "x-1")], &[]),
        "names only: a run without the pass-through value matches one with it"
    );
}

#[test]
fn links_that_leave_the_definition_are_refused() {
    let dir = fixture();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("tree/escape")).unwrap();
    let r = run_tool(dir.path(), &["fingerprint"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("tree/escape links to") && r.stderr.contains(", outside "),
        "{}",
        r.stderr
    );
    std::fs::remove_file(dir.path().join("tree/escape")).unwrap();

    // A link inside the definition is followed; a loop is refused.
    let base = fingerprint(dir.path(), &[], &[]);
    std::os::unix::fs::symlink("a.txt", dir.path().join("tree/link.txt")).unwrap();
    assert_ne!(base, fingerprint(dir.path(), &[], &[]));
    std::os::unix::fs::symlink("..", dir.path().join("tree/sub/up")).unwrap();
    let r = run_tool(dir.path(), &["fingerprint"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("loops"), "{}", r.stderr);
}

#[test]
fn unreadable_files_are_named() {
    let dir = fixture();
    std::os::unix::fs::symlink("missing-target", dir.path().join("tree/dangling")).unwrap();
    let r = run_tool(dir.path(), &["fingerprint"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("tree/dangling"), "{}", r.stderr);
}

#[test]
fn explain_and_plan_text() {
    let dir = fixture();
    let explain = run_tool(dir.path(), &["fingerprint", "--explain"], &[]);
    assert_eq!(explain.code, 0, "{}", explain.all());
    let plan = run_tool(dir.path(), &["plan"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("fingerprint_explain", explain.stdout);
        insta::assert_snapshot!("plan_text_without_credentials", plan.stdout);
    });
}

#[test]
fn plan_json_and_changes_against_a_previous_run() {
    let dir = fixture();
    let first = run_tool(dir.path(), &["--output", "json", "plan"], &worker_env());
    assert_eq!(first.code, 0, "{}", first.all());
    let doc: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(doc["action"], "build");
    assert_eq!(doc["target"], "t");
    assert_eq!(doc["image_id"], serde_json::Value::Null);
    assert_eq!(doc["changes"], serde_json::Value::Null);
    assert!(doc["reason"]
        .as_str()
        .unwrap()
        .contains("no OpenStack credentials"));
    assert_eq!(
        doc["fingerprint"].as_str().unwrap(),
        fingerprint(dir.path(), &[], &[])
    );

    // --out writes the same record, for `report --record` in a later step.
    let out = dir.path().join("plan.json");
    let written = run_tool(
        dir.path(),
        &["plan", "--out", out.to_str().unwrap()],
        &worker_env(),
    );
    assert_eq!(written.code, 0, "{}", written.all());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(record, doc);

    let previous = dir.path().join("previous.json");
    std::fs::write(&previous, &first.stdout).unwrap();
    std::fs::write(dir.path().join("tree/a.txt"), "changed").unwrap();
    std::fs::write(dir.path().join("tree/new.txt"), "new").unwrap();
    std::fs::remove_file(dir.path().join("tree/sub/b.sh")).unwrap();
    let second = run_tool(
        dir.path(),
        &[
            "--output",
            "json",
            "--var",
            "flavor_hint=large",
            "plan",
            "--previous",
            previous.to_str().unwrap(),
        ],
        &worker_env(),
    );
    assert_eq!(second.code, 0, "{}", second.all());
    let doc: serde_json::Value = serde_json::from_str(&second.stdout).unwrap();
    assert_eq!(
        doc["changes"]["added"],
        serde_json::json!(["file tree/new.txt"])
    );
    assert_eq!(
        doc["changes"]["removed"],
        serde_json::json!(["file tree/sub/b.sh"])
    );
    assert_eq!(
        doc["changes"]["changed"],
        serde_json::json!(["file tree/a.txt", "variable flavor_hint"])
    );

    let text = run_tool(
        dir.path(),
        &["plan", "--previous", previous.to_str().unwrap()],
        &worker_env(),
    );
    assert!(
        text.stdout.contains("  changed  file tree/a.txt"),
        "{}",
        text.stdout
    );

    let same = run_tool(
        dir.path(),
        &["plan", "--force", "--previous", previous.to_str().unwrap()],
        &[],
    );
    assert!(same.stdout.contains("--force"), "{}", same.stdout);

    std::fs::write(&previous, "{\"not\": \"a manifest\"}").unwrap();
    let bad = run_tool(
        dir.path(),
        &["plan", "--previous", previous.to_str().unwrap()],
        &[],
    );
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(
        bad.stderr.contains("previous.json is not a manifest"),
        "{}",
        bad.stderr
    );
}

/// `[verify] checks` are what the image must pass: their content counts, as a step's
/// does, while the verification runs; the table's other settings shape no image.
#[test]
fn the_verifications_own_checks_count_and_its_settings_do_not() {
    let dir = fixture();
    let base = fingerprint(dir.path(), &[], &[]);
    let with = |table: &str| {
        std::fs::write(
            dir.path().join("image.toml"),
            format!("{DEF}[verify]\n{table}\n"),
        )
        .unwrap();
        fingerprint(dir.path(), &[], &[])
    };
    assert_eq!(base, with("timeout = \"5m\""), "settings");
    std::fs::create_dir_all(dir.path().join("verify")).unwrap();
    std::fs::write(dir.path().join("verify/x.sh"), "#!/bin/sh\ntrue\n").unwrap();
    let checked = with("checks = [\"verify/x.sh\"]");
    assert_ne!(base, checked, "a check script");
    std::fs::write(dir.path().join("verify/x.sh"), "#!/bin/sh\nfalse\n").unwrap();
    assert_ne!(checked, with("checks = [\"verify/x.sh\"]"), "its content");
    assert_eq!(
        base,
        with("enabled = false\nchecks = [\"verify/x.sh\"]"),
        "checks that never run"
    );
    std::fs::remove_file(dir.path().join("verify/x.sh")).unwrap();
    let r = run_tool(dir.path(), &["fingerprint"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("`verify/x.sh` cannot be read"),
        "{}",
        r.stderr
    );
}

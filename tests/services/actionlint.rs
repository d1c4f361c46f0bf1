//! The GitHub workflows through actionlint (which runs shellcheck on every `run:` block;
//! tests/services/shell_scripts.rs checks the script files): they pass, and the linter
//! finds the faults it should. The workflows' contents: tests/cli/workflows.rs.

use crate::common;

use std::process::Command;
use std::sync::OnceLock;

use common::*;

/// tests/harness/actionlint.sh (installs the pinned actionlint once, then runs it).
fn actionlint(args: &[&str]) -> Run {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let script = repo().join("tests/harness/actionlint.sh");
    INSTALLED.get_or_init(|| {
        let mut cmd = Command::new(&script);
        cmd.arg("--version");
        let r = run(cmd);
        assert_eq!(r.code, 0, "installing actionlint failed:\n{}", r.all());
    });
    let mut cmd = Command::new(&script);
    cmd.current_dir(repo())
        .args(["-no-color", "-shellcheck", "shellcheck"]);
    cmd.args(args);
    run(cmd)
}

#[test]
fn actionlint_passes_on_every_workflow() {
    let files = workflow_files();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ci.yml",
            "image.yml",
            "pipeline.yml",
            "release.yml",
            "sweep.yml"
        ]
    );
    let paths: Vec<_> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let r = actionlint(&paths);
    assert_eq!(r.code, 0, "actionlint:\n{}", r.all());
}

#[test]
fn actionlint_catches_a_bad_workflow_and_its_shell() {
    // The check above means something only if the linter finds faults: an unknown
    // input of the local action, a missing job output and an unquoted variable.
    let text = std::fs::read_to_string(repo().join(".github/workflows/pipeline.yml"))
        .unwrap()
        .replacen(
            "          packer-version: ''\n",
            "          packer-version: ''\n          bogus: x\n",
            1,
        )
        .replacen("needs.plan.outputs.matrix", "needs.plan.outputs.matrx", 1)
        .replacen("--record \"$record\"", "--record $record", 1);
    let dir = tempfile::tempdir_in(repo().join(".github")).unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, text).unwrap();
    let r = actionlint(&[bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.all());
    for fault in [
        r#"input "bogus" is not defined in action "uworker-image""#,
        r#"property "matrx" is not defined"#,
        "SC2086",
    ] {
        assert!(r.stdout.contains(fault), "no `{fault}` in:\n{}", r.all());
    }
}

/// The README's caller (tests/fixtures/workflows/caller.yml), calling this checkout's
/// pipeline.yml in place of a release of it, so actionlint checks its inputs and their
/// types against the reusable workflow's; and a caller with an input the pipeline lacks
/// is caught.
#[test]
fn actionlint_passes_on_the_readmes_caller_of_the_pipeline() {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/workflows/caller.yml")).unwrap();
    let released = "OWNER/uworker-image/.github/workflows/pipeline.yml@vX.Y.Z";
    assert!(text.contains(released));
    let local = text.replacen(released, "./.github/workflows/pipeline.yml", 1);
    let dir = tempfile::tempdir_in(repo().join(".github")).unwrap();
    let caller = dir.path().join("caller.yml");
    std::fs::write(&caller, &local).unwrap();
    let r = actionlint(&[caller.to_str().unwrap()]);
    assert_eq!(r.code, 0, "actionlint:\n{}", r.all());

    std::fs::write(
        &caller,
        local.replacen("      dir: provision\n", "      dirs: provision\n", 1),
    )
    .unwrap();
    let r = actionlint(&[caller.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains(r#"input "dirs" is not defined"#),
        "{}",
        r.all()
    );
}

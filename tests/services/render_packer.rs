//! Every template `render` writes passes the real `packer validate -syntax-only` (their
//! snapshots: tests/cli/render.rs): the default definition, every step kind with two
//! targets, and the default definition with the seed's variables.json as its var-file.

use crate::common;

use common::*;

/// `render` to stdout, checked by packer.
fn check_printed(def: &std::path::Path) {
    let printed = run_tool(def, &["render"], &[]);
    assert_eq!(printed.code, 0, "{}", printed.all());
    let template = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(template.path(), &printed.stdout).unwrap();
    packer_syntax_check(template.path(), None);
}

#[test]
fn the_default_definitions_template_passes_packer() {
    check_printed(&default_definition());
}

#[test]
fn every_step_kind_and_two_targets_pass_packer() {
    check_printed(full_fixture().path());
}

#[test]
fn the_seeds_var_file_renders_a_template_and_var_file_packer_takes() {
    let seed = seed_var_file();
    let out = tempfile::tempdir().unwrap();
    let var_file = seed.path().join("variables.json");
    render_out(
        &default_definition(),
        out.path(),
        &[],
        &["--var-file", var_file.to_str().unwrap()],
    );
    packer_syntax_check(
        &out.path().join("template.json"),
        Some(&out.path().join("variables.json")),
    );
}

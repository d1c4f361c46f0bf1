//! `--help` of the tool and of every command, as people read it: a snapshot each, so a
//! change to the clap definition shows in review.

use crate::common;

use std::process::Stdio;

use clap::CommandFactory;
use common::*;
use uworker_image::cli::Cli;

/// `uworker-image ARGS --help`: no terminal (clap's default width of 100 columns) and no
/// `UWORKER_IMAGE_*` value in the environment (help shows those).
fn help(args: &[&str]) -> String {
    let mut cmd = tool(&[]);
    cmd.env_remove("UWORKER_IMAGE_PACKER")
        .stdin(Stdio::null())
        .args(args)
        .arg("--help");
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        !r.stdout.contains(env!("CARGO_MANIFEST_DIR")),
        "machine-specific help:\n{}",
        r.stdout
    );
    r.stdout
}

#[test]
fn the_top_level_help() {
    let text = help(&[]);
    snapshot_settings().bind(|| insta::assert_snapshot!("help", text));
}

#[test]
fn every_commands_help() {
    let commands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(commands.len() > 5, "{commands:?}");
    for command in commands {
        let text = help(&[&command]);
        assert!(
            text.contains(&format!("Usage: uworker-image {command}")),
            "{text}"
        );
        snapshot_settings().bind(|| insta::assert_snapshot!(format!("help_{command}"), text));
    }
}

//! `completions SHELL` and `man`, generated from the clap definition: every command is
//! offered, as a shell would complete it.

use crate::common;

use clap::CommandFactory;
use common::*;
use uworker_image::cli::Cli;

/// The commands as the parser knows them, `help` aside.
fn commands() -> Vec<String> {
    let commands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(commands.len() > 5, "{commands:?}");
    commands
}

fn output_of(args: &[&str]) -> String {
    let mut cmd = tool(&[]);
    cmd.args(args);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout
}

/// What bash offers for `uworker-image WORDS<TAB>` with the generated script loaded.
fn bash_completes(script: &std::path::Path, words: &str) -> Vec<String> {
    let out = std::process::Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(
            r#"source "$1"
               COMP_LINE="uworker-image $2"; COMP_POINT=${#COMP_LINE}
               read -ra COMP_WORDS <<<"uworker-image $2"
               [ "${2: -1}" = " " ] || [ -z "$2" ] && COMP_WORDS+=("")
               COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
               func=$(complete -p uworker-image | sed -E 's/.*-F ([^ ]+).*/\1/')
               "$func" uworker-image "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
               printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(script)
        .arg(words)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completion_offers_every_command_and_the_global_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("uworker-image.bash");
    std::fs::write(&script, output_of(&["completions", "bash"])).unwrap();
    let offered = bash_completes(&script, "");
    for command in commands() {
        assert!(offered.contains(&command), "`{command}` not in {offered:?}");
    }
    let flags = bash_completes(&script, "plan --");
    for flag in ["--openrc", "--dir", "--output", "--force"] {
        assert!(flags.iter().any(|f| f == flag), "{flag} not in {flags:?}");
    }
}

#[test]
fn zsh_and_fish_completions_and_the_man_page_name_every_command() {
    let zsh = output_of(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef uworker-image"), "{zsh}");
    let fish = output_of(&["completions", "fish"]);
    let man = output_of(&["man"]);
    assert!(man.contains(".TH uworker-image 1"), "{man}");
    for command in commands() {
        assert!(zsh.contains(&format!("'{command}:")), "zsh lacks {command}");
        assert!(
            fish.contains(&format!("-a \"{command}\"")),
            "fish lacks {command}"
        );
        assert!(
            man.contains(&format!(
                "uworker\\-image\\-{}",
                command.replace('-', "\\-")
            )),
            "man page lacks {command}"
        );
    }
    assert!(man.contains("openrc"), "the man page lists the flags");
    let r = run_tool(std::path::Path::new("."), &["completions", "tcsh"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
}

#[test]
fn schema_prints_the_records_json_schema() {
    let printed: serde_json::Value = serde_json::from_str(&output_of(&["schema"])).unwrap();
    let derived = serde_json::to_value(uworker_image::record::json_schema()).unwrap();
    assert_eq!(printed, derived);
    assert_eq!(printed["title"], "Record");
    assert_eq!(
        printed["$defs"]["Action"]["oneOf"][1]["const"], "skip",
        "{printed:#}"
    );
}

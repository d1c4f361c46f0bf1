//! `completions SHELL` and `man`: generated from the same clap definition as the parser,
//! so they list every command and flag there is.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit::Code;

pub fn print_completions(shell: clap_complete::Shell) -> Result<Code> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    // Into memory first: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name.clone(), &mut script);
    if shell == clap_complete::Shell::Bash {
        script = fix_bash_states(&String::from_utf8_lossy(&script), &name).into_bytes();
    }
    super::print(&script)
}

/// clap_complete's bash script spells a hyphenated program's state one way where it
/// sets it (`uworker__image__subcmd__plan`) and another in the `case` arms that use it
/// (`uworker__subcmd__image__subcmd__plan`), so nothing after a command completes
/// (clap-rs/clap#6421, open). Spell the arms as the loop does.
fn fix_bash_states(script: &str, name: &str) -> String {
    if !name.contains('-') {
        return script.to_string();
    }
    script.replace(&name.replace('-', "__subcmd__"), &name.replace('-', "__"))
}

pub fn print_man_page() -> Result<Code> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    super::print(&page)
}

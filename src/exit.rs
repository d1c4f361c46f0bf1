//! Exit codes: each error type says its own (`Coded`, an exhaustive match beside the
//! type). Which code ends a command is decided at the top (`cli::causes::classify`), the one
//! place that looks at error types; this module imports nothing of the crate, so every
//! module may use it. The table `--help` and the README show comes from `Code::ALL`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    Failed = 1,
    BadInput = 2,
    External = 3,
    Interrupted = 130,
}

impl Code {
    pub const ALL: [Code; 5] = [
        Code::Ok,
        Code::Failed,
        Code::BadInput,
        Code::External,
        Code::Interrupted,
    ];

    /// What the code tells a caller.
    pub fn meaning(self) -> &'static str {
        match self {
            Code::Ok => "ok (built or skipped)",
            Code::Failed => "build or validation failure",
            Code::BadInput => "bad input or config",
            Code::External => "external service failure after retries",
            Code::Interrupted => "interrupted (SIGINT, SIGTERM)",
        }
    }
}

impl From<Code> for std::process::ExitCode {
    fn from(code: Code) -> std::process::ExitCode {
        std::process::ExitCode::from(code as u8)
    }
}

/// The exit code table, as `--help` ends and the README shows it.
pub fn table() -> String {
    let mut text = String::from("Exit codes:\n");
    for code in Code::ALL {
        text.push_str(&format!("  {:<3}  {}\n", code as u8, code.meaning()));
    }
    text
}

/// An error that knows the exit code it ends a command with.
pub trait Coded {
    fn code(&self) -> Code;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_code_once_and_the_readme_shows_it() {
        let table = table();
        for code in Code::ALL {
            let line = format!("  {:<3}  {}\n", code as u8, code.meaning());
            assert_eq!(table.matches(&line).count(), 1, "{table}");
        }
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        assert!(
            readme.contains(&table),
            "README.md must show the exit code table as `--help` does:\n{table}"
        );
    }
}

//! Exit codes: each error type says its own (`Coded`, an exhaustive match beside the
//! type), and the code of an error that ended a command is the first its chain of causes
//! has. The table `--help` and the README show comes from `Code::ALL`.

use crate::definition::tree::TreeError;
use crate::definition::DefinitionError;
use crate::fingerprint::FingerprintError;
use crate::github::GitHubError;
use crate::inputs::InputError;
use crate::jobapi::JobApiError;
use crate::openstack::client::OpenStackError;
use crate::openstack::clouds::CloudsError;
use crate::openstack::openrc::OpenRcError;
use crate::packer::PackerError;
use crate::report::ReportError;
use crate::seed::SeedError;

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

/// `code_of` tries each error type on a cause; `CODED` names them for the test that
/// every error type of the crate is among them.
macro_rules! coded_errors {
    ($($error:ty),* $(,)?) => {
        fn code_of(cause: &(dyn std::error::Error + 'static)) -> Option<Code> {
            $(
                if let Some(error) = cause.downcast_ref::<$error>() {
                    return Some(error.code());
                }
            )*
            None
        }

        #[cfg(test)]
        const CODED: &[&str] = &[$(stringify!($error)),*];
    };
}

coded_errors!(
    DefinitionError,
    TreeError,
    InputError,
    SeedError,
    FingerprintError,
    CloudsError,
    OpenRcError,
    OpenStackError,
    PackerError,
    GitHubError,
    JobApiError,
    ReportError,
    crate::commands::CommandError,
);

/// The exit code for an error that ended a command: the first cause that has one (the
/// outermost error is the most specific), else 1.
pub fn classify(error: &anyhow::Error) -> Code {
    error.chain().find_map(code_of).unwrap_or(Code::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Error types that never leave their module: their text is folded into another
    /// error's message there.
    const INTERNAL: &[&str] = &["WordError", "ValueError", "TransportError"];

    /// Every `enum ...Error` in src/, whatever its visibility and derives.
    fn error_types_in_src() -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                    let mut words = line.split_whitespace();
                    if words.any(|word| word == "enum") {
                        let name = words.next().unwrap_or_default();
                        let name = name.split(['<', '{']).next().unwrap_or_default();
                        if name.ends_with("Error") {
                            found.push(name.to_string());
                        }
                    }
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn every_error_type_of_the_crate_has_its_exit_code_read() {
        let coded: Vec<&str> = CODED
            .iter()
            .map(|path| path.rsplit("::").next().unwrap().trim())
            .collect();
        let missing: Vec<String> = error_types_in_src()
            .into_iter()
            .filter(|name| !coded.contains(&name.as_str()) && !INTERNAL.contains(&name.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "add {missing:?} to `coded_errors!` in src/exit.rs (with `impl Coded`), or to INTERNAL if it never leaves its module"
        );
        let scanned = error_types_in_src();
        for known in ["CommandError", "InputError", "TreeError", "WordError"] {
            assert!(
                scanned.iter().any(|n| n == known),
                "the scan missed {known}: {scanned:?}"
            );
        }
    }

    #[test]
    fn the_outermost_cause_with_a_code_decides() {
        let packer = anyhow::Error::new(PackerError::NotFound {
            program: "packer".into(),
        });
        assert_eq!(classify(&packer), Code::BadInput);
        let wrapped = packer.context("while building");
        assert_eq!(classify(&wrapped), Code::BadInput);
        let plugin = anyhow::Error::new(PackerError::Plugin {
            version: "1.9.0".into(),
        });
        assert_eq!(classify(&plugin), Code::External);
        assert_eq!(classify(&anyhow::anyhow!("no type")), Code::Failed);
        assert_eq!(
            classify(&anyhow::Error::new(OpenRcError::Interrupted)),
            Code::Interrupted
        );
    }

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

//! What the top reads from the chain of causes of an error that ended a command: its
//! exit code (the first a cause has) and the definition line it points at. Only here
//! does the tool look at error types (ripgrep's `main` is the model): each module's
//! error says its own code (`exit::Coded`, beside the type), and this list tries them on
//! each cause. It may name any module's error, since nothing below `cli` imports it.

use crate::commands::{CommandError, CopySourceError};
use crate::definition::tree::TreeError;
use std::path::Path;

use crate::definition::DefinitionError;
use crate::error_chain::Chain;
use crate::exit::{Code, Coded as _};
use crate::fingerprint::FingerprintError;
use crate::github::GitHubError;
use crate::inputs::InputError;
use crate::jobapi::JobApiError;
use crate::lifecycle::LifecycleError;
use crate::openstack::client::OpenStackError;
use crate::openstack::clouds::CloudsError;
use crate::openstack::image_copy::CopyError;
use crate::openstack::openrc::OpenRcError;
use crate::packer::PackerError;
use crate::pin::PinError;
use crate::report::ReportError;
use crate::run_key::RunKeyError;
use crate::sbom::SbomError;
use crate::seed::SeedError;
use crate::verify::ssh::SshError;

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
    CopyError,
    PackerError,
    PinError,
    GitHubError,
    JobApiError,
    ReportError,
    RunKeyError,
    LifecycleError,
    SshError,
    SbomError,
    CommandError,
    CopySourceError,
);

/// The exit code for an error that ended a command: the first cause that has one (the
/// outermost error is the most specific), else 1.
pub fn classify(error: &anyhow::Error) -> Code {
    error.chain().find_map(code_of).unwrap_or(Code::Failed)
}

/// The definition error among the causes that points at a line of a file: the file,
/// the line and its message, for CI to annotate.
pub fn definition_line(error: &anyhow::Error) -> Option<(&Path, Option<usize>, String)> {
    let definition = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<DefinitionError>())?;
    let (path, line) = definition.location()?;
    Some((path, line, Chain(definition).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Error types that are only ever folded into, or the `#[source]` of, an error of
    /// the list, which gives the code.
    const INTERNAL: &[&str] = &["WordError", "ValueError", "TransportError", "SnapshotError"];

    /// Every file under src/, with its text.
    fn src_files() -> Vec<(std::path::PathBuf, String)> {
        let mut files = Vec::new();
        let mut pending = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let text = std::fs::read_to_string(&path).unwrap();
                    files.push((path, text));
                }
            }
        }
        files
    }

    /// Every `enum ...Error` and `struct ...Error` in src/, whatever its visibility and
    /// derives.
    fn error_types_in_src() -> Vec<String> {
        let mut found = Vec::new();
        for (_, text) in src_files() {
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                let mut words = line.split_whitespace();
                if words.any(|word| word == "enum" || word == "struct") {
                    let name = words.next().unwrap_or_default();
                    let name = name.split(['<', '{', '(']).next().unwrap_or_default();
                    if name.ends_with("Error") {
                        found.push(name.to_string());
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
            "add {missing:?} to `coded_errors!` in src/cli/causes.rs (with `impl Coded`), or to INTERNAL if it never leaves its module"
        );
        let scanned = error_types_in_src();
        for known in ["CommandError", "InputError", "TreeError", "WordError"] {
            assert!(
                scanned.iter().any(|n| n == known),
                "the scan missed {known}: {scanned:?}"
            );
        }
    }

    /// The `#[source]` (or `#[from]`, or `source`) field of each variant after `#[error`
    /// at `lines[at]`; "0" for a tuple variant's.
    fn source_fields(lines: &[&str], at: usize) -> Vec<String> {
        let mut fields = Vec::new();
        let mut marked = false;
        for line in lines[at + 1..].iter().map(|l| l.trim()) {
            if line.starts_with("#[error") {
                break;
            }
            if line.contains("(#[source]") || line.contains("(#[from]") {
                fields.push("0".to_string());
            }
            let field = line.split(':').next().unwrap_or_default().trim();
            if marked || field == "source" {
                fields.push(field.to_string());
            }
            marked = line == "#[source]" || line == "#[from]";
            if line.ends_with("},") || line.ends_with("),") || line == "}" {
                break;
            }
        }
        fields
    }

    /// One way to fail: a cause is the error's `#[source]`, printed once by the chain,
    /// never also in the error's own message.
    #[test]
    fn no_error_message_repeats_its_source() {
        let mut offenders = Vec::new();
        let mut checked = 0;
        for (path, text) in src_files() {
            let lines: Vec<&str> = text.lines().collect();
            for (at, line) in lines.iter().enumerate() {
                if !line.trim_start().starts_with("#[error(") {
                    continue;
                }
                // The attribute, over as many lines as it takes.
                let end = (at..lines.len())
                    .find(|&i| lines[i].trim_end().ends_with(")]"))
                    .unwrap_or(at);
                let line = lines[at..=end].join(" ");
                for field in source_fields(&lines, end) {
                    checked += 1;
                    let shown = [
                        format!("{{{field}}}"),
                        format!("{{{field}:"),
                        format!(".{field}"),
                    ];
                    if shown.iter().any(|s| line.contains(s.as_str())) {
                        offenders.push(format!("{}:{}", path.display(), at + 1));
                    }
                }
            }
        }
        assert!(checked > 20, "the scan found only {checked} sources");
        assert!(
            offenders.is_empty(),
            "these messages show their #[source]; leave it to the chain: {offenders:?}"
        );
    }

    /// CI's annotation names the definition's file and line, with the whole chain.
    #[test]
    fn a_definition_error_anywhere_in_the_chain_gives_its_line() {
        let error = anyhow::Error::new(DefinitionError::StepFileMissing {
            path: "image.toml".into(),
            line: 5,
            source_path: "scripts/a.sh".into(),
            dir: "/def".into(),
            error: std::io::Error::other("gone"),
        })
        .context("loading the definition");
        let (path, line, message) = definition_line(&error).unwrap();
        assert_eq!((path, line), (Path::new("image.toml"), Some(5)));
        assert_eq!(
            message,
            "image.toml:5: `scripts/a.sh` cannot be read (paths are relative to /def): gone"
        );
        assert!(definition_line(&anyhow::anyhow!("no definition")).is_none());
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
}

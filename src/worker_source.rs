//! `worker_source`, what pip installs as the worker: a pip requirement (passed on as it
//! is), or a source directory or package file inside the definition directory. A local
//! source is uploaded by a step the tool adds before the first step that uses the
//! variable, the variable then names the uploaded copy, and the content enters the
//! fingerprint as every uploaded file does.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use crate::definition::{Definition, Step, StepKind};
use crate::vars;

/// The definition variable this module gives meaning to.
pub const VARIABLE: &str = "worker_source";

/// Where a local source lands on the host: a directory's content, or the directory
/// holding a package file (pip reads a wheel's name, so the file keeps its own).
pub const REMOTE_DIR: &str = "/tmp/uworker-worker-source";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerSource {
    /// A pip requirement: `git+https://...`, `name==1.0`, or a path on the host itself.
    Requirement(String),
    /// A source directory (with setup.py or pyproject.toml), relative to the definition.
    Directory(String),
    /// A wheel or sdist file, relative to the definition.
    File(String),
}

impl WorkerSource {
    /// What pip installs on the host.
    pub fn remote(&self) -> String {
        match self {
            WorkerSource::Requirement(requirement) => requirement.clone(),
            WorkerSource::Directory(_) => REMOTE_DIR.to_string(),
            WorkerSource::File(path) => format!("{REMOTE_DIR}/{}", file_name(path)),
        }
    }

    /// The steps that bring a local source to the host: an empty REMOTE_DIR (packer
    /// uploads into existing directories only; a leftover copy would mix with the new
    /// one), then the upload into it.
    fn upload(&self) -> Option<[StepKind; 2]> {
        let upload = match self {
            WorkerSource::Requirement(_) => return None,
            WorkerSource::Directory(path) => StepKind::Upload {
                // A trailing `/` uploads the directory's content into the destination.
                source: format!("{}/", path.trim_end_matches('/')),
                destination: REMOTE_DIR.to_string(),
            },
            WorkerSource::File(path) => StepKind::Upload {
                source: path.clone(),
                destination: self.remote(),
            },
        };
        let prepare = StepKind::Inline(vec![
            format!("rm -rf {REMOTE_DIR}"),
            format!("mkdir -m 0700 {REMOTE_DIR}"),
        ]);
        Some([prepare, upload])
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Package file endings pip installs from.
const PACKAGE_SUFFIXES: [&str; 4] = [".whl", ".tar.gz", ".zip", ".tar.bz2"];

/// What `value` names, judged against the definition directory `dir`. A relative path
/// that exists there is local; a value written as a local path (`./x`, `x.whl`) that
/// does not exist is an error rather than a pip requirement that fails on the host.
pub fn classify(dir: &Path, value: &str) -> Result<WorkerSource, String> {
    let requirement = || Ok(WorkerSource::Requirement(value.to_string()));
    if value.trim().is_empty() {
        return Err(
            "is empty: give a pip requirement or a path inside the definition directory".into(),
        );
    }
    if value.contains("://") || value.starts_with('/') || value.contains(char::is_whitespace) {
        return requirement();
    }
    let path = Path::new(value);
    let looks_local = value.starts_with("./")
        || value.starts_with("../")
        || PACKAGE_SUFFIXES.iter().any(|s| value.ends_with(s));
    let meta = match std::fs::metadata(dir.join(path)) {
        Ok(meta) => meta,
        Err(_) if looks_local => {
            return Err(format!(
                "looks like a local path but nothing exists at {}: paths are relative to the definition directory",
                dir.join(path).display()
            ))
        }
        Err(_) => return requirement(),
    };
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(
            "leaves the definition directory (`..`): copy the worker source into it".into(),
        );
    }
    let relative = value.trim_start_matches("./").to_string();
    if meta.is_dir() {
        Ok(WorkerSource::Directory(relative))
    } else if meta.is_file() {
        Ok(WorkerSource::File(relative))
    } else {
        Err("is neither a file nor a directory".into())
    }
}

/// Wires a local source in (pure): upload steps before the first step that references
/// `{{user `worker_source`}}` (on the same builders), and the variable's value and default
/// set to the uploaded copy. A requirement changes nothing; nor does a local source that
/// no step uses.
pub fn wire(
    definition: &mut Definition,
    values: &mut BTreeMap<String, String>,
    source: &WorkerSource,
) {
    let Some(steps) = source.upload() else {
        return;
    };
    let Some(index) = definition.steps.iter().position(|step| {
        step.texts()
            .iter()
            .any(|text| vars::references_variable(text, VARIABLE))
    }) else {
        return;
    };
    let (only, line) = (definition.steps[index].only, definition.steps[index].line);
    let steps = steps.into_iter().map(|kind| Step {
        kind,
        environment: BTreeMap::new(),
        sudo: false,
        only,
        line,
    });
    definition.steps.splice(index..index, steps);
    let remote = source.remote();
    definition
        .variables
        .insert(VARIABLE.to_string(), remote.clone());
    values.insert(VARIABLE.to_string(), remote);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Only;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("worker/pkg")).unwrap();
        std::fs::write(dir.path().join("worker/setup.py"), "").unwrap();
        std::fs::write(dir.path().join("w-1.0-py3-none-any.whl"), "zip").unwrap();
        dir
    }

    #[test]
    fn existing_relative_paths_are_local_and_everything_else_a_requirement() {
        let dir = tree();
        let d = dir.path();
        let git = "git+https://github.com/Odin-SMR/molflow-microq-worker.git#subdirectory=src";
        assert_eq!(classify(d, git), Ok(WorkerSource::Requirement(git.into())));
        assert_eq!(
            classify(d, "requests==2.32.3"),
            Ok(WorkerSource::Requirement("requests==2.32.3".into()))
        );
        assert_eq!(
            classify(d, "/opt/on-the-host.whl"),
            Ok(WorkerSource::Requirement("/opt/on-the-host.whl".into())),
            "absolute paths name files on the host"
        );
        assert_eq!(
            classify(d, "worker"),
            Ok(WorkerSource::Directory("worker".into()))
        );
        assert_eq!(
            classify(d, "./worker/"),
            Ok(WorkerSource::Directory("worker/".into()))
        );
        assert_eq!(
            classify(d, "w-1.0-py3-none-any.whl"),
            Ok(WorkerSource::File("w-1.0-py3-none-any.whl".into()))
        );
    }

    #[test]
    fn local_looking_paths_must_exist_and_stay_inside() {
        let dir = tree();
        let d = dir.path();
        let err = classify(d, "./missing").unwrap_err();
        assert!(err.contains("nothing exists at"), "{err}");
        let err = classify(d, "missing-1.0.whl").unwrap_err();
        assert!(err.contains("nothing exists at"), "{err}");
        let err = classify(&d.join("worker"), "../worker").unwrap_err();
        assert!(err.contains("leaves the definition directory"), "{err}");
        assert!(classify(d, " ").is_err());
    }

    fn definition() -> Definition {
        let text = r#"
name = "img"
[variables]
worker_source = "worker"
[target.a]
source_image = "id"
flavor = "f"
[[provision]]
script = "base.sh"
[[provision]]
inline = ["pip install {{user `worker_source`}}"]
only = "test"
"#;
        Definition::parse(text, Path::new("/d"), Path::new("/d/image.toml")).unwrap()
    }

    #[test]
    fn a_local_directory_is_uploaded_right_before_its_first_use() {
        let mut def = definition();
        let mut values = def.variables.clone();
        wire(
            &mut def,
            &mut values,
            &WorkerSource::Directory("worker".into()),
        );
        assert_eq!(def.steps.len(), 4);
        assert_eq!(
            def.steps[1].kind,
            StepKind::Inline(vec![
                format!("rm -rf {REMOTE_DIR}"),
                format!("mkdir -m 0700 {REMOTE_DIR}")
            ])
        );
        let upload = &def.steps[2];
        assert_eq!(
            upload.kind,
            StepKind::Upload {
                source: "worker/".into(),
                destination: REMOTE_DIR.into()
            }
        );
        assert_eq!(upload.only, Some(Only::Test), "on the builders that use it");
        assert_eq!(
            upload.local_sources(),
            Some("worker/"),
            "so it is fingerprinted"
        );
        assert_eq!(values[VARIABLE], REMOTE_DIR);
        assert_eq!(def.variables[VARIABLE], REMOTE_DIR);
    }

    #[test]
    fn a_package_file_keeps_its_name_and_a_requirement_changes_nothing() {
        let mut def = definition();
        let mut values = def.variables.clone();
        let wheel = WorkerSource::File("dist/w-1.0-py3-none-any.whl".into());
        wire(&mut def, &mut values, &wheel);
        assert_eq!(
            values[VARIABLE],
            format!("{REMOTE_DIR}/w-1.0-py3-none-any.whl")
        );

        let original = definition();
        let mut def = original.clone();
        let mut values = def.variables.clone();
        wire(
            &mut def,
            &mut values,
            &WorkerSource::Requirement("x==1".into()),
        );
        assert_eq!(def, original);
        assert_eq!(values, original.variables);
    }
}

//! `worker_source`, what pip installs as the worker: a pip requirement (passed on as it
//! is), or a local source directory or package file. A local source is read once into a
//! private copy (`snapshot`), uploaded by a step the tool adds before the first step that
//! uses the variable; the variable then names the uploaded copy, and the copy's content
//! enters the fingerprint. A relative path is looked up in the definition directory; an
//! absolute one, or one with `..`, may name a source anywhere on this machine.

pub mod snapshot;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub use snapshot::Snapshot;

use crate::definition::{Definition, Step, StepKind};
use crate::vars;

/// The definition variable this module gives meaning to.
pub const VARIABLE: &str = "worker_source";

/// Where a local source lands on the host: a directory's content, or the directory
/// holding a package file (pip reads a wheel's name, so the file keeps its own).
pub const REMOTE_DIR: &str = "/tmp/uworker-worker-source";

/// How the files of a local source are named in the manifest: by their path inside the
/// source, so its location (in the definition or anywhere else) does not count.
pub const MANIFEST_PREFIX: &str = "worker_source:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerSource {
    /// A pip requirement: `git+https://...`, `name==1.0`, `name @ URL`.
    Requirement(String),
    /// A source directory (with setup.py or pyproject.toml), relative to the definition.
    Directory(String),
    /// A wheel or sdist file, relative to the definition.
    File(String),
    /// A source directory outside the definition (canonical path).
    OutsideDirectory(PathBuf),
    /// A package file outside the definition (canonical path).
    OutsideFile(PathBuf),
}

impl WorkerSource {
    /// What pip installs on the host.
    pub fn remote(&self) -> String {
        match self {
            WorkerSource::Requirement(requirement) => requirement.clone(),
            WorkerSource::Directory(_) | WorkerSource::OutsideDirectory(_) => {
                REMOTE_DIR.to_string()
            }
            WorkerSource::File(path) => format!("{REMOTE_DIR}/{}", file_name(path)),
            WorkerSource::OutsideFile(path) => format!("{REMOTE_DIR}/{}", outside_name(path)),
        }
    }

    /// Where a local source is on this machine, relative paths resolved against the
    /// definition directory `dir`: the walk's root (files inside the definition follow
    /// its link rules, outside ones their own directory's) and the path under it.
    fn location(&self, dir: &Path) -> Option<(PathBuf, String)> {
        match self {
            WorkerSource::Requirement(_) => None,
            WorkerSource::Directory(path) | WorkerSource::File(path) => Some((
                dir.to_path_buf(),
                path.trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string(),
            )),
            WorkerSource::OutsideDirectory(path) => Some((path.clone(), String::new())),
            WorkerSource::OutsideFile(path) => Some((
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                outside_name(path),
            )),
        }
    }

    /// The name a package file keeps on the host (pip reads a wheel's name); None for a
    /// directory, whose content is uploaded.
    fn package_name(&self) -> Option<String> {
        match self {
            WorkerSource::File(path) => Some(file_name(path).to_string()),
            WorkerSource::OutsideFile(path) => Some(outside_name(path)),
            _ => None,
        }
    }

    /// The steps that bring a local source's copy to the host: an empty REMOTE_DIR (packer
    /// uploads into existing directories only; a leftover copy would mix with the new
    /// one), then the upload into it.
    fn upload(&self) -> Option<[StepKind; 2]> {
        if matches!(self, WorkerSource::Requirement(_)) {
            return None;
        }
        let upload = StepKind::UploadWorkerSource {
            source: self.package_name().unwrap_or_default(),
            destination: self.remote(),
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

fn outside_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Package file endings pip installs from.
const PACKAGE_SUFFIXES: [&str; 4] = [".whl", ".tar.gz", ".zip", ".tar.bz2"];

/// What `value` names, judged against the definition directory `dir`. A path that
/// exists is local, wherever it is; a value written as a path (`/x`, `./x`, `x.whl`)
/// that does not exist is an error, and so is anything else that is not a pip
/// requirement: both would only fail on the host, late. The files of a local source are
/// walked once, by `Snapshot::take`, which checks the path rules.
pub fn classify(dir: &Path, value: &str) -> Result<WorkerSource, String> {
    if value.trim().is_empty() {
        return Err(
            "is empty: give a pip requirement or the path of a worker source directory or package file".into(),
        );
    }
    let path = Path::new(value);
    let written_as_path = path.is_absolute()
        || value.starts_with("./")
        || value.starts_with("../")
        || value.starts_with('~')
        || PACKAGE_SUFFIXES.iter().any(|s| value.ends_with(s));
    let full = dir.join(path);
    match std::fs::metadata(&full) {
        Ok(meta) if !value.contains("://") => local(dir, value, &full, &meta),
        Err(_) if written_as_path && !value.contains("://") => Err(format!(
            "looks like a local path but nothing exists at {}: relative paths are relative to the definition directory",
            full.display()
        )),
        _ => {
            check_requirement(value)?;
            check_credentials(value)?;
            Ok(WorkerSource::Requirement(value.to_string()))
        }
    }
}

/// Credentials in a URL reach the host's git through a private file (35-worker.sh), as a
/// `user:TOKEN` pair (git's credential store ignores a token without a user); pip has no
/// such way for its own downloads and would be given them in its arguments. An ssh URL's
/// user (`git+ssh://git@host`) is no secret and stays in the URL. Never quotes the value.
fn check_credentials(value: &str) -> Result<(), String> {
    for url in crate::userinfo::urls(value) {
        let Some(credential) = url.credential() else {
            continue;
        };
        let scheme = url.scheme;
        match scheme {
            "git+http" | "git+https" if credential.contains(':') => {}
            "git+http" | "git+https" => {
                return Err(format!(
                    "has a `{scheme}://` URL with a token but no user: write `USER:TOKEN@` (for a GitHub token, `x-access-token:TOKEN@`): git's credential store takes only a user and password pair"
                ))
            }
            _ => {
                return Err(format!(
                    "has credentials in a `{scheme}://` URL: they work in `git+https://` URLs only (git then reads them from a private file on the host; pip, or ssh, would get them on a command line)"
                ))
            }
        }
    }
    Ok(())
}

fn local(
    dir: &Path,
    value: &str,
    full: &Path,
    meta: &std::fs::Metadata,
) -> Result<WorkerSource, String> {
    if !meta.is_dir() && !meta.is_file() {
        return Err(format!(
            "{} is neither a file nor a directory",
            full.display()
        ));
    }
    let canonical_dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let canonical = full
        .canonicalize()
        .map_err(|e| format!("{}: {e}", full.display()))?;
    // Written inside the definition (`worker`, `./dist/w.whl`): the definition's rules,
    // so a link inside it that leads out is refused like any other.
    let written_inside = !Path::new(value).is_absolute()
        && !Path::new(value)
            .components()
            .any(|c| matches!(c, Component::ParentDir));
    if written_inside {
        let relative = value.trim_start_matches("./").to_string();
        return Ok(if meta.is_dir() {
            WorkerSource::Directory(relative)
        } else {
            WorkerSource::File(relative)
        });
    }
    if let Ok(inside) = canonical.strip_prefix(&canonical_dir) {
        let relative = inside.to_string_lossy().into_owned();
        if !relative.is_empty() {
            return Ok(if meta.is_dir() {
                WorkerSource::Directory(relative)
            } else {
                WorkerSource::File(relative)
            });
        }
    }
    Ok(if meta.is_dir() {
        WorkerSource::OutsideDirectory(canonical)
    } else {
        WorkerSource::OutsideFile(canonical)
    })
}

/// A pip requirement as PEP 508 writes one: `name[extras] specifiers ; marker`,
/// `name @ URL`, or a URL alone (`git+https://...`, `https://.../w.whl`).
pub fn check_requirement(value: &str) -> Result<(), String> {
    let refuse = || {
        Err("is neither an existing local path nor a pip requirement (`name==1.0`, `name @ URL`, `git+https://HOST/REPO`)".to_string())
    };
    let (requirement, marker) = match value.split_once(';') {
        Some((r, m)) => (r.trim(), Some(m.trim())),
        None => (value.trim(), None),
    };
    if marker == Some("") || requirement.is_empty() {
        return refuse();
    }
    if is_url(requirement) {
        return Ok(());
    }
    let (spec, url) = match requirement.split_once('@') {
        Some((spec, url)) => (spec.trim(), Some(url.trim())),
        None => (requirement, None),
    };
    if url.is_some_and(|u| !is_url(u)) {
        return refuse();
    }
    let (name, rest) = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map_or((spec, ""), |at| spec.split_at(at));
    if !is_package_name(name) {
        return refuse();
    }
    let mut rest = rest.trim_start();
    if let Some(extras) = rest.strip_prefix('[') {
        let Some((extras, after)) = extras.split_once(']') else {
            return refuse();
        };
        if !extras.split(',').all(|e| is_package_name(e.trim())) {
            return refuse();
        }
        rest = after.trim_start();
    }
    if url.is_some() && !rest.is_empty() {
        return refuse();
    }
    let rest = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(rest)
        .trim();
    if rest.is_empty() || rest.split(',').all(|s| is_version_specifier(s.trim())) {
        Ok(())
    } else {
        refuse()
    }
}

fn is_package_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    matches!((bytes.first(), bytes.last()), (Some(a), Some(z)) if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_version_specifier(spec: &str) -> bool {
    let operators = ["===", "==", "!=", "<=", ">=", "~=", "<", ">"];
    let Some(version) = operators.iter().find_map(|op| spec.strip_prefix(op)) else {
        return false;
    };
    let version = version.trim();
    !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '+' | '!' | '_' | '-'))
}

/// `scheme://rest` with a scheme pip or its VCS support knows, and no whitespace.
fn is_url(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let transport = scheme.rsplit('+').next().unwrap_or(scheme);
    let vcs = scheme.split_once('+').map(|(vcs, _)| vcs);
    matches!(transport, "https" | "http" | "ssh" | "git" | "file")
        && vcs.is_none_or(|v| matches!(v, "git" | "hg" | "svn" | "bzr"))
        && !rest.is_empty()
        && !text.chars().any(char::is_whitespace)
}

/// Wires a local source read from `source_dir` in (pure): upload steps before the first
/// step that references `{{user `worker_source`}}` (on the same builders), and the
/// variable's value and default set to the uploaded copy. A requirement changes nothing;
/// nor does a local source that no step uses.
pub fn wire(
    definition: &mut Definition,
    values: &mut BTreeMap<String, String>,
    source: &WorkerSource,
    source_dir: &Path,
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
    definition.worker_source_dir = Some(source_dir.to_path_buf());
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

    #[test]
    fn url_credentials_are_taken_only_as_git_can_read_them() {
        let ok = [
            "git+https://x-access-token:T0k@github.com/o/w.git#subdirectory=src",
            "git+ssh://git@github.com/o/w.git",
            "uworker @ git+https://u:p@h/w.git",
            "https://pypi.example/w-1.0.tar.gz",
        ];
        for value in ok {
            assert_eq!(check_credentials(value), Ok(()), "{value}");
        }
        let refused = [
            ("https://u:T0k@h/w-1.0.tar.gz", "`git+https://` URLs only"),
            ("git+https://T0k@github.com/o/w.git", "no user"),
            (
                "git+ssh://git:T0k@github.com/o/w.git",
                "in a `git+ssh://` URL",
            ),
            ("hg+https://T0k@h/w", "in a `hg+https://` URL"),
        ];
        for (value, said) in refused {
            let error = check_credentials(value).unwrap_err();
            assert!(error.contains(said), "{value}: {error}");
            assert!(!error.contains("T0k"), "{error}");
        }
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("worker/pkg")).unwrap();
        std::fs::write(dir.path().join("worker/setup.py"), "").unwrap();
        std::fs::write(dir.path().join("w-1.0-py3-none-any.whl"), "zip").unwrap();
        dir
    }

    #[test]
    fn existing_paths_are_local_and_everything_else_a_requirement() {
        let dir = tree();
        let d = dir.path();
        let git = "git+https://github.com/Odin-SMR/molflow-microq-worker.git#subdirectory=src";
        assert_eq!(classify(d, git), Ok(WorkerSource::Requirement(git.into())));
        for requirement in [
            "requests==2.32.3",
            "uworker",
            "uworker[docker] >= 1.0, <2",
            "uworker (==1.0)",
            "uworker @ git+https://h.example/w.git",
            "uworker==1.0; python_version >= \"3.10\"",
            "https://h.example/w-1.0-py3-none-any.whl",
        ] {
            assert_eq!(
                classify(d, requirement),
                Ok(WorkerSource::Requirement(requirement.into()))
            );
        }
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
        // Outside the definition: absolute, or with `..`.
        let elsewhere = tree();
        let canonical = elsewhere.path().canonicalize().unwrap();
        let absolute = elsewhere.path().join("worker");
        assert_eq!(
            classify(d, absolute.to_str().unwrap()),
            Ok(WorkerSource::OutsideDirectory(canonical.join("worker")))
        );
        let wheel = elsewhere.path().join("w-1.0-py3-none-any.whl");
        let source = classify(d, wheel.to_str().unwrap()).unwrap();
        assert_eq!(
            source.location(d),
            Some((canonical.clone(), "w-1.0-py3-none-any.whl".into()))
        );
        assert_eq!(
            source.remote(),
            format!("{REMOTE_DIR}/w-1.0-py3-none-any.whl")
        );
        let relative = format!(
            "../{}/worker",
            elsewhere.path().file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(
            classify(d, &relative),
            Ok(WorkerSource::OutsideDirectory(canonical.join("worker")))
        );
        // Back into the definition through `..`: inside after all.
        let back = format!("../{}/worker", d.file_name().unwrap().to_str().unwrap());
        assert_eq!(
            classify(d, &back),
            Ok(WorkerSource::Directory("worker".into()))
        );
    }

    #[test]
    fn local_looking_paths_must_exist_and_the_rest_be_requirements() {
        let dir = tree();
        let d = dir.path();
        for (value, hint) in [
            ("./missing", "nothing exists at"),
            ("missing-1.0.whl", "nothing exists at"),
            ("/opt/on-the-host.whl", "nothing exists at"),
            ("~/worker", "nothing exists at"),
            (
                "hello world",
                "neither an existing local path nor a pip requirement",
            ),
            ("$(id)", "neither"),
            ("uworker==", "neither"),
            ("uworker @ not a url", "neither"),
            ("ftp://h/w.whl", "neither"),
            ("uworker;", "neither"),
            ("-e .", "neither"),
        ] {
            let err = classify(d, value).unwrap_err();
            assert!(err.contains(hint), "{value}: {err}");
        }
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
            Path::new("/d/worker"),
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
            StepKind::UploadWorkerSource {
                source: "".into(),
                destination: REMOTE_DIR.into()
            }
        );
        assert_eq!(upload.only, Some(Only::Test), "on the builders that use it");
        assert!(upload.uploads_worker_source(), "so it is fingerprinted");
        assert_eq!(
            def.worker_source_dir.as_deref(),
            Some(Path::new("/d/worker"))
        );
        assert_eq!(values[VARIABLE], REMOTE_DIR);
        assert_eq!(def.variables[VARIABLE], REMOTE_DIR);
    }

    #[test]
    fn a_package_file_keeps_its_name_and_a_requirement_changes_nothing() {
        let mut def = definition();
        let mut values = def.variables.clone();
        let wheel = WorkerSource::File("dist/w-1.0-py3-none-any.whl".into());
        wire(&mut def, &mut values, &wheel, Path::new("/d/dist"));
        assert_eq!(
            def.steps[2].kind,
            StepKind::UploadWorkerSource {
                source: "w-1.0-py3-none-any.whl".into(),
                destination: format!("{REMOTE_DIR}/w-1.0-py3-none-any.whl")
            }
        );
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
            Path::new("/nowhere"),
        );
        assert_eq!(def, original);
        assert_eq!(values, original.variables);
    }
}

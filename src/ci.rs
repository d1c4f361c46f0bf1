//! The GitHub Actions environment (an edge): which event this is, step outputs
//! (`GITHUB_OUTPUT`), the job summary (`GITHUB_STEP_SUMMARY`), and workflow commands
//! (masks, groups, annotations). Workflow commands go to stderr, which the runner reads
//! as it reads stdout, so stdout stays clean for `--output json`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::env::Env;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Push {
        branch: Option<String>,
        default_branch: Option<String>,
    },
    PullRequest {
        number: u64,
        head_sha: Option<String>,
        /// The head branch lives in another repository: no secrets, a read-only token.
        fork: bool,
    },
    Dispatch {
        branch: Option<String>,
    },
    Other(String),
}

impl Event {
    /// Push to the default branch, or a manual dispatch: a new image becomes a release.
    pub fn publishes_releases(&self) -> bool {
        match self {
            Event::Push {
                branch: Some(branch),
                default_branch: Some(default),
            } => branch == default,
            Event::Dispatch { .. } => true,
            _ => false,
        }
    }

    /// A short description for summaries and messages.
    pub fn describe(&self) -> String {
        match self {
            Event::Push { branch, .. } => {
                format!("push to `{}`", branch.as_deref().unwrap_or("?"))
            }
            Event::PullRequest { number, fork, .. } => {
                format!(
                    "pull request #{number}{}",
                    if *fork { " (fork)" } else { "" }
                )
            }
            Event::Dispatch { branch } => {
                format!("manual dispatch on `{}`", branch.as_deref().unwrap_or("?"))
            }
            Event::Other(name) => format!("`{name}` event"),
        }
    }
}

/// The Actions environment of a job step.
#[derive(Debug, Clone)]
pub struct Actions {
    pub event: Event,
    /// `owner/name` of the repository the workflow runs in.
    pub repository: Option<String>,
    output: Option<PathBuf>,
    summary: Option<PathBuf>,
}

/// True inside GitHub Actions.
pub fn in_actions(env: &Env) -> bool {
    env.get("GITHUB_ACTIONS") == Some("true")
}

impl Actions {
    /// The Actions environment, when `GITHUB_ACTIONS=true`. An unreadable event payload
    /// leaves the event's details unknown rather than failing the step.
    pub fn detect(env: &Env) -> Option<Actions> {
        if !in_actions(env) {
            return None;
        }
        let payload: Value = env
            .get("GITHUB_EVENT_PATH")
            .and_then(|p| {
                crate::input_file::read_text(Path::new(p), crate::input_file::RECORD_CAP).ok()
            })
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        Some(Actions {
            event: event(env.get("GITHUB_EVENT_NAME").unwrap_or(""), env, &payload),
            repository: env.get("GITHUB_REPOSITORY").map(str::to_string),
            output: env.get("GITHUB_OUTPUT").map(PathBuf::from),
            summary: env.get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
        })
    }

    /// Step outputs; values with line breaks use the delimiter form.
    pub fn set_outputs(&self, outputs: &[(&str, String)]) -> std::io::Result<()> {
        let Some(path) = &self.output else {
            return Ok(());
        };
        let text: String = outputs.iter().map(|(k, v)| output_line(k, v)).collect();
        append(path, &text)
    }

    pub fn add_summary(&self, markdown: &str) -> std::io::Result<()> {
        match &self.summary {
            Some(path) => append(path, markdown),
            None => Ok(()),
        }
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?
        .write_all(text.as_bytes())
}

fn event(name: &str, env: &Env, payload: &Value) -> Event {
    let branch = || {
        env.get("GITHUB_REF")
            .and_then(|r| r.strip_prefix("refs/heads/"))
            .map(str::to_string)
    };
    match name {
        "push" => Event::Push {
            branch: branch(),
            default_branch: payload["repository"]["default_branch"]
                .as_str()
                .map(str::to_string),
        },
        "pull_request" => Event::PullRequest {
            number: payload["pull_request"]["number"]
                .as_u64()
                .or_else(|| payload["number"].as_u64())
                .unwrap_or(0),
            head_sha: payload["pull_request"]["head"]["sha"]
                .as_str()
                .map(str::to_string),
            fork: payload["pull_request"]["head"]["repo"]["full_name"]
                != payload["repository"]["full_name"],
        },
        "workflow_dispatch" => Event::Dispatch { branch: branch() },
        other => Event::Other(other.to_string()),
    }
}

/// `KEY=value`, or `KEY<<DELIM` ... `DELIM` when the value spans lines.
pub fn output_line(key: &str, value: &str) -> String {
    if !value.contains('\n') && !value.contains('\r') {
        return format!("{key}={value}\n");
    }
    let mut delimiter = String::from("UWORKER_IMAGE_EOF");
    while value.contains(&delimiter) {
        delimiter.push('_');
    }
    format!("{key}<<{delimiter}\n{value}\n{delimiter}\n")
}

/// Workflow-command data escaping (`%`, CR, LF), as @actions/core does.
pub fn escape_data(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Property escaping for `file=`, `line=` (also `:` and `,`).
fn escape_property(value: &str) -> String {
    escape_data(value).replace(':', "%3A").replace(',', "%2C")
}

/// `::add-mask::` lines, one per value (the redactor splits multi-line secrets into
/// lines already, and the runner masks line by line).
pub fn mask_lines<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values
        .into_iter()
        .map(|v| format!("::add-mask::{}\n", escape_data(v)))
        .collect()
}

/// An error annotation pointing at a file and line.
pub fn error_annotation(file: &str, line: Option<usize>, message: &str) -> String {
    let mut props = format!("file={}", escape_property(file));
    if let Some(line) = line {
        props.push_str(&format!(",line={line}"));
    }
    format!("::error {props}::{}", escape_data(message))
}

pub fn warning_line(message: &str) -> String {
    format!("::warning::{}", escape_data(message))
}

/// Workflow commands are written to stderr in one call, so lines never interleave.
pub fn command(lines: &str) {
    let stderr = std::io::stderr();
    let _ = stderr.lock().write_all(lines.as_bytes());
}

/// Masks every value for the rest of the job: Actions replaces them in later log lines.
pub fn mask<'a>(values: impl IntoIterator<Item = &'a str>) {
    command(&mask_lines(values));
}

/// Masks a run's secrets at start. The job token is left out: the runner masks it
/// already, and the token is never printed, not even in a mask command.
pub fn mask_secrets(redactor: &crate::secrets::Redactor, env: &Env) {
    let token = env.get("GITHUB_TOKEN");
    mask(redactor.values().filter(|v| Some(*v) != token));
}

pub fn warning(message: &str) {
    command(&format!("{}\n", warning_line(message)));
}

/// A collapsible block in the job log, closed when dropped.
pub struct Group;

impl Group {
    pub fn start(title: &str) -> Group {
        command(&format!("::group::{}\n", escape_data(title)));
        Group
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        command("::endgroup::\n");
    }
}

/// An `::error file=..,line=..::` annotation for an error that points into the
/// definition, so the pull request shows it on the line.
pub fn annotate(path: &Path, line: Option<usize>, message: &str, env: &Env) {
    let file = relative_to_workspace(path, env.get("GITHUB_WORKSPACE"));
    command(&format!("{}\n", error_annotation(&file, line, message)));
}

/// Annotations name files relative to the checkout.
fn relative_to_workspace(path: &Path, workspace: Option<&str>) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match workspace.and_then(|w| std::fs::canonicalize(w).ok()) {
        Some(w) => absolute
            .strip_prefix(&w)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf()),
        None => path.to_path_buf(),
    }
    .display()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_and_commands_are_escaped() {
        assert_eq!(output_line("action", "skip"), "action=skip\n");
        assert_eq!(
            output_line("changed", "a\nb"),
            "changed<<UWORKER_IMAGE_EOF\na\nb\nUWORKER_IMAGE_EOF\n"
        );
        assert_eq!(
            output_line("x", "UWORKER_IMAGE_EOF\n"),
            "x<<UWORKER_IMAGE_EOF_\nUWORKER_IMAGE_EOF\n\nUWORKER_IMAGE_EOF_\n"
        );
        assert_eq!(escape_data("50%\nnext"), "50%25%0Anext");
        assert_eq!(
            error_annotation(
                "provision/image.toml",
                Some(5),
                "unknown field `x`, expected y"
            ),
            "::error file=provision/image.toml,line=5::unknown field `x`, expected y"
        );
        assert_eq!(
            error_annotation("a:b,c.toml", None, "m"),
            "::error file=a%3Ab%2Cc.toml::m"
        );
        assert_eq!(
            mask_lines(["p'a s$", "50%\r"]),
            "::add-mask::p'a s$\n::add-mask::50%25%0D\n"
        );
        assert_eq!(warning_line("no\ncomment"), "::warning::no%0Acomment");
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn events_from_the_payload() {
        let env = env(&[("GITHUB_REF", "refs/heads/main")]);
        let push =
            serde_json::json!({"repository": {"default_branch": "main", "full_name": "o/r"}});
        let on_main = event("push", &env, &push);
        assert_eq!(
            on_main,
            Event::Push {
                branch: Some("main".into()),
                default_branch: Some("main".into())
            }
        );
        assert!(on_main.publishes_releases());
        let other = serde_json::json!({"repository": {"default_branch": "trunk"}});
        assert!(!event("push", &env, &other).publishes_releases());
        let pr = serde_json::json!({
            "number": 7,
            "pull_request": {"number": 7, "head": {"sha": "abc", "repo": {"full_name": "fork/r"}}},
            "repository": {"full_name": "o/r"}
        });
        let pull = event("pull_request", &env, &pr);
        assert_eq!(
            pull,
            Event::PullRequest {
                number: 7,
                head_sha: Some("abc".into()),
                fork: true
            }
        );
        assert!(!pull.publishes_releases());
        assert_eq!(pull.describe(), "pull request #7 (fork)");
        let dispatch = event("workflow_dispatch", &env, &Value::Null);
        assert!(dispatch.publishes_releases());
    }

    #[test]
    fn outside_actions_there_is_nothing() {
        assert!(Actions::detect(&env(&[("CI", "true")])).is_none());
    }

    #[test]
    fn outputs_and_summary_append_to_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let summary = dir.path().join("summary");
        let env = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_OUTPUT", out.to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ]);
        let actions = Actions::detect(&env).unwrap();
        std::fs::write(&out, "earlier=1\n").unwrap();
        actions
            .set_outputs(&[("action", "build".into()), ("changed", "a\nb".into())])
            .unwrap();
        actions.add_summary("# one\n").unwrap();
        actions.add_summary("two\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "earlier=1\naction=build\nchanged<<UWORKER_IMAGE_EOF\na\nb\nUWORKER_IMAGE_EOF\n"
        );
        assert_eq!(std::fs::read_to_string(&summary).unwrap(), "# one\ntwo\n");
    }
}

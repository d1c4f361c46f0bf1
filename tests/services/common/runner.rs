//! The action's run step as GitHub's runner runs and cancels it: the step's `run:` text
//! from action.yml in a file, `bash --noprofile --norc -eo pipefail FILE`, the step's
//! `env:` evaluated for the inputs, in a session of its own. The runner cancels with
//! SIGINT to that PID only, SIGTERM 7.5 s later, SIGKILL 2.5 s after that
//! (actions/runner, ProcessInvoker).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Lines;

use yaml_rust2::{Yaml, YamlLoader};

/// The action's step `id`, its `run:` text and its `env:` with every `${{ }}` replaced.
pub struct Step {
    pub run: String,
    pub env: Vec<(String, String)>,
}

/// The step of action.yml with `id: id`, for `inputs` (an input not given is empty; the
/// install step's output `path` is the tool under test).
pub fn action_step(id: &str, inputs: &BTreeMap<&str, String>) -> Step {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("action.yml")).unwrap();
    let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let step = doc["runs"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("action.yml has no step `{id}`"))
        .clone();
    let evaluate = |value: &str| -> String {
        let mut out = String::new();
        let mut rest = value;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("closed expression") + start;
            let expr = rest[start + 3..end].trim();
            out.push_str(&match expr.strip_prefix("inputs.") {
                Some(name) => inputs.get(name).cloned().unwrap_or_default(),
                None if expr == "steps.install.outputs.path" => {
                    env!("CARGO_BIN_EXE_uworker-image").to_string()
                }
                None => panic!("the test does not know `{expr}` of action.yml"),
            });
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    };
    let env = match &step["env"] {
        Yaml::Hash(map) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Yaml::String(s) => s.clone(),
                    other => panic!("env value {other:?}"),
                };
                (k.as_str().unwrap().to_string(), evaluate(&value))
            })
            .collect(),
        _ => Vec::new(),
    };
    Step {
        run: step["run"].as_str().expect("a run step").to_string(),
        env,
    }
}

/// The step running: its shell's PID leads a session of its own.
pub struct RunningStep {
    pub child: Child,
    pub stderr: Lines,
    _script: tempfile::TempDir,
}

impl RunningStep {
    /// Starts `step` as the runner does, with `vars` beside the step's env (the runner's
    /// own variables, the job's env) and GITHUB_ACTION_PATH this repository.
    pub fn start(step: &Step, vars: &[(String, String)]) -> RunningStep {
        let script = tempfile::tempdir().unwrap();
        let file = script.path().join("step.sh");
        std::fs::write(&file, &step.run).unwrap();
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&file)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("GITHUB_ACTION_PATH", env!("CARGO_MANIFEST_DIR"))
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .envs(step.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setsid(2) in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Lines::of(child.stderr.take().unwrap());
        RunningStep {
            child,
            stderr,
            _script: script,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The runner's cancel: SIGINT now, SIGTERM at 7.5 s, SIGKILL at 10 s, each to the
    /// step's PID only (while it lives). Returns the step's exit code (None: killed) and
    /// when the cancel began.
    pub fn cancel_as_the_runner_does(&mut self) -> (Option<i32>, Instant) {
        let began = Instant::now();
        let pid = self.pid();
        let mut sent_term = false;
        let mut sent_kill = false;
        let signal = |sig| super::procs::signal(pid, sig).unwrap();
        signal(libc::SIGINT);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), began);
            }
            let elapsed = began.elapsed();
            if !sent_term && elapsed >= Duration::from_millis(7500) {
                signal(libc::SIGTERM);
                sent_term = true;
            }
            if !sent_kill && elapsed >= Duration::from_secs(10) {
                signal(libc::SIGKILL);
                sent_kill = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Processes still in the step's session (its shell's PID is the session ID).
    pub fn session_processes(&self) -> Vec<String> {
        session_members(self.pid())
    }
}

/// The runner's own variables a step sees: HOME, and TMPDIR and RUNNER_TEMP in `tmp`.
pub fn runner_vars(tmp: &Path) -> Vec<(String, String)> {
    let tmp = tmp.display().to_string();
    vec![
        ("HOME".to_string(), std::env::var("HOME").unwrap()),
        ("TMPDIR".to_string(), tmp.clone()),
        ("RUNNER_TEMP".to_string(), tmp),
    ]
}

/// `pid (command)` of every process whose session is `sid`.
pub fn session_members(sid: i32) -> Vec<String> {
    super::procs::all()
        .into_iter()
        .filter(|p| p.session == sid)
        .map(|p| format!("{} ({})", p.pid, p.comm))
        .collect()
}

/// Work directories of the tool under `tmp`.
pub fn workdirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("uworker-image-run-"))
        .collect()
}

//! The GitHub workflows and the composite action: actionlint (which runs shellcheck on
//! every `run:` block; tests/shell_scripts.rs checks the script files) passes; the image
//! workflow's triggers, permissions, secrets and concurrency are what the README promises; the
//! action's scripts map inputs to flags and install a release binary (checked) or fall
//! back to a build from source.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use common::*;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn workflow_files() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

/// tests/harness/actionlint.sh (installs the pinned actionlint once, then runs it).
fn actionlint(args: &[&str]) -> Run {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let script = repo().join("tests/harness/actionlint.sh");
    INSTALLED.get_or_init(|| {
        let mut cmd = Command::new(&script);
        cmd.arg("--version");
        let r = run(cmd);
        assert_eq!(r.code, 0, "installing actionlint failed:\n{}", r.all());
    });
    let mut cmd = Command::new(&script);
    cmd.current_dir(repo())
        .args(["-no-color", "-shellcheck", "shellcheck"]);
    cmd.args(args);
    run(cmd)
}

#[test]
fn actionlint_passes_on_every_workflow() {
    let files = workflow_files();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["ci.yml", "image.yml", "release.yml", "sweep.yml"]);
    let paths: Vec<_> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let r = actionlint(&paths);
    assert_eq!(r.code, 0, "actionlint:\n{}", r.all());
}

#[test]
fn actionlint_catches_a_bad_workflow_and_its_shell() {
    // The check above means something only if the linter finds faults: an unknown
    // input of the local action, a missing job output and an unquoted variable.
    let text = std::fs::read_to_string(repo().join(".github/workflows/image.yml"))
        .unwrap()
        .replacen(
            "          command: matrix\n",
            "          command: matrix\n          bogus: x\n",
            1,
        )
        .replacen("needs.plan.outputs.matrix", "needs.plan.outputs.matrx", 1)
        .replacen("--record \"$record\"", "--record $record", 1);
    let dir = tempfile::tempdir_in(repo().join(".github")).unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, text).unwrap();
    let r = actionlint(&[bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.all());
    for fault in [
        r#"input "bogus" is not defined in action "uworker-image""#,
        r#"property "matrx" is not defined"#,
        "SC2086",
    ] {
        assert!(r.stdout.contains(fault), "no `{fault}` in:\n{}", r.all());
    }
}

fn load(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .remove(0)
}

fn keys(map: &Yaml) -> BTreeSet<String> {
    map.as_hash()
        .unwrap_or_else(|| panic!("not a mapping: {map:?}"))
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn text_of(node: &Yaml) -> String {
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(node).unwrap();
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every `uses:` value anywhere under `node`.
fn uses(node: &Yaml, found: &mut Vec<String>) {
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                if k.as_str() == Some("uses") {
                    found.push(v.as_str().unwrap().to_string());
                }
                uses(v, found);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|i| uses(i, found)),
        _ => {}
    }
}

#[test]
fn the_image_workflow_runs_on_pull_requests_pushes_and_dispatch_only() {
    let wf = load(".github/workflows/image.yml");
    let on = &wf["on"];
    assert_eq!(
        keys(on),
        set(&["pull_request", "push", "workflow_dispatch"])
    );
    let paths = |event: &str| -> Vec<String> {
        on[event]["paths"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    assert!(paths("push").contains(&"provision/**".to_string()));
    assert!(
        paths("pull_request").contains(&"provision/**".to_string())
            && paths("pull_request").contains(&"src/**".to_string())
    );
    assert_eq!(on["push"]["branches"][0].as_str(), Some("main"));
    let inputs = &on["workflow_dispatch"]["inputs"];
    assert_eq!(keys(inputs), set(&["force", "target"]));
    assert_eq!(inputs["force"]["type"].as_str(), Some("boolean"));
    assert!(matches!(
        inputs["target"]["type"].as_str(),
        Some("string" | "choice")
    ));
    for file in workflow_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let wf = YamlLoader::load_from_str(&text).unwrap().remove(0);
        let events = match &wf["on"] {
            Yaml::String(one) => set(&[one]),
            Yaml::Array(many) => many.iter().map(|e| e.as_str().unwrap().into()).collect(),
            map => keys(map),
        };
        assert!(
            !events.contains("pull_request_target"),
            "{} runs on pull_request_target",
            file.display()
        );
    }
}

#[test]
fn each_image_job_has_least_privilege_and_secrets_only_in_the_environment() {
    let wf = load(".github/workflows/image.yml");
    assert!(
        wf["permissions"].as_hash().is_some_and(|p| p.is_empty()),
        "the workflow grants nothing by default"
    );
    assert!(
        !text_of(&wf["env"]).contains("secrets."),
        "no secrets at workflow level"
    );
    let jobs = wf["jobs"].as_hash().unwrap();
    assert_eq!(
        keys(&wf["jobs"]),
        set(&[
            "pr-targets",
            "pr-check",
            "plan",
            "build",
            "release",
            "prune",
            "sweep-after-build"
        ])
    );
    for (name, job) in jobs {
        let name = name.as_str().unwrap();
        let permissions = &job["permissions"];
        let granted: Vec<(String, String)> = permissions
            .as_hash()
            .unwrap_or_else(|| panic!("{name}: no permissions block"))
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
            .collect();
        for (scope, level) in &granted {
            let allowed = match (scope.as_str(), level.as_str()) {
                ("contents", "read") => true,
                ("contents", "write") => name == "release",
                ("pull-requests", "write") => name == "pr-check",
                _ => false,
            };
            assert!(allowed, "{name}: {scope}: {level}");
        }
        assert!(job["timeout-minutes"].as_i64().is_some(), "{name}: timeout");

        let environment = job["environment"].as_str();
        let holds_secrets = text_of(job).contains("secrets.");
        if holds_secrets {
            assert_eq!(environment, Some("uworker-image"), "{name}");
        }
        let writes = granted.iter().any(|(_, level)| level == "write");
        if writes || name.starts_with("pr-") {
            assert!(
                !holds_secrets && environment.is_none(),
                "{name}: a job with a write token or on pull requests holds no secrets"
            );
        }
    }
    // Secrets reach only the steps that run the tool; the fingerprint depends on the
    // secrets present, so plan, build and prune see the same ones.
    let tool_env = |job: &str, command: &str| -> Yaml {
        let steps = wf["jobs"][job]["steps"].as_vec().unwrap();
        for step in steps {
            let runs_tool = step["with"]["command"].as_str() == Some(command);
            assert!(
                runs_tool || !text_of(step).contains("secrets."),
                "{job}: a step that does not run the tool holds secrets"
            );
        }
        let step = steps
            .iter()
            .find(|step| step["with"]["command"].as_str() == Some(command))
            .unwrap_or_else(|| panic!("{job}: no `{command}` step"));
        step["env"].clone()
    };
    let plan_env = tool_env("plan", "matrix");
    assert!(keys(&plan_env).contains("UWORKER_FINGERPRINT_KEY"));
    assert!(keys(&plan_env).contains("OS_APPLICATION_CREDENTIAL_SECRET"));
    assert_eq!(
        tool_env("build", "build"),
        plan_env,
        "build: the inputs of plan"
    );
    assert_eq!(
        tool_env("prune", "prune"),
        plan_env,
        "prune: the inputs of plan"
    );
    for (name, job) in jobs {
        assert!(
            !text_of(&job["env"]).contains("secrets."),
            "{}: secrets at job level",
            name.as_str().unwrap()
        );
    }
}

#[test]
fn builds_run_per_target_from_the_plan_never_racing_and_long_enough() {
    let wf = load(".github/workflows/image.yml");
    let build = &wf["jobs"]["build"];
    assert_eq!(build["needs"].as_str(), Some("plan"));
    assert_eq!(
        build["if"].as_str(),
        Some("fromJSON(needs.plan.outputs.matrix).include[0] != null"),
        "no build job for an empty matrix, which GitHub refuses"
    );
    assert_eq!(
        build["strategy"]["matrix"].as_str(),
        Some("${{ fromJSON(needs.plan.outputs.matrix) }}")
    );
    assert_eq!(build["strategy"]["fail-fast"].as_bool(), Some(false));
    let concurrency = &build["concurrency"];
    assert!(concurrency["group"]
        .as_str()
        .unwrap()
        .contains("${{ matrix.target }}"));
    assert_eq!(concurrency["cancel-in-progress"].as_bool(), Some(false));
    // The tool's deadline (4h) and its cleanup fit; GitHub-hosted jobs end at 6h.
    let minutes = build["timeout-minutes"].as_i64().unwrap();
    assert!((245..=360).contains(&minutes), "{minutes}");
    let build_step = build["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|step| step["with"]["command"].as_str() == Some("build"))
        .expect("a build step");
    assert_eq!(build["env"]["UWORKER_IMAGE_TIMEOUT"].as_str(), Some("4h"));
    assert_eq!(build_step["uses"].as_str(), Some("./"));

    // The plan job asks `matrix --needs-build` unless forced.
    let plan = text_of(&wf["jobs"]["plan"]);
    assert!(
        plan.contains("command: matrix") && plan.contains("'--needs-build'"),
        "{plan}"
    );
    // Two pushes must not cancel a build; only pull request checks are cancelled.
    assert!(
        wf["concurrency"].is_badvalue(),
        "no workflow-wide cancellation"
    );
    assert_eq!(
        wf["jobs"]["pr-check"]["concurrency"]["cancel-in-progress"].as_bool(),
        Some(true)
    );
}

/// The `sweep` step of a job: its `with` and `env`. It holds the cloud credentials only,
/// and every step that is not it holds no secret.
fn sweep_step(job: &Yaml, name: &str) -> (Yaml, Yaml) {
    assert_eq!(job["environment"].as_str(), Some("uworker-image"), "{name}");
    let steps = job["steps"].as_vec().unwrap();
    let step = steps
        .iter()
        .find(|s| s["with"]["command"].as_str() == Some("sweep"))
        .unwrap_or_else(|| panic!("{name}: no sweep step"));
    for other in steps.iter().filter(|s| *s != step) {
        assert!(
            !text_of(other).contains("secrets."),
            "{name}: secrets outside sweep"
        );
    }
    assert_eq!(
        keys(&step["env"]),
        set(&[
            "OS_AUTH_URL",
            "OS_APPLICATION_CREDENTIAL_ID",
            "OS_APPLICATION_CREDENTIAL_SECRET",
            "OS_REGION_NAME"
        ]),
        "{name}: the cloud credentials, no worker secret"
    );
    (step["with"].clone(), step["env"].clone())
}

#[test]
fn dead_runs_are_swept_after_a_failed_or_cancelled_build_and_every_day() {
    // After the build job of a run failed or was cancelled: that run's leftovers, at once.
    let image = load(".github/workflows/image.yml");
    let job = &image["jobs"]["sweep-after-build"];
    assert_eq!(job["needs"].as_str(), Some("build"));
    assert_eq!(job["if"].as_str(), Some("failure() || cancelled()"));
    let (with, _) = sweep_step(job, "sweep-after-build");
    let args: Vec<&str> = with["args"].as_str().unwrap().lines().collect();
    assert_eq!(
        args,
        ["--run", "${{ github.run_id }}", "--older-than", "0s"]
    );

    // Every day: everything older than the build deadline plus its grace.
    let daily = load(".github/workflows/sweep.yml");
    assert_eq!(keys(&daily["on"]), set(&["schedule", "workflow_dispatch"]));
    let cron = daily["on"]["schedule"][0]["cron"].as_str().unwrap();
    assert_eq!(
        cron.split_whitespace().collect::<Vec<_>>()[2..],
        ["*", "*", "*"]
    );
    assert!(daily["permissions"].as_hash().is_some_and(|p| p.is_empty()));
    let jobs = daily["jobs"].as_hash().unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &daily["jobs"]["sweep"];
    assert_eq!(
        keys(&job["permissions"]),
        set(&["contents"]),
        "read-only token"
    );
    assert_eq!(job["permissions"]["contents"].as_str(), Some("read"));
    assert!(job["timeout-minutes"].as_i64().is_some());
    let (with, _) = sweep_step(job, "sweep");
    assert!(with["args"].is_badvalue(), "the default limit: {with:?}");
    // The same deadline as the builds it must never touch.
    assert_eq!(
        job["env"]["UWORKER_IMAGE_TIMEOUT"],
        image["jobs"]["build"]["env"]["UWORKER_IMAGE_TIMEOUT"]
    );
}

#[test]
fn every_action_is_pinned_to_a_commit() {
    for rel in [
        ".github/workflows/ci.yml",
        ".github/workflows/image.yml",
        ".github/workflows/release.yml",
        ".github/workflows/sweep.yml",
        "action.yml",
    ] {
        let mut found = Vec::new();
        uses(&load(rel), &mut found);
        assert!(!found.is_empty(), "{rel}");
        for reference in found {
            if reference == "./" {
                continue;
            }
            let (_, sha) = reference
                .split_once('@')
                .unwrap_or_else(|| panic!("{rel}: {reference} has no version"));
            assert!(
                sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{rel}: {reference} is not pinned to a commit"
            );
        }
    }
}

#[test]
fn ci_runs_fmt_clippy_the_test_command_and_the_linters() {
    let ci = text_of(&load(".github/workflows/ci.yml"));
    for step in [
        "cargo fmt --all -- --check",
        "cargo clippy --locked --all-targets -- -D warnings",
        "scripts/test.sh",
        "cargo test --locked --test workflows",
    ] {
        assert!(ci.contains(step), "ci.yml lacks `{step}`");
    }
}

#[test]
fn releases_carry_the_binaries_the_action_installs() {
    let wf = load(".github/workflows/release.yml");
    assert_eq!(keys(&wf["on"]), set(&["push"]));
    assert_eq!(wf["on"]["push"]["tags"][0].as_str(), Some("v*"));
    let targets: Vec<_> = wf["jobs"]["binary"]["strategy"]["matrix"]["target"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl"]
    );
    // What it uploads is what scripts/package-release.sh makes, which the install
    // tests below serve to action/install.sh.
    let text = std::fs::read_to_string(repo().join(".github/workflows/release.yml")).unwrap();
    assert!(text.contains(
        "scripts/package-release.sh \"target/$TARGET/release/uworker-image\" \"$TARGET\" dist"
    ));
    assert!(text.contains("gh release upload \"$TAG\" dist/* --clobber"));
    let install = std::fs::read_to_string(repo().join("action/install.sh")).unwrap();
    assert!(install.contains("asset=uworker-image-x86_64-unknown-linux-musl.tar.gz"));
}

#[test]
fn every_action_input_reaches_the_scripts() {
    let action = load("action.yml");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let steps = text_of(&action["runs"]["steps"]);
    for input in keys(&action["inputs"]) {
        assert!(
            steps.contains(&format!("inputs.{input} }}}}")),
            "input `{input}` is not used"
        );
    }
}

// ---- action/run.sh: inputs to flags -----------------------------------------------

struct ActionRun {
    run: Run,
    github_output: String,
}

fn action_run(vars: &[(&str, &str)]) -> ActionRun {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("github_output");
    std::fs::write(&output, "").unwrap();
    // The environment of `tool()`: PATH and HOME only, plus `vars`.
    let mut cmd = Command::new(repo().join("action/run.sh"));
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.envs(vars.iter().copied())
        .env(
            "UWORKER_IMAGE_ACTION_BIN",
            env!("CARGO_BIN_EXE_uworker-image"),
        )
        .env("GITHUB_OUTPUT", &output)
        .env("RUNNER_TEMP", tmp.path());
    let run = run(cmd);
    let github_output = std::fs::read_to_string(&output).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "github_output")
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    ActionRun { run, github_output }
}

#[test]
fn the_action_runs_a_command_and_sets_its_stdout_as_output() {
    let f = full_fixture();
    let dir = f.path().to_str().unwrap();
    let a = action_run(&[
        ("UWORKER_IMAGE_ACTION_COMMAND", "matrix"),
        ("UWORKER_IMAGE_ACTION_DIR", dir),
        ("UWORKER_IMAGE_ACTION_TARGET", "south"),
        ("UWORKER_IMAGE_ACTION_FORCE", "false"),
    ]);
    assert_eq!(a.run.code, 0, "{}", a.run.all());
    let matrix = r#"{"include":[{"target":"south"}]}"#;
    assert_eq!(a.run.stdout.trim(), matrix);
    let lines: Vec<_> = a.github_output.lines().collect();
    assert_eq!(lines.len(), 3, "{}", a.github_output);
    let delimiter = lines[0].strip_prefix("stdout<<").unwrap();
    assert!(
        delimiter.len() > 20,
        "an unguessable delimiter: {delimiter}"
    );
    assert_eq!(lines[1], matrix);
    assert_eq!(lines[2], delimiter);
}

#[test]
fn the_action_passes_the_command_exit_code_and_maps_vars_and_args() {
    let f = full_fixture();
    let dir = f.path().to_str().unwrap();
    // An unknown target: the tool's exit 2, and stdout (empty) still set.
    let a = action_run(&[
        ("UWORKER_IMAGE_ACTION_COMMAND", "matrix"),
        ("UWORKER_IMAGE_ACTION_DIR", dir),
        ("UWORKER_IMAGE_ACTION_TARGET", "east"),
    ]);
    assert_eq!(a.run.code, 2, "{}", a.run.all());
    assert!(a.run.stderr.contains("no target named `east`"));
    assert!(a.github_output.starts_with("stdout<<"));

    // vars: each KEY=VALUE line is a --var (an unknown one is refused by name); a line
    // with an empty value is left out. args: one argument a line.
    let a = action_run(&[
        ("UWORKER_IMAGE_ACTION_COMMAND", "fingerprint"),
        ("UWORKER_IMAGE_ACTION_DIR", dir),
        ("UWORKER_IMAGE_ACTION_TARGET", "north"),
        (
            "UWORKER_IMAGE_ACTION_VARS",
            "greeting=hi there\nno_such_variable=1\n",
        ),
    ]);
    assert_eq!(a.run.code, 2, "{}", a.run.all());
    assert!(
        a.run.stderr.contains("no_such_variable"),
        "{}",
        a.run.stderr
    );
    let fingerprint = |vars: &str| {
        let a = action_run(&[
            ("UWORKER_IMAGE_ACTION_COMMAND", "fingerprint"),
            ("UWORKER_IMAGE_ACTION_DIR", dir),
            ("UWORKER_IMAGE_ACTION_TARGET", "north"),
            ("UWORKER_IMAGE_ACTION_VARS", vars),
            ("UWORKER_IMAGE_ACTION_ARGS", "--output\njson"),
        ]);
        assert_eq!(a.run.code, 0, "{}", a.run.all());
        let json: serde_json::Value = serde_json::from_str(&a.run.stdout).unwrap();
        json["fingerprint"].as_str().unwrap().to_string()
    };
    // The action's own variables differ between these runs: were they taken for worker
    // config (UWORKER_*), the fingerprints would differ too.
    let default = fingerprint("");
    assert_eq!(fingerprint("no_such_variable=\n\n"), default);
    assert_ne!(fingerprint("greeting=hi there"), default);
}

#[test]
fn the_action_refuses_inputs_that_do_not_fit_the_command() {
    let f = full_fixture();
    let dir = f.path().to_str().unwrap();
    for (key, value, message) in [
        (
            "UWORKER_IMAGE_ACTION_FORCE",
            "true",
            "input force: only plan and build",
        ),
        (
            "UWORKER_IMAGE_ACTION_FORCE",
            "yes",
            "input force: `yes` is not true or false",
        ),
        (
            "UWORKER_IMAGE_ACTION_OUT",
            "r.json",
            "input out: only plan and build",
        ),
        (
            "UWORKER_IMAGE_ACTION_VARS",
            "novalue",
            "input vars: `novalue` is not KEY=VALUE",
        ),
    ] {
        let a = action_run(&[
            ("UWORKER_IMAGE_ACTION_COMMAND", "validate"),
            ("UWORKER_IMAGE_ACTION_DIR", dir),
            (key, value),
        ]);
        assert_eq!(a.run.code, 2, "{key}={value}: {}", a.run.all());
        assert!(a.run.stderr.contains(message), "{}", a.run.stderr);
        assert!(a.github_output.is_empty(), "nothing ran");
    }
}

// ---- action/install.sh: a release binary from a loopback server, or source ---------

/// python3's http.server on 127.0.0.1, on a port it picks, serving `root`.
struct FileServer {
    child: Child,
    url: String,
}

impl FileServer {
    fn start(root: &Path) -> FileServer {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .arg("--directory")
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        FileServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ASSET: &str = "uworker-image-x86_64-unknown-linux-musl.tar.gz";

/// A release as the release workflow lays it out (OWNER/REPO/releases/download/TAG/),
/// packed by its own script.
fn publish(root: &Path, tag: &str, tamper: bool) {
    let dir = root.join("owner/uworker-image/releases/download").join(tag);
    let mut cmd = Command::new(repo().join("scripts/package-release.sh"));
    cmd.arg(env!("CARGO_BIN_EXE_uworker-image"))
        .arg("x86_64-unknown-linux-musl")
        .arg(&dir);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(PathBuf::from(r.stdout.trim()), dir.join(ASSET));
    if tamper {
        let sum_file = dir.join(format!("{ASSET}.sha256"));
        let mut sum = std::fs::read_to_string(&sum_file).unwrap();
        sum.replace_range(0..4, "0000");
        std::fs::write(sum_file, sum).unwrap();
    }
}

#[test]
fn packaging_refuses_what_is_not_a_binary_and_a_target() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    for (args, message) in [
        (
            vec![
                "/nonexistent/uworker-image",
                "x86_64-unknown-linux-gnu",
                out,
            ],
            "is not an executable",
        ),
        (
            vec!["/bin/sh", "x86_64-unknown-linux-gnu", out],
            "is not named uworker-image",
        ),
        (
            vec![env!("CARGO_BIN_EXE_uworker-image"), "x86_64; rm -rf", out],
            "is not a target triple",
        ),
        (vec![env!("CARGO_BIN_EXE_uworker-image")], "usage:"),
    ] {
        let mut cmd = Command::new(repo().join("scripts/package-release.sh"));
        cmd.args(&args);
        let r = run(cmd);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
    }
    assert_eq!(
        std::fs::read_dir(out).unwrap().count(),
        0,
        "nothing written"
    );
}

fn install(server: &FileServer, action_ref: &str, version: &str, tmp: &Path) -> Run {
    // Where the runner unpacks a used action: .../_actions/OWNER/REPO/REF (empty here:
    // a build from source has nothing to build).
    let action_path = tmp.join("_actions/owner/uworker-image").join(action_ref);
    std::fs::create_dir_all(&action_path).unwrap();
    let mut cmd = Command::new(repo().join("action/install.sh"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", std::env::var_os("HOME").unwrap())
        .env("GITHUB_ACTION_PATH", &action_path)
        .env("GITHUB_SERVER_URL", &server.url)
        .env("RUNNER_TOOL_CACHE", tmp.join("toolcache"))
        .env("RUNNER_TEMP", tmp)
        .env("GITHUB_PATH", tmp.join("github_path"))
        .env("UWORKER_IMAGE_ACTION_VERSION", version);
    run(cmd)
}

#[test]
fn the_action_installs_a_checked_release_binary() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.9", false);
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    let r = install(&server, "v9.9.9", "", tmp.path());
    assert_eq!(r.code, 0, "{}", r.all());
    let installed = PathBuf::from(r.stdout.trim());
    assert_eq!(
        installed,
        tmp.path()
            .join("toolcache/uworker-image/v9.9.9/bin/uworker-image")
    );
    let mut cmd = Command::new(&installed);
    cmd.arg("--version");
    let version = run(cmd);
    assert!(
        version.stdout.starts_with("uworker-image "),
        "{}",
        version.all()
    );
    let path = std::fs::read_to_string(tmp.path().join("github_path")).unwrap();
    assert_eq!(path.trim(), installed.parent().unwrap().to_str().unwrap());
    assert!(
        r.stderr.contains(&format!(
            "downloading {}/owner/uworker-image/releases/download/v9.9.9/{ASSET}",
            server.url
        )),
        "{}",
        r.stderr
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("uworker-image-download"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A second step of the same job reuses the binary without a download.
    drop(server);
    let offline = FileServer::start(tempfile::tempdir().unwrap().path());
    let again = install(&offline, "v9.9.9", "", tmp.path());
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(again.stdout, r.stdout);
    assert!(!again.stderr.contains("downloading"), "{}", again.stderr);
}

#[test]
fn a_release_binary_with_a_wrong_checksum_is_refused() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.8", true);
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    let r = install(&server, "v9.9.8", "", tmp.path());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    assert!(!tmp
        .path()
        .join("toolcache/uworker-image/v9.9.8/bin/uworker-image")
        .exists());
    assert!(!tmp.path().join("github_path").exists());
}

#[test]
fn without_a_release_the_action_builds_from_its_own_source() {
    let www = tempfile::tempdir().unwrap();
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    // A branch ref has no release: the download fails and cargo builds the action's
    // source. Here the source is a package with no code, so cargo's own error ends it.
    let source = tmp.path().join("_actions/owner/uworker-image/main");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(
        source.join("Cargo.toml"),
        "[package]\nname = \"not-the-tool\"\nversion = \"0.0.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    let r = install(&server, "main", "", tmp.path());
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("no release asset for main: falling back to a build from source")
            && r.stderr.contains(&format!(
                "building from source: cargo install --locked --path {}",
                source.display()
            ))
            && r.stderr.contains("no targets specified in the manifest"),
        "{}",
        r.stderr
    );
    assert!(!tmp.path().join("github_path").exists());

    // `source` skips the download; a source without Cargo.toml is named as such.
    let r = install(&server, "v1.0.0", "source", tmp.path());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!r.stderr.contains("downloading"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("has no Cargo.toml: cannot build uworker-image from source"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_build_from_source_installs_once_per_source() {
    let www = tempfile::tempdir().unwrap();
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in source tree that builds in seconds (the real one takes minutes): what is
    // tested is the action's fallback, not the tool's compilation.
    let source = tmp
        .path()
        .join("_actions/owner/uworker-image/feature-branch");
    std::fs::create_dir_all(source.join("src")).unwrap();
    std::fs::write(
        source.join("Cargo.toml"),
        "[package]\nname = \"uworker-image\"\nversion = \"0.0.1\"\nedition = \"2021\"\n",
    )
    .unwrap();
    let main = "fn main() { println!(\"uworker-image 0.0.1 (from source)\"); }\n";
    std::fs::write(source.join("src/main.rs"), main).unwrap();
    std::fs::write(
        source.join("Cargo.lock"),
        "version = 4\n\n[[package]]\nname = \"uworker-image\"\nversion = \"0.0.1\"\n",
    )
    .unwrap();

    let r = install(&server, "feature-branch", "", tmp.path());
    assert_eq!(r.code, 0, "{}", r.all());
    let installed = PathBuf::from(r.stdout.trim());
    assert!(installed.starts_with(tmp.path().join("toolcache/uworker-image")));
    assert!(
        r.stderr.contains("uworker-image 0.0.1 (from source)"),
        "{}",
        r.stderr
    );
    let path = std::fs::read_to_string(tmp.path().join("github_path")).unwrap();
    assert_eq!(path.trim(), installed.parent().unwrap().to_str().unwrap());

    // The same source again: reused. A changed source: built anew, elsewhere.
    let again = install(&server, "feature-branch", "", tmp.path());
    assert_eq!(again.stdout, r.stdout, "{}", again.all());
    assert!(
        !again.stderr.contains("building from source"),
        "{}",
        again.stderr
    );
    std::fs::write(
        source.join("src/main.rs"),
        main.replace("0.0.1 (", "0.0.1 (changed, "),
    )
    .unwrap();
    let changed = install(&server, "feature-branch", "", tmp.path());
    assert_eq!(changed.code, 0, "{}", changed.all());
    assert_ne!(changed.stdout, r.stdout);
    assert!(
        changed.stderr.contains("(changed, from source)"),
        "{}",
        changed.stderr
    );
}

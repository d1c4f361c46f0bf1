//! `test` end to end: real packer (null builder) against a real sshd on loopback.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::packer_standin::PackerStandIn;
use common::sshd::Sshd;
use common::*;

/// A definition whose steps run harmlessly on this machine (the test host is localhost).
fn definition(sshd: &Sshd, extra_steps: &str, test_table: &str) -> Fixture {
    let work = sshd.dir.path().display();
    let f = Fixture::new(&format!(
        r#"name = "t"
[target.cloud]
source_image = "id"
flavor = "f"
[[provision]]
inline = ["echo inline step on $(hostname)"]
[[provision]]
worker_config = "{work}/uploaded.conf"
[[provision]]
script = "scripts/check.sh"
environment = {{ CONFIG = "{work}/uploaded.conf" }}
{extra_steps}
[test]
{test_table}
"#
    ));
    f.script(
        "scripts/check.sh",
        "#!/usr/bin/env bash\nset -euo pipefail\n. \"$CONFIG\"\n\
         echo \"password is $UWORKER_JOB_API_PASSWORD\"\necho \"user is $UWORKER_JOB_API_USERNAME\"\n",
    );
    f
}

fn test_cmd(def: &Path, sshd: &Sshd, args: &[&str], tmp: &Path) -> Command {
    let mut cmd = tool(&worker_env());
    cmd.env("TMPDIR", tmp)
        .arg("--dir")
        .arg(def)
        .args(sshd.vars())
        .arg("test")
        .args(args);
    cmd
}

/// No process whose command line contains `needle` is left.
fn assert_no_process(needle: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let found = Command::new("pgrep").args(["-f", needle]).output().unwrap();
        // pgrep: 1 is "none found"; 2 and 3 are its own errors, not an answer.
        match found.status.code() {
            Some(1) => return,
            Some(0) => {}
            other => panic!("pgrep -f {needle}: exit {other:?}"),
        }
        assert!(
            Instant::now() < until,
            "left behind: {}",
            String::from_utf8_lossy(&found.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn steps_run_on_the_host_and_secrets_stay_redacted() {
    let sshd = Sshd::prepare().start();
    let f = definition(&sshd, "", "");
    let tmp = tempfile::tempdir().unwrap();
    let r = run(test_cmd(f.path(), &sshd, &[], tmp.path()));
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("test: ok"), "{}", r.stdout);
    assert!(r.stderr.contains("inline step on"), "{}", r.stderr);
    assert!(r.stderr.contains("password is ***"), "{}", r.stderr);
    for secret in [NASTY_PASSWORD, NASTY_USERNAME] {
        for line in secret.lines() {
            assert!(!r.all().contains(line), "leaked {line:?}:\n{}", r.all());
        }
    }
    // The uploaded config arrived with the exact values (the host is this machine).
    let uploaded = sshd.dir.path().join("uploaded.conf");
    let got = Command::new("bash")
        .arg("-c")
        .arg(". \"$1\" && printf %s \"$UWORKER_JOB_API_PASSWORD\"")
        .arg("bash")
        .arg(&uploaded)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(got.stdout).unwrap(), NASTY_PASSWORD);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "work dir left behind"
    );
}

#[test]
fn a_failing_script_fails_at_once_and_its_stderr_is_shown() {
    let sshd = Sshd::prepare().start();
    let f = definition(&sshd, "[[provision]]\nscript = \"scripts/fail.sh\"\n", "");
    f.script(
        "scripts/fail.sh",
        "#!/bin/sh\necho 'boom on stderr' >&2\nexit 3\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    let r = run(test_cmd(f.path(), &sshd, &["--attempts", "3"], tmp.path()));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("boom on stderr"), "{}", r.stderr);
    assert!(
        r.stdout.contains("FAILED after 1 attempt(s)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("non-zero exit status: 3"), "{}", r.stdout);
    assert!(
        !r.stderr.contains("attempt 2"),
        "a script failure is permanent"
    );
}

#[test]
fn the_deadline_interrupts_packer_and_leaves_nothing_running() {
    let sshd = Sshd::prepare().start();
    let f = definition(&sshd, "[[provision]]\ninline = [\"sleep 61.7\"]\n", "");
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let r = run(test_cmd(
        f.path(),
        &sshd,
        // Long enough for the steps before the sleep (the run's upload directory among
        // them) on a loaded machine, so packer is quiet in the sleep when the deadline comes.
        &["--timeout", "10s", "--heartbeat", "1s"],
        tmp.path(),
    ));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(r.stderr.contains("deadline reached"), "{}", r.stderr);
    assert!(
        r.stderr.contains("still running"),
        "heartbeat while quiet:\n{}",
        r.stderr
    );
    assert!(r.stdout.contains("deadline (10s) passed"), "{}", r.stdout);
    assert_no_process("sleep 61.7");
    assert_no_process(tmp.path().to_str().unwrap());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn sigint_interrupts_packer_and_exits_130() {
    let sshd = Sshd::prepare().start();
    let f = definition(
        &sshd,
        "[[provision]]\ninline = [\"echo sleeping now; sleep 62.3\"]\n",
        "",
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = test_cmd(f.path(), &sshd, &[], tmp.path());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the remote sleep runs.
    let until = Instant::now() + Duration::from_secs(20);
    while !Command::new("pgrep")
        .args(["-f", "sleep 62.3"])
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < until, "the step never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    common::procs::signal(child.id() as i32, libc::SIGINT).unwrap();
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_no_process("sleep 62.3");
    assert_no_process(tmp.path().to_str().unwrap());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}\n{stderr}");
}

#[test]
fn an_ssh_timeout_is_transient_and_retried() {
    let sshd = Sshd::prepare();
    let f = definition(&sshd, "", "ssh_timeout = \"2s\"");
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = test_cmd(
        f.path(),
        &sshd,
        &["--attempts", "3", "--retry-delay", "1s"],
        tmp.path(),
    );
    // The host comes up only after the first attempt has timed out.
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    let _sshd = sshd.start();
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("Timeout waiting for SSH"), "{all}");
    assert!(all.contains("transient error"), "{all}");
    assert!(all.contains("attempt 2 of 3"), "{all}");
}

#[test]
fn transient_failures_out_of_attempts_exit_3() {
    let sshd = Sshd::prepare(); // never started
    let f = definition(&sshd, "", "ssh_timeout = \"1s\"");
    let tmp = tempfile::tempdir().unwrap();
    let r = run(test_cmd(
        f.path(),
        &sshd,
        &["--attempts", "2", "--retry-delay", "1s"],
        tmp.path(),
    ));
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stdout.contains("FAILED after 2 attempt(s)"),
        "{}",
        r.stdout
    );
}

#[test]
fn test_needs_a_host_and_a_key() {
    let sshd = Sshd::prepare();
    let f = definition(&sshd, "", "");
    let r = run_tool(f.path(), &["test"], &worker_env());
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("test_host: not set"), "{}", r.stderr);
    let r = run_tool(
        f.path(),
        &[
            "--var",
            "test_host=127.0.0.1",
            "--var",
            "test_ssh_key=/nonexistent",
            "test",
        ],
        &worker_env(),
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("cannot read /nonexistent"),
        "{}",
        r.stderr
    );
}

/// Packer exits 0 when -only matches nothing: the runner must call that a failure.
#[test]
fn zero_artifacts_is_a_failure_even_when_packer_exits_0() {
    use uworker_image::packer::attempts::{Outcome, Retry};
    use uworker_image::packer::run::{BuildSpec, Printer};
    use uworker_image::packer::Packer;
    use uworker_image::secrets::Redactor;

    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.json");
    std::fs::write(
        &template,
        r#"{"builders":[{"type":"null","name":"test","communicator":"none"}]}"#,
    )
    .unwrap();
    let vars = dir.path().join("v.json");
    std::fs::write(&vars, "{}").unwrap();
    let packer = Packer::find(None).unwrap();
    let spec = BuildSpec {
        template,
        var_file: vars,
        only: "nonexistent".into(),
        cwd: dir.path().to_path_buf(),
        deadline: Instant::now() + Duration::from_secs(60),
        heartbeat: Duration::from_secs(60),
        deadline_grace: Duration::from_secs(5),
        signal_grace: Duration::from_secs(5),
        ci_groups: false,
        cloud: false,
    };
    let redactor = Redactor::default();
    let mut out = Vec::new();
    let mut printer = Printer::new(&mut out, &redactor, false);
    // Nothing stops these runs but packer itself.
    let stop = || false;
    let retry = Retry {
        attempts: 2,
        first_delay: Duration::from_secs(1),
    };
    let outcome = packer
        .build_with_retries(
            &spec,
            &dir.path().join("manifest.json"),
            &retry,
            &mut printer,
            &stop,
        )
        .unwrap();
    match outcome {
        Outcome::Failed {
            reason,
            transient: false,
            attempts: 1,
        } => {
            assert!(reason.contains("built no artifact"), "{reason}")
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    // And the same template with -only matching: the null builder's artifact.
    let spec = BuildSpec {
        only: "test".into(),
        ..spec
    };
    let outcome = packer
        .build_with_retries(
            &spec,
            &dir.path().join("manifest.json"),
            &retry,
            &mut printer,
            &stop,
        )
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Built { attempts: 1, .. }),
        "{outcome:?}"
    );
}

/// Packer's error messages can quote a secret (here a path built from a sensitive
/// variable, in a prepare error, which packer reports as UI errors only) and word-wrap
/// it across lines. The failure reason, which goes into the record and to GitHub, names
/// the error and holds no part of the secret; nor does anything printed.
#[test]
fn a_failure_reason_names_the_error_and_never_holds_a_secret() {
    use uworker_image::packer::attempts::{Outcome, Retry};
    use uworker_image::packer::run::{BuildSpec, Printer};
    use uworker_image::packer::Packer;
    use uworker_image::secrets::Redactor;

    let secret = "s3cret 'Value' $42";
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.json");
    std::fs::write(
        &template,
        r#"{"variables": {"pw": ""}, "sensitive-variables": ["pw"],
            "builders": [{"type": "null", "name": "test", "communicator": "none"}],
            "provisioners": [{"type": "file", "source": "/nonexistent/{{user `pw`}}",
                              "destination": "/tmp/x"}]}"#,
    )
    .unwrap();
    let vars = dir.path().join("v.json");
    std::fs::write(&vars, serde_json::json!({ "pw": secret }).to_string()).unwrap();
    let spec = BuildSpec {
        template,
        var_file: vars,
        only: "test".into(),
        cwd: dir.path().to_path_buf(),
        deadline: Instant::now() + Duration::from_secs(60),
        heartbeat: Duration::from_secs(60),
        deadline_grace: Duration::from_secs(5),
        signal_grace: Duration::from_secs(5),
        ci_groups: false,
        cloud: false,
    };
    let redactor = Redactor::new([secret]);
    let mut out = Vec::new();
    let mut printer = Printer::new(&mut out, &redactor, false);
    let retry = Retry {
        attempts: 1,
        first_delay: Duration::from_secs(1),
    };
    let outcome = Packer::find(None)
        .unwrap()
        .build_with_retries(
            &spec,
            &dir.path().join("manifest.json"),
            &retry,
            &mut printer,
            &|| false,
        )
        .unwrap();
    let Outcome::Failed {
        reason, transient, ..
    } = outcome
    else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(!transient, "a template error is permanent: {reason}");
    assert!(
        reason.contains("Failed to prepare build") && reason.contains("Bad source '/nonexistent/"),
        "{reason}"
    );
    let printed = String::from_utf8_lossy(&out);
    for text in [reason.as_str(), printed.as_ref()] {
        assert!(!text.contains("s3cret"), "{text}");
    }
}

/// A packer wrapper that records the environment of every run into `dir`, then runs
/// the real packer.
fn recording_packer(dir: &Path) -> std::path::PathBuf {
    PackerStandIn::new()
        .record_env(dir)
        .wrap_real()
        .write(&dir.join("packer"))
}

/// The variable names of every recorded packer run.
fn recorded_names(dir: &Path) -> Vec<Vec<String>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("env."))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
                .collect()
        })
        .collect()
}

/// Credentials that are not packer's business, set beside the worker's.
const FOREIGN_SECRETS: [(&str, &str); 4] = [
    ("GITHUB_TOKEN", "ghs_not-for-packer"),
    ("AWS_SECRET_ACCESS_KEY", "aws-not-for-packer"),
    (
        "UWORKER_FINGERPRINT_KEY",
        "key-not-for-packer-0123456789abcdef0123456789",
    ),
    ("ACTIONS_RUNTIME_TOKEN", "runtime-not-for-packer"),
];

/// packer's environment is an allow-list: in `test` mode (no cloud) no OS_* either, and
/// never the worker secrets, GitHub's token or unrelated credentials. The worker values
/// still reach the host (through the 0600 var-file).
#[test]
fn packer_gets_an_allow_listed_environment() {
    let sshd = Sshd::prepare().start();
    let f = definition(&sshd, "", "");
    let tmp = tempfile::tempdir().unwrap();
    let record = tempfile::tempdir().unwrap();
    let wrapper = recording_packer(record.path());
    let mut cmd = test_cmd(f.path(), &sshd, &[], tmp.path());
    cmd.arg("--packer")
        .arg(&wrapper)
        .envs(FOREIGN_SECRETS)
        .env("OS_PASSWORD", "cloud-not-needed-here")
        .env("OS_AUTH_URL", "http://127.0.0.1:9/v3")
        .env("PACKER_LOG", "0")
        // A name no deny-list would know: an allow-list keeps it out too.
        .env("SOME_TEAMS_OWN_SECRET", "not-for-packer");
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("password is ***"), "{}", r.stderr);
    let runs = recorded_names(record.path());
    assert!(!runs.is_empty(), "the wrapper recorded no run");
    // What packer may see of this environment (the tool's own TMPDIR, or the work dir
    // for a build), and what the recording sh adds itself.
    let allowed = ["PATH", "HOME", "TMPDIR", "PACKER_LOG", "CHECKPOINT_DISABLE"];
    let added_by_sh = ["PWD", "OLDPWD", "SHLVL", "_"];
    for names in &runs {
        assert!(names.iter().any(|n| n == "PATH"), "{names:?}");
        assert!(names.iter().any(|n| n == "PACKER_LOG"), "{names:?}");
        for name in names {
            assert!(
                allowed.contains(&name.as_str()) || added_by_sh.contains(&name.as_str()),
                "packer saw {name}: {names:?}"
            );
        }
    }
}

/// A full `validate` (credentials present) gives packer the OS_* variables it logs in
/// with, and still nothing else.
#[test]
fn a_full_validate_gives_packer_the_cloud_credentials_and_nothing_more() {
    let sshd = Sshd::prepare().start();
    let f = definition(&sshd, "", "");
    let record = tempfile::tempdir().unwrap();
    let wrapper = recording_packer(record.path());
    let cloud = common::openstack::os_env("password");
    let mut cmd = tool(&worker_env());
    cmd.arg("--dir")
        .arg(f.path())
        .arg("--packer")
        .arg(&wrapper)
        .args(["validate", "--no-shellcheck"])
        .envs(FOREIGN_SECRETS)
        .envs(cloud.iter().map(|(k, v)| (k, v)));
    let r = run(cmd);
    assert!(r.stdout.contains("packer validate, full"), "{}", r.all());
    let runs = recorded_names(record.path());
    let validate = runs
        .iter()
        .find(|names| names.iter().any(|n| n == "OS_PASSWORD"))
        .unwrap_or_else(|| panic!("no packer run had the cloud credentials: {runs:?}"));
    assert!(validate.iter().any(|n| n == "OS_AUTH_URL"), "{validate:?}");
    for names in &runs {
        for name in names {
            assert!(
                !name.starts_with("UWORKER_") && !FOREIGN_SECRETS.iter().any(|(k, _)| k == name),
                "packer saw {name}: {names:?}"
            );
        }
    }
}

/// SIGINT while `validate` waits for packer: the tool exits 130 at once, packer is
/// stopped with it, and no work directory is left.
#[test]
fn an_interrupted_validate_stops_packer_and_removes_its_work_dir() {
    let sshd = Sshd::prepare().start();
    let f = definition(&sshd, "", "");
    let tmp = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let pid_file = bin.path().join("validate.pid");
    // A slow `packer validate`: it says its PID, then takes its time.
    let wrapper = PackerStandIn::new()
        .hold("validate", &pid_file)
        .wrap_real()
        .write(&bin.path().join("packer"));
    let mut cmd = tool(&worker_env());
    cmd.env("TMPDIR", tmp.path())
        .arg("--dir")
        .arg(f.path())
        .arg("--packer")
        .arg(&wrapper)
        .args(["validate", "--no-shellcheck"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(Instant::now() < until, "packer validate never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let packer_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "the work dir exists while packer validates"
    );
    let sent = Instant::now();
    common::procs::signal(child.id() as i32, libc::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(sent.elapsed() < Duration::from_secs(3), "{stderr}");
    assert!(stderr.contains("SIGINT received"), "{stderr}");
    let gone_by = Instant::now() + Duration::from_secs(3);
    while common::procs::alive(packer_pid) {
        assert!(Instant::now() < gone_by, "packer validate still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "work dir left behind"
    );
}

/// `test` through the action's run step, cancelled as GitHub's runner cancels it: the
/// step on the test host ends too (packer's SSH session has a PTY, whose hangup ends
/// the remote step), the step exits 130, and nothing of it is left here.
#[test]
fn a_cancelled_action_step_ends_the_remote_step() {
    let sshd = Sshd::prepare().start();
    let remote_pid = sshd.dir.path().join("remote.pid");
    let f = definition(&sshd, "[[provision]]\nscript = \"scripts/long.sh\"\n", "");
    f.script(
        "scripts/long.sh",
        &format!(
            "#!/bin/sh\necho $$ > '{}'\necho remote-step-started\nsleep 300\necho remote-step-finished\n",
            remote_pid.display()
        ),
    );
    let tmp = tempfile::tempdir().unwrap();
    let vars: Vec<String> = sshd.vars().into_iter().filter(|v| v != "--var").collect();
    let inputs = std::collections::BTreeMap::from([
        ("command", "test".to_string()),
        ("dir", f.path().display().to_string()),
        ("vars", vars.join("\n")),
    ]);
    let step = common::runner::action_step("run", &inputs);
    let mut env: Vec<(String, String)> = worker_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(common::runner::runner_vars(tmp.path()));
    let mut step = common::runner::RunningStep::start(&step, &env);
    let mut seen = Vec::new();
    step.stderr
        .wait_for("remote-step-started", Duration::from_secs(60), &mut seen);
    let pid: i32 = std::fs::read_to_string(&remote_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (code, began) = step.cancel_as_the_runner_does();
    let within = began + Duration::from_secs(10);
    while common::procs::alive(pid) || !step.session_processes().is_empty() {
        assert!(
            Instant::now() < within,
            "10 s after the cancel: remote step alive: {}, step's processes: {:?}",
            common::procs::alive(pid),
            step.session_processes()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    step.stderr.drain_into(&mut seen);
    let log = seen.join("\n");
    assert_eq!(code, Some(130), "{log}");
    assert!(!log.contains("remote-step-finished"), "{log}");
    assert!(common::runner::workdirs(tmp.path()).is_empty(), "{log}");
}

/// Real packer on the test host: a URL's credentials reach the host's command through the
/// 0600 var-file, never packer's command line or its output; a worker_source outside the
/// definition is uploaded like one inside it.
#[test]
fn url_credentials_stay_hidden_and_an_outside_worker_source_is_uploaded() {
    const TOKEN: &str = "ghp_T0k$en'q%40y";
    let url = format!("git+https://x-access-token:{TOKEN}@127.0.0.1:9/o/w.git");
    let sshd = Sshd::prepare().start();
    let source = tempfile::tempdir().unwrap();
    std::fs::create_dir(source.path().join("worker")).unwrap();
    std::fs::write(
        source.path().join("worker/setup.py"),
        "OUTSIDE-SOURCE-MARK\n",
    )
    .unwrap();
    // An absolute path outside the definition, as image.toml may give it.
    let steps = format!(
        r#"[[provision]]
inline = ["echo \"installing from $WORKER_URL\"", "echo 'source at {{{{user `worker_source`}}}}'", "cat {{{{user `worker_source`}}}}/setup.py"]
environment = {{ WORKER_URL = "{{{{user `private_url`}}}}" }}
[variables]
private_url = "{url}"
worker_source = "{}"
"#,
        source.path().join("worker").display()
    );
    let f = definition(&sshd, &steps, "");
    let tmp = tempfile::tempdir().unwrap();
    let argv = tmp.path().join("argv.log");
    let wrapper = PackerStandIn::new()
        .record_argv(&argv)
        .wrap_real()
        .write(&sshd.dir.path().join("packer-wrapper"));
    let cmd = test_cmd(
        f.path(),
        &sshd,
        &["--packer", wrapper.to_str().unwrap()],
        tmp.path(),
    );
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("installing from git+https://***@127.0.0.1:9/o/w.git"),
        "{}",
        r.stderr
    );
    // The uploaded copy, not the local path (the test host being this machine).
    assert!(
        r.stderr.contains("source at /tmp/uworker-worker-source\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("OUTSIDE-SOURCE-MARK"), "{}", r.stderr);
    let args = std::fs::read_to_string(&argv).unwrap();
    assert!(args.contains("-var-file="), "{args}");
    for secret in [TOKEN, "T0k$en", "x-access-token"] {
        assert!(
            !r.all().contains(secret),
            "output holds {secret:?}:\n{}",
            r.all()
        );
        assert!(
            !args.contains(secret),
            "packer's arguments hold {secret:?}: {args}"
        );
    }
}

/// The default definition's worker config steps on a booted host where another local user
/// (`nobody`) made `/tmp/uworker.conf` and every `/tmp/script_N.sh` packer might pick, all
/// world-writable, beforehand: none is read or written (the uploads go to the run's private
/// directory, made 0700 on a tmpfs of its own, removed at the end). And a private
/// repository's URL given in the 0600 var-file is on no command line of the host while a
/// step runs.
#[test]
fn uploads_avoid_files_another_user_made_in_tmp_and_no_command_line_holds_the_url() {
    use common::systemd_host::{self, BootOptions, SystemdHost};
    use common::worker_url::{assert_no_credentials, private_url};

    // The default definition, but only its steps that make the user and install the config.
    let provision = common::repo().join("provision");
    let text = std::fs::read_to_string(provision.join("image.toml")).unwrap();
    let mut definition: toml::Table = text.parse().unwrap();
    let keep = |step: &toml::Value| {
        step.get("worker_config").is_some()
            || matches!(
                step.get("script").and_then(|s| s.as_str()),
                Some("scripts/30-user.sh" | "scripts/40-worker-config.sh")
            )
    };
    let mut steps: Vec<toml::Value> = definition["provision"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| keep(s))
        .cloned()
        .collect();
    assert_eq!(steps.len(), 3, "{steps:?}");
    // A step that, while it runs, records every process's command line on the host.
    let record: toml::Table = r#"
inline = ["cat /proc/[0-9]*/cmdline | tr '\\0' ' ' >\"$HOME/cmdlines\"; echo \"step script in $(dirname \"$0\")\"; stat -c 'private dir %a %U' \"$(dirname \"$0\")\"; stat -f -c 'upload fs %T' \"$(dirname \"$0\")\""]
environment = { WORKER_SOURCE = "{{user `worker_source`}}" }
"#
    .parse()
    .unwrap();
    steps.push(toml::Value::Table(record));
    definition.insert("provision".into(), toml::Value::Array(steps));
    let f = Fixture::new(&toml::to_string(&definition).unwrap());
    for script in ["30-user.sh", "40-worker-config.sh"] {
        let body = std::fs::read_to_string(provision.join("scripts").join(script)).unwrap();
        f.script(&format!("scripts/{script}"), &body);
    }
    let var_file = f.path().join("secret-vars.json");
    std::fs::write(
        &var_file,
        serde_json::json!({ "worker_source": private_url() }).to_string(),
    )
    .unwrap();

    let host = SystemdHost::boot(&BootOptions::volatile(&systemd_host::address(30)));
    // What a local user can do where fs.protected_regular is off (it is here).
    host.root_ok(
        "set -e
        runuser -u nobody -- sh -c 'umask 0; : >/tmp/uworker.conf; i=0
          while [ $i -lt 10000 ]; do : >/tmp/script_$i.sh; i=$((i + 1)); done'",
    );
    // Another local user watching every command line on the host during the run.
    host.root_ok(
        "systemd-run --quiet --uid=nobody --unit=cmdline-watch sh -c 'while :; do
          cat /proc/[0-9]*/cmdline 2>/dev/null | tr \"\\0\" \" \" | grep -a -o \"WORKER_SOURCE=[^ ]*\" >>/tmp/watched; done'
        # The watcher sees a command line that has it.
        sh -c 'sleep 1' WORKER_SOURCE=probe
        grep -q WORKER_SOURCE=probe /tmp/watched",
    );
    let mut cmd = tool(&worker_env());
    cmd.arg("--dir")
        .arg(f.path())
        .arg("--var-file")
        .arg(&var_file)
        .args(host.vars())
        .arg("test");
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_credentials("the run's output", &r.all());

    // The planted files are as they were: empty, nobody's, world-writable.
    let planted = host.root_ok(
        "stat -c '%s %U %a' /tmp/uworker.conf
        find /tmp -maxdepth 1 -name 'script_*.sh' -user nobody -size 0 | wc -l
        find /tmp -maxdepth 1 -name 'script_*.sh' ! -size 0",
    );
    assert_eq!(planted, "0 nobody 666\n10000\n", "{planted}");
    // The config arrived anyway, through the private directory, which is gone.
    let installed =
        host.root_ok(". /etc/uworker/uworker.conf && printf %s \"$UWORKER_JOB_API_PASSWORD\"");
    assert_eq!(installed, NASTY_PASSWORD);
    let step = r
        .stderr
        .lines()
        .find_map(|l| l.split_once("step script in ").map(|(_, d)| d.to_string()))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(step.starts_with("/tmp/uworker-image."), "{step}");
    assert!(r.stderr.contains("private dir 700 ubuntu"), "{}", r.stderr);
    // A tmpfs: the environment file with the token never reached the host's disk.
    assert!(r.stderr.contains("upload fs tmpfs"), "{}", r.stderr);
    assert_eq!(
        host.root_ok("ls -d /tmp/uworker-image.* 2>/dev/null | wc -l"),
        "0\n",
        "the private directory is removed"
    );
    // No command line on the host held the URL's credentials while the step ran.
    let cmdlines = host.root_ok("cat ~ubuntu/cmdlines");
    assert!(cmdlines.contains("/proc/"), "{cmdlines}");
    assert_no_credentials("the host's command lines", &cmdlines);
    let watched =
        host.root_ok("systemctl stop cmdline-watch; cat /tmp/watched 2>/dev/null || true");
    assert_no_credentials(
        "the command lines another user saw during the run",
        &watched,
    );
}

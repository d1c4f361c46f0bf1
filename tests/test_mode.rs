//! `test` end to end: real packer (null builder) against a real sshd on loopback.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
        if !found.status.success() {
            return;
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
        &["--timeout", "4s", "--heartbeat", "1s"],
        tmp.path(),
    ));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(r.stderr.contains("deadline reached"), "{}", r.stderr);
    assert!(
        r.stderr.contains("still running"),
        "heartbeat while quiet:\n{}",
        r.stderr
    );
    assert!(r.stdout.contains("deadline (4s) passed"), "{}", r.stdout);
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
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
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
    use uworker_image::packer::run::{BuildSpec, Printer, StopSignals};
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
    };
    let redactor = Redactor::default();
    let mut out = Vec::new();
    let mut printer = Printer::new(&mut out, &redactor, false);
    let stop = StopSignals::install().unwrap();
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
    use uworker_image::packer::run::{BuildSpec, Printer, StopSignals};
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
            &StopSignals::install().unwrap(),
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
    let wrapper = sshd.dir.path().join("packer-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >>'{}'\nexec packer \"$@\"\n",
            argv.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
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

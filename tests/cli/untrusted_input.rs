//! Bad input never panics, hangs or eats memory: input files that are FIFOs or devices,
//! non-ASCII text where hex is expected, duplicate keys, a BOM, YAML that reads a
//! password as a number, a relative --packer. Each gives a clear message and exit 2.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::packer_standin::PackerStandIn;
use common::*;

const MINIMAL: &str = r#"name = "img"
[target.t]
source_image = "abc"
flavor = "f"
"#;

/// Runs `cmd`, killing it after `limit`: a hang fails the test instead of blocking it.
fn run_within(mut cmd: Command, limit: Duration) -> Run {
    let out = tempfile::tempdir().unwrap();
    let stdout = std::fs::File::create(out.path().join("out")).unwrap();
    let stderr = std::fs::File::create(out.path().join("err")).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("still running after {limit:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(out.path().join("out")).unwrap(),
        stderr: std::fs::read_to_string(out.path().join("err")).unwrap(),
    }
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok);
}

fn assert_bad_input(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(!r.all().contains("panicked"), "{}", r.all());
    for needle in needles {
        assert!(
            r.stderr.contains(needle),
            "missing {needle:?}:\n{}",
            r.stderr
        );
    }
}

#[test]
fn fifos_and_devices_are_refused_by_name_without_hanging() {
    let f = Fixture::new(MINIMAL);
    let fifo = f.path().join("vars.fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    let limit = Duration::from_secs(20);
    for (flag, path, what) in [
        (
            "--var-file",
            fifo,
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            "--var-file",
            "/dev/zero",
            "is a character device, not a regular file",
        ),
        ("--worker-config", fifo, "is a FIFO"),
        ("--worker-config", "/dev/zero", "is a character device"),
        ("--worker-config", "/dev/urandom", "is a character device"),
        ("--openrc", fifo, "is a FIFO"),
        ("--openrc", "/dev/zero", "is a character device"),
    ] {
        let mut cmd = tool(&[]);
        cmd.arg("--dir").arg(f.path()).args([flag, path, "render"]);
        let r = run_within(cmd, limit);
        assert_bad_input(&r, &[&format!("{path}: {what}")]);
    }
    // The definition itself, and a directory where a file is expected.
    let g = Fixture::new(MINIMAL);
    std::fs::remove_file(g.path().join("image.toml")).unwrap();
    mkfifo(&g.path().join("image.toml"));
    let mut cmd = tool(&[]);
    cmd.arg("--dir").arg(g.path()).arg("render");
    assert_bad_input(
        &run_within(cmd, limit),
        &["image.toml (pass the definition directory", "): is a FIFO"],
    );
    let mut cmd = tool(&[]);
    cmd.arg("--dir")
        .arg(f.path())
        .args(["--var-file", f.path().to_str().unwrap(), "render"]);
    assert_bad_input(
        &run_within(cmd, limit),
        &["is a directory, not a regular file"],
    );
    // A record or an earlier manifest.
    let mut cmd = tool(&[]);
    cmd.args(["report", "--record", fifo]);
    assert_bad_input(&run_within(cmd, limit), &["is a FIFO"]);
    let mut cmd = tool(&[]);
    cmd.arg("--dir")
        .arg(f.path())
        .args(["plan", "--previous", "/dev/zero"]);
    assert_bad_input(&run_within(cmd, limit), &["/dev/zero", "character device"]);
    // clouds.yaml named by OS_CLIENT_CONFIG_FILE.
    let mut cmd = tool(&[("OS_CLOUD", "c"), ("OS_CLIENT_CONFIG_FILE", fifo)]);
    cmd.arg("--dir").arg(f.path()).arg("render");
    assert_bad_input(&run_within(cmd, limit), &[&format!("{fifo}: is a FIFO")]);
}

#[test]
fn an_oversized_input_file_is_refused() {
    let f = Fixture::new(MINIMAL);
    let big = f.path().join("big.json");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(64 << 20).unwrap();
    let r = run_tool(
        f.path(),
        &["--var-file", big.to_str().unwrap(), "render"],
        &[],
    );
    assert_bad_input(&r, &["big.json: larger than 1024 KiB"]);
}

#[test]
fn a_record_with_non_ascii_text_is_reported_without_a_panic() {
    let f = Fixture::new(MINIMAL);
    let manifest = r#"{"schema":1,"image":"worker","target":"north","template_sha256":"ff",
        "files":[],"variables":{},"secrets":{},
        "base_image":{"by":"id","value":"b","resolved_id":"b"},"packer_version":"1.6.6"}"#;
    for (fingerprint, commit) in [
        ("sha256:ééééééééééééé", "ééééééééééééé"),
        ("sha256:abcdefghijk\u{1F600}", "0123456789a\u{1F600}"),
    ] {
        let record = format!(
            r#"{{"action":"build","built":true,"target":"north","fingerprint":"{fingerprint}",
            "image_id":"i","image_name":"n","reason":"r","git_commit":"{commit}","manifest":{manifest}}}"#
        );
        f.file("record.json", &record);
        let mut cmd = tool(&[]);
        cmd.args([
            "report",
            "--record",
            f.path().join("record.json").to_str().unwrap(),
        ]);
        let r = run(cmd);
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(
            r.stdout
                .contains(&commit.chars().take(12).collect::<String>()),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn a_relative_packer_path_is_the_one_from_the_invocation_directory() {
    let f = Fixture::new(MINIMAL);
    let bin = f.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    PackerStandIn::new().version().write(&bin.join("p"));
    let mut cmd = tool(&worker_env());
    cmd.current_dir(f.path())
        .args(["--dir", ".", "--packer", "./bin/p", "validate"]);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("packer validate"), "{}", r.all());
}

#[test]
fn an_io_error_is_printed_once() {
    let f = Fixture::new(MINIMAL);
    for args in [
        vec!["--var-file", "absent.json", "render"],
        vec!["--worker-config", "absent.conf", "render"],
        vec!["report", "--record", "absent.json"],
    ] {
        let mut cmd = tool(&[]);
        cmd.current_dir(f.path())
            .arg("--dir")
            .arg(f.path())
            .args(&args);
        let r = run(cmd);
        assert_eq!(r.code, 2, "{}", r.all());
        assert_eq!(
            r.stderr.matches("No such file or directory").count(),
            1,
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = run_tool(&f.path().join("nope"), &["render"], &[]);
    assert_eq!(r.stderr.matches("No such file").count(), 1, "{}", r.stderr);
}

#[test]
fn a_key_given_twice_is_refused_naming_both_lines() {
    let f = Fixture::new(MINIMAL);
    f.file(
        "vars.json",
        "{\n  \"test_host\": \"a\",\n  \"test_ssh_username\": \"u\",\n  \"test_host\": \"b\"\n}\n",
    );
    f.file(
        "w.conf",
        "export UWORKER_JOB_API_PASSWORD='first-s3cret'\n\nexport UWORKER_JOB_API_PASSWORD='second-s3cret'\n",
    );
    let r = run_tool(
        f.path(),
        &[
            "--var-file",
            f.path().join("vars.json").to_str().unwrap(),
            "render",
        ],
        &[],
    );
    assert_bad_input(
        &r,
        &["vars.json:4: `test_host` is set twice (also on line 2)"],
    );
    let r = run_tool(
        f.path(),
        &[
            "--worker-config",
            f.path().join("w.conf").to_str().unwrap(),
            "render",
        ],
        &[],
    );
    assert_bad_input(
        &r,
        &["w.conf:3: `UWORKER_JOB_API_PASSWORD` is set twice (also on line 1)"],
    );
    assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let f = Fixture::new(&format!("\u{feff}{MINIMAL}"));
    f.file("vars.json", "\u{feff}{\"test_host\": \"h\"}");
    f.file("w.conf", "\u{feff}export UWORKER_JOB_API_USERNAME=bob\n");
    let r = run_tool(
        f.path(),
        &[
            "--var-file",
            f.path().join("vars.json").to_str().unwrap(),
            "--worker-config",
            f.path().join("w.conf").to_str().unwrap(),
            "render",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn a_clouds_yaml_password_that_is_not_text_must_be_quoted() {
    let f = Fixture::new(MINIMAL);
    for value in ["0x10", "1e3", "true", "0o17"] {
        f.file(
            "clouds.yaml",
            &format!(
                "clouds:\n  c:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: u\n      password: {value}\n"
            ),
        );
        let clouds = f.path().join("clouds.yaml");
        let r = run_tool(
            f.path(),
            &["render"],
            &[
                ("OS_CLOUD", "c"),
                ("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap()),
            ],
        );
        assert_bad_input(&r, &["`auth.password`", "quote it", "clouds.yaml"]);
    }
}

/// A 1 MiB worker config or RC file, the worst cases for a parser that looks at a line
/// more than once: a quote opened on the first line and never closed (each further line
/// would re-read all before it), and tens of thousands of keys (each checked against all
/// before it). Each is refused with exit 2 within a second.
#[test]
fn a_megabyte_of_worst_case_input_is_refused_within_a_second() {
    let f = Fixture::new(MINIMAL);
    let just_under_the_cap = |head: &str, line: &dyn Fn(usize) -> String, tail: &str| {
        let mut text = head.to_string();
        for n in 0.. {
            let next = line(n);
            if text.len() + next.len() + tail.len() >= 1 << 20 {
                break;
            }
            text.push_str(&next);
        }
        text + tail
    };
    let cases = [
        (
            "--worker-config",
            just_under_the_cap("export UWORKER_JOB_API_PASSWORD='", &|_| "a\n".into(), ""),
            "single quote opened in the value of UWORKER_JOB_API_PASSWORD is never closed",
        ),
        (
            "--openrc",
            just_under_the_cap("export OS_PASSWORD=\"", &|_| "a\n".into(), ""),
            "double quote opened in the value of OS_PASSWORD is never closed",
        ),
        (
            "--worker-config",
            just_under_the_cap("", &|n| format!("export UWORKER_K{n}=1\n"), "oops\n"),
            "expected `export KEY=value`",
        ),
        (
            "--openrc",
            just_under_the_cap("", &|n| format!("export OS_K{n}=1\n"), "oops\n"),
            "which is not run",
        ),
    ];
    for (flag, text, needle) in cases {
        let file = f.path().join("big.txt");
        std::fs::write(&file, &text).unwrap();
        assert!(text.len() > 1_000_000 && text.len() < 1 << 20);
        let mut cmd = tool(&[]);
        cmd.arg("--dir")
            .arg(f.path())
            .arg(flag)
            .arg(&file)
            .arg("render");
        let started = Instant::now();
        let r = run_within(cmd, Duration::from_secs(15));
        let took = started.elapsed();
        assert_bad_input(&r, &[needle]);
        assert!(
            took < Duration::from_secs(1),
            "{flag} {needle}: took {took:?}"
        );
    }
}

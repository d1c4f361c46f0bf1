//! The worker really runs: `uworker-image test` with the repository's default definition
//! provisions a booted Debian 12 host (systemd as PID 1, tests/harness/systemd-host.sh),
//! and the worker (a stand-in with the real one's shape, tests/fixtures/worker-standin,
//! installed as a local worker_source) starts under systemd as user uworker and logs in to
//! a job-service stand-in on loopback with exactly the configured credentials.
//!
//! One Debian host serves the whole sequence (first run, second run, docker mode, registry
//! login), so the slow part (apt upgrade, docker.io, pip) runs once there.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::job_service::{self, JobService};
use common::systemd_host::{BootOptions, SystemdHost};
use common::*;

/// This test's loopback addresses (127.0.2.0/24 is this suite's; 127.0.3.0/24 belongs to
/// the end-to-end tests).
const HOST_ADDRESS: &str = "127.0.2.10";
const UNIT: &str = "uworker.service";

/// Values that break naive quoting, `EnvironmentFile=` and argument parsing: quotes, `$`,
/// spaces, backslashes, `#`, `=`, a leading dash, a newline.
const USERNAME: &str = "-o'brien \"$USER\" \\x #not=comment";
const PASSWORD: &str = "-p'a\"s s$HOME `id` \\n # k=v\\\nsecond line";
const JOB_CMD: &str = "/bin/echo 'job' \"$1\" # a=b";
const PROJECT: &str = "proj-1";
const EXTRA: &str = "export X='y'; $(id) \\ =#";

fn worker_config(service: &JobService, command_mode: bool) -> Vec<(String, String)> {
    let mut config = vec![
        ("UWORKER_JOB_API_ROOT".to_string(), service.root()),
        ("UWORKER_JOB_API_USERNAME".into(), USERNAME.into()),
        ("UWORKER_JOB_API_PASSWORD".into(), PASSWORD.into()),
        ("UWORKER_EXTRA_VALUE".into(), EXTRA.into()),
    ];
    if command_mode {
        config.push(("UWORKER_JOB_CMD".into(), JOB_CMD.into()));
        config.push(("UWORKER_JOB_API_PROJECT".into(), PROJECT.into()));
    }
    config
}

/// `uworker-image test` against the host, the worker config from the environment.
fn provision(def: &Path, host: &SystemdHost, config: &[(String, String)]) -> Run {
    let vars: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut cmd = tool(&vars);
    cmd.arg("--dir")
        .arg(def)
        .args(host.vars())
        .args(["--var", "worker_source=worker-standin"])
        .arg("test");
    let started = Instant::now();
    let r = run(cmd);
    eprintln!(
        "uworker-image test: exit {} after {:?}",
        r.code,
        started.elapsed()
    );
    for (_, value) in config {
        for line in value.lines().filter(|l| l.trim().len() >= 4) {
            assert!(!r.all().contains(line), "leaked {line:?}:\n{}", r.all());
        }
    }
    r
}

fn show(host: &SystemdHost, property: &str) -> String {
    host.root_ok(&format!(
        "systemctl show --property={property} --value {UNIT}"
    ))
    .trim()
    .to_string()
}

/// What a second run must leave alone: packages, the user, every installed file with its
/// mode, owner and mtime, the venv, the unit's state and the worker's process.
fn state(host: &SystemdHost) -> String {
    host.root_ok(
        "set -e
        dpkg-query -W -f '${Package} ${Version} ${Status}\\n' | sha256sum
        getent passwd uworker; id uworker
        find /opt/uworker /etc/uworker /etc/systemd/system/uworker.service \
             /etc/systemd/system/uworker.service.d /etc/systemd/system/multi-user.target.wants \
             -printf '%p %m %u %g %s %T@\\n' | LC_ALL=C sort | sha256sum
        sha256sum /etc/uworker/uworker.conf /etc/systemd/system/uworker.service.d/mode.conf
        systemctl is-enabled uworker.service docker.service
        systemctl show --property=MainPID --property=NRestarts --property=ActiveState uworker.service",
    )
}

/// How often the worker logged in to the job-service stand-in (once per start).
fn logins(service: &JobService) -> usize {
    service
        .requests()
        .iter()
        .filter(|r| r.path == "/token")
        .count()
}

/// Waits until the service stand-in has seen a token request and a job fetch.
fn wait_for_login(service: &JobService) -> Vec<job_service::Request> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let requests = service.requests();
        if requests.iter().any(|r| r.path == "/token")
            && requests.iter().any(|r| r.path.ends_with("/jobs/fetch"))
        {
            return requests;
        }
        assert!(
            Instant::now() < until,
            "the worker never logged in; requests: {requests:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The unit runs the worker in command mode as uworker, after the network and free of
/// docker, and the worker logged in with exactly the configured values. Returns its PID.
fn assert_running_in_command_mode(
    host: &SystemdHost,
    service: &JobService,
    config: &[(String, String)],
) -> String {
    assert_eq!(
        host.root_ok(&format!("systemctl is-active {UNIT}")),
        "active\n"
    );
    assert_eq!(
        host.root_ok(&format!("systemctl is-enabled {UNIT}")),
        "enabled\n"
    );
    assert_eq!(show(host, "User"), "uworker");
    let pid = show(host, "MainPID");
    assert_ne!(pid, "0");
    let user = host.root_ok(&format!("ps -o user= -p {pid}"));
    assert_eq!(user.trim(), "uworker", "the worker process runs as uworker");
    assert!(
        host.root_ok(&format!("cat /proc/{pid}/cmdline | tr '\\0' ' '"))
            .contains("/opt/uworker/venv/bin/uworker"),
        "the unit's main process is the worker itself (exec'd by uworker-run)"
    );

    // After the network; in command mode docker is neither required nor waited for.
    assert!(show(host, "After").contains("network-online.target"));
    assert!(!show(host, "Requires").contains("docker"));
    assert!(!show(host, "After").contains("docker"));

    let requests = wait_for_login(service);
    let journal = host.root_ok(&format!("journalctl --unit={UNIT} --no-pager --quiet"));
    assert!(
        journal.contains("uworker stand-in: command mode"),
        "the worker's output is in its journal: {journal}"
    );
    let token = requests.iter().find(|r| r.path == "/token").unwrap();
    assert_eq!(
        token.basic_auth,
        Some((USERNAME.to_string(), PASSWORD.to_string())),
        "the token request carries exactly the configured username and password"
    );
    assert_eq!(token.header("x-standin-mode"), Some("command"));
    let seen = job_service::decode_env(token.header("x-standin-env").unwrap());
    let expected: serde_json::Map<String, serde_json::Value> = config
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    assert_eq!(
        seen, expected,
        "every UWORKER_* value reaches the worker byte for byte"
    );
    let fetch = requests
        .iter()
        .find(|r| r.path.ends_with("/jobs/fetch"))
        .unwrap();
    assert_eq!(fetch.path, format!("/v4/{PROJECT}/jobs/fetch"));
    assert_eq!(
        fetch.basic_auth,
        Some((job_service::TOKEN.to_string(), String::new()))
    );

    pid
}

/// Issue 8's assertions: the user in group docker, the venv's `uworker` runs, the unit
/// verifies, the config is 0600 and sources to the exact values, docker.io installed and
/// enabled, python3-venv installed.
fn assert_installed(host: &SystemdHost, config: &[(String, String)]) {
    let groups = host.root_ok("id -nG uworker");
    assert!(
        groups.split_whitespace().any(|g| g == "docker"),
        "uworker is in group docker: {groups}"
    );
    host.root_ok("runuser -u uworker -- /opt/uworker/venv/bin/uworker --help >/dev/null");
    host.root_ok("/opt/uworker/venv/bin/python -c 'import requests'");
    let verify = host.root(&format!("systemd-analyze verify {UNIT} 2>&1"));
    let verify_out = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {verify_out}"
    );
    assert!(
        !verify_out.contains("uworker"),
        "no complaint about the unit: {verify_out}"
    );
    assert_eq!(
        host.root_ok("stat -c '%U %G %a' /etc/uworker/uworker.conf"),
        "uworker uworker 600\n"
    );
    let sourced = host.root_ok(
        "set -eu; . /etc/uworker/uworker.conf
         for k in $(compgen -e | grep '^UWORKER_'); do printf '%s=%s\\0' \"$k\" \"${!k}\" | base64 -w0; echo; done",
    );
    let sourced: BTreeMap<String, String> = sourced
        .lines()
        .map(|l| {
            let raw = base64_decode(l);
            let text = String::from_utf8(raw).unwrap();
            let (k, v) = text.trim_end_matches('\0').split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let config_map: BTreeMap<String, String> = config.iter().cloned().collect();
    assert_eq!(
        sourced, config_map,
        "sourcing the config yields the exact values"
    );
    host.root_ok("dpkg-query -W -f '${Status}' docker.io | grep -qx 'install ok installed'");
    host.root_ok("dpkg-query -W -f '${Status}' python3-venv | grep -qx 'install ok installed'");
    assert_eq!(
        host.root_ok("systemctl is-enabled docker.service"),
        "enabled\n"
    );
}

#[test]
fn the_worker_runs_on_a_booted_host_in_both_modes_and_a_second_run_changes_nothing() {
    let t0 = Instant::now();
    let service = JobService::start(HOST_ADDRESS);
    let def = default_definition_with_worker_standin();
    let mut host = SystemdHost::boot(&BootOptions::volatile(HOST_ADDRESS));

    // 1. Command mode: provisioned, started, logged in with the exact credentials.
    let config = worker_config(&service, true);
    let r = provision(def.path(), &host, &config);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("(command mode)"), "{}", r.stderr);
    let first_run = t0.elapsed();

    let pid = assert_running_in_command_mode(&host, &service, &config);
    assert_installed(&host, &config);
    // The real worker's dependency, built with the setuptools<58 treatment (Python 3.11).
    host.root_ok("/opt/uworker/venv/bin/python -c 'import cloghandler'");

    // It keeps running: no restart 10 s after it started (60-start.sh watched it for
    // 5 s of those already).
    let started = show(&host, "ActiveEnterTimestampMonotonic");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(show(&host, "NRestarts"), "0");
    assert_eq!(show(&host, "MainPID"), pid, "the same worker process");
    assert_eq!(show(&host, "ActiveEnterTimestampMonotonic"), started);
    assert_eq!(show(&host, "ActiveState"), "active");

    // 2. A second run succeeds, changes nothing and leaves the worker running.
    let before = state(&host);
    let r = provision(def.path(), &host, &config);
    assert_eq!(r.code, 0, "{}", r.all());
    for unchanged in [
        "35-worker.sh: the worker is installed from this source already",
        "40-worker-config.sh: /etc/uworker/uworker.conf is unchanged",
        "50-service.sh: the uworker unit is in place (command mode)",
        "60-start.sh: the worker is running and nothing changed",
    ] {
        assert!(
            r.stderr.contains(unchanged),
            "missing {unchanged:?}:\n{}",
            r.stderr
        );
    }
    assert!(
        r.stderr.contains("0 upgraded, 0 newly installed"),
        "{}",
        r.stderr
    );
    assert_eq!(state(&host), before, "the second run changed the host");
    assert_eq!(show(&host, "MainPID"), pid);
    let second_run = t0.elapsed() - first_run;

    // 3. Docker mode without a docker daemon (none can run in the container): the worker
    // is not started, the status says why, and nothing restarts in a loop.
    let logins_before = logins(&service);
    let config = worker_config(&service, false);
    let r = provision(def.path(), &host, &config);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("(docker mode)"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("60-start.sh: uworker.service is not running"),
        "{}",
        r.stderr
    );
    let status = host.root(&format!(
        "SYSTEMD_COLORS=0 systemctl status --no-pager {UNIT}"
    ));
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.contains("Dependency failed"), "{status}");
    assert!(status.contains("mode.conf"), "{status}");
    // Past RestartSec (10 s): still not started, not restarting.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(show(&host, "NRestarts"), "0");
    assert_ne!(show(&host, "ActiveState"), "active");
    assert!(
        !show(&host, "SubState").contains("auto-restart"),
        "not waiting to restart"
    );
    assert_eq!(
        logins(&service),
        logins_before,
        "no worker started in docker mode"
    );
    assert!(
        !service
            .requests()
            .iter()
            .any(|r| r.path == "/v4/projects/jobs/fetch"),
        "no docker-mode fetch"
    );
    assert!(host
        .root_ok("cat /etc/systemd/system/uworker.service.d/mode.conf")
        .contains("Requires=docker.service"));

    // 4. The start command's registry login (docker mode, UWORKER_REGISTRY_* set): no
    // docker daemon runs here, so a `docker` first on PATH records what it is given; the
    // worker then starts in docker mode and refuses, as the real one does, without docker.
    let registry = [
        ("UWORKER_REGISTRY_URL", "registry.example.org:5000"),
        ("UWORKER_REGISTRY_USERNAME", "-r'obot $x #=\\"),
        ("UWORKER_REGISTRY_PASSWORD", "-tok'en \"$y\" \\ #=\nline 2"),
    ];
    let mut config = config;
    config.extend(registry.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let r = provision(def.path(), &host, &config);
    assert_eq!(r.code, 1, "{}", r.all());
    let login = host.root(
        r#"set -e
        install -d -o uworker -m 0700 /tmp/docker-shim
        cat >/tmp/docker-shim/docker <<'SHIM'
#!/bin/sh
[ "$1" = login ] || exit 1
printf '%s\0' "$@" >/tmp/docker-shim/args
cat >/tmp/docker-shim/stdin
SHIM
        chmod 0755 /tmp/docker-shim/docker
        cd /var/lib/uworker
        runuser -u uworker -- env PATH=/tmp/docker-shim:/usr/bin:/bin \
          /opt/uworker/bin/uworker-run --no-command 2>&1 || echo "exit $?"
        base64 -w0 /tmp/docker-shim/args; echo; base64 -w0 /tmp/docker-shim/stdin; echo"#,
    );
    let login = String::from_utf8_lossy(&login.stdout).to_string();
    let lines: Vec<&str> = login.lines().collect();
    assert!(
        login.contains("The docker daemon is not available") && login.contains("exit 1"),
        "{login}"
    );
    let args = base64_decode(lines[lines.len() - 2]);
    let args: Vec<&str> = std::str::from_utf8(&args)
        .unwrap()
        .trim_end_matches('\0')
        .split('\0')
        .collect();
    assert_eq!(
        args,
        [
            "login",
            "--username",
            registry[1].1,
            "--password-stdin",
            "--",
            registry[0].1
        ]
    );
    assert_eq!(
        base64_decode(lines[lines.len() - 1]),
        registry[2].1.as_bytes(),
        "the password arrives on stdin, exactly"
    );

    host.stop();
    // Everything happened inside the host: this machine has no worker.
    assert!(!Path::new("/etc/uworker").exists());
    assert!(!Path::new("/opt/uworker").exists());
    let user = std::process::Command::new("getent")
        .args(["passwd", "uworker"])
        .output()
        .unwrap();
    assert!(!user.status.success(), "no uworker user on this machine");
    eprintln!(
        "booted-host sequence: first run {first_run:?}, second run {second_run:?}, total {:?}",
        t0.elapsed()
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

/// A missing required value is refused by `validate` and `test` before any host is
/// touched: the "host" here is a listener that counts connections.
#[test]
fn a_missing_value_is_refused_before_any_host_is_touched() {
    let def = default_definition_with_worker_standin();
    let listener = TcpListener::bind("127.0.2.11:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_var = format!("test_host=127.0.2.11:{port}");
    let key = def.path().join("no-key");
    std::fs::write(&key, "").unwrap();
    let key_var = format!("test_ssh_key={}", key.display());
    let incomplete = [
        ("UWORKER_JOB_API_ROOT", API_ROOT),
        ("UWORKER_JOB_API_USERNAME", NASTY_USERNAME),
    ];
    for command in ["validate", "test"] {
        let r = run_tool(
            def.path(),
            &["--var", &host_var, "--var", &key_var, command],
            &incomplete,
        );
        assert_eq!(r.code, 2, "{command}: {}", r.all());
        assert!(
            r.stderr.contains("UWORKER_JOB_API_PASSWORD"),
            "{command}: {}",
            r.stderr
        );
    }
    // Command mode needs both of its values.
    let mut half = worker_env();
    half.push(("UWORKER_JOB_CMD", "run-job"));
    let r = run_tool(
        def.path(),
        &["--var", &host_var, "--var", &key_var, "test"],
        &half,
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("UWORKER_JOB_API_PROJECT") && r.stderr.contains("command mode"),
        "{}",
        r.stderr
    );
    assert!(
        listener.accept().is_err(),
        "nothing connected to the test host"
    );
}

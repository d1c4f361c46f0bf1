//! The worker really runs: `uworker-image test` with the repository's default definition
//! provisions a booted Debian host (systemd as PID 1, tests/harness/systemd-host.sh), and
//! the worker (a stand-in with the real one's shape, tests/fixtures/worker-standin,
//! installed as a local worker_source) starts under systemd, sandboxed, as user uworker and
//! logs in to a job-service stand-in on loopback with exactly the configured credentials.
//!
//! Two systems, one for each install path of 35-worker.sh: Debian 12 (Python 3.11,
//! ConcurrentLogHandler built) runs the whole sequence (first run, second run, docker mode
//! without and with a docker daemon stand-in, registry login, back to command mode);
//! Debian 13 (Python 3.13, the path of Ubuntu 24.04: no ConcurrentLogHandler) runs command
//! mode twice. Each host runs the slow part (apt upgrade, docker.io, pip) once.

use crate::common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::job_service::{self, JobService};
use common::systemd_host::{self, BootOptions, SystemdHost, DEBIAN_12, DEBIAN_13};
use common::*;
use tempfile::TempDir;

/// The last byte of each host's loopback address in the booted-host tests' /24
/// (UWORKER_IMAGE_TEST_HOST_NET, default 127.0.2; 127.0.3.0/24 belongs to the end-to-end tests).
const DEBIAN_12_HOST: u8 = 10;
const LISTENER: u8 = 11;
const DEBIAN_13_HOST: u8 = 12;
const UNIT: &str = "uworker.service";
/// `systemd-analyze security` exposure of the unit: 9.2 (UNSAFE) before the sandbox.
const MAX_EXPOSURE: f64 = 2.0;

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

/// The default definition with the worker stand-in, also passing on UWORKER_EXTRA_VALUE
/// (`[worker] pass_through`): a key it does not otherwise name reaches the host too.
fn definition_passing_extra() -> TempDir {
    let def = default_definition_with_worker_standin();
    let toml = def.path().join("image.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let optional = "optional = [\"UWORKER_REGISTRY_URL\", \"UWORKER_REGISTRY_USERNAME\", \"UWORKER_REGISTRY_PASSWORD\"]";
    assert!(text.contains(optional), "{text}");
    let passing = format!("{optional}\npass_through = [\"UWORKER_EXTRA_VALUE\"]");
    std::fs::write(&toml, text.replacen(optional, &passing, 1)).unwrap();
    def
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

/// Issue 8's assertions, with issue 16's ownership: the venv's `uworker` runs, the unit
/// verifies, the config is root:uworker 0640 (the worker reads it, cannot change it) and
/// sources to the exact values, docker.io installed and enabled, python3-venv installed,
/// and uworker in group docker (root-equivalent) only in docker mode.
fn assert_installed(host: &SystemdHost, config: &[(String, String)], docker_mode: bool) {
    let groups = host.root_ok("id -nG uworker");
    assert_eq!(
        groups.split_whitespace().any(|g| g == "docker"),
        docker_mode,
        "uworker is in group docker in docker mode only: {groups}"
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
        host.root_ok("stat -c '%U %G %a' /etc/uworker/uworker.conf /etc/uworker"),
        "root uworker 640\nroot uworker 750\n"
    );
    let write = host.root(
        "runuser -u uworker -- sh -c ': >>/etc/uworker/uworker.conf' 2>&1 ||
         runuser -u uworker -- sh -c ': >/etc/uworker/other.conf' 2>&1",
    );
    assert!(
        !write.status.success(),
        "the worker cannot change its config or add one: {}",
        String::from_utf8_lossy(&write.stdout)
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

/// The running worker is sandboxed: `systemd-analyze security` rates the unit at most
/// MAX_EXPOSURE, and the worker process has no privileges to gain, no capabilities, a
/// system-call filter, a read-only system and only its state directory to write.
/// Returns the exposure score.
fn assert_sandboxed(host: &SystemdHost, pid: &str) -> f64 {
    let analysis = host.root_ok(&format!(
        "SYSTEMD_COLORS=0 systemd-analyze security --no-pager {UNIT} 2>&1"
    ));
    let exposure: f64 = analysis
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for uworker.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{analysis}"));
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{analysis}"
    );
    let status = host.root_ok(&format!("cat /proc/{pid}/status"));
    for expected in [
        "NoNewPrivs:\t1",
        "CapBnd:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "Seccomp:\t2",
    ] {
        assert!(
            status.lines().any(|l| l == expected),
            "{expected:?} in the worker's status:\n{status}"
        );
    }
    // In the worker's own mount namespace, as the worker.
    let as_worker = format!(
        "nsenter --target {pid} --mount --setuid $(id -u uworker) --setgid $(id -g uworker) --"
    );
    for read_only in [
        "/opt/uworker/bin/probe",
        "/etc/probe",
        "/usr/local/bin/probe",
    ] {
        let out = host.root(&format!("{as_worker} sh -c ': >{read_only}' 2>&1"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() && text.contains("Read-only file system"),
            "{read_only} is read-only for the worker: {text}"
        );
    }
    host.root_ok(&format!(
        "{as_worker} sh -c ': >/var/lib/uworker/probe && rm /var/lib/uworker/probe && : >/tmp/probe'"
    ));
    assert_eq!(
        host.root_ok(&format!("{as_worker} sh -c 'ls -A /home | wc -l'")),
        "0\n",
        "ProtectHome: /home is empty for the worker"
    );
    exposure
}

/// Provisions a fresh host of `release` in command mode, checks the worker (running,
/// sandboxed, exact credentials, keeps running), then provisions again and checks that
/// nothing changed. Returns the host, the job service, the definition, the config and
/// the worker's first `test` output.
fn command_mode_twice(
    release: &'static str,
    last: u8,
) -> (SystemdHost, JobService, TempDir, Vec<(String, String)>, Run) {
    let t0 = Instant::now();
    let address = systemd_host::address(last);
    let service = JobService::start(&address);
    let def = definition_passing_extra();
    let host = SystemdHost::boot(&BootOptions::volatile_release(release, &address));

    // 1. Command mode: provisioned, started, logged in with the exact credentials.
    let config = worker_config(&service, true);
    let first = provision(def.path(), &host, &config);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(first.stderr.contains("(command mode)"), "{}", first.stderr);
    let first_run = t0.elapsed();

    let pid = assert_running_in_command_mode(&host, &service, &config);
    assert_installed(&host, &config, false);
    let exposure = assert_sandboxed(&host, &pid);

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
    eprintln!(
        "{release}: first run {first_run:?}, second run {:?}, exposure {exposure}",
        t0.elapsed() - first_run
    );
    (host, service, def, config, first)
}

/// The file log handler the worker's logging module chose, from the line it logged
/// through the standard library's logging (its format: `<time> - INFO: <message>`).
fn log_handler(host: &SystemdHost) -> String {
    let journal = host.root_ok(&format!("journalctl --unit={UNIT} --no-pager --quiet"));
    journal
        .lines()
        .filter_map(|l| l.split_once(" - INFO: uworker stand-in: file log handler "))
        .map(|(_, h)| h.trim().to_string())
        .next_back()
        .unwrap_or_else(|| panic!("no log handler line in the journal:\n{journal}"))
}

/// Waits for the first request after the first `seen` ones that `pick` accepts.
fn wait_for_request(
    service: &JobService,
    seen: usize,
    what: &str,
    pick: impl Fn(&job_service::Request) -> bool,
) -> job_service::Request {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let requests = service.requests();
        if let Some(r) = requests.iter().skip(seen).find(|r| pick(r)) {
            return r.clone();
        }
        assert!(Instant::now() < until, "no {what}; requests: {requests:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The docker daemon stand-in (tests/fixtures/dockerd-standin) as the host's
/// docker.service, on /run/docker.sock (root:docker 0660), recording each API request.
fn install_docker_daemon_standin(host: &SystemdHost) {
    let daemon = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dockerd-standin/dockerd-standin.py"),
    )
    .unwrap();
    host.root_ok(&format!(
        r#"set -e
cat >/usr/local/sbin/dockerd-standin <<'PY'
{daemon}
PY
cat >/run/systemd/system/docker.service <<'UNIT'
[Unit]
Description=docker daemon stand-in (tests)
[Service]
ExecStart=/usr/bin/python3 /usr/local/sbin/dockerd-standin /run/docker.sock /run/dockerd-standin.jsonl
ExecStartPost=/bin/sh -c 'until [ -S /run/docker.sock ]; do sleep 0.1; done'
UNIT
systemctl stop docker.socket 2>/dev/null || true
systemctl mask --runtime docker.socket
systemctl daemon-reload
systemctl start docker.service"#
    ));
}

/// The requests the docker daemon stand-in recorded.
fn docker_requests(host: &SystemdHost) -> Vec<serde_json::Value> {
    host.root_ok("cat /run/dockerd-standin.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn debian_12_the_worker_runs_sandboxed_in_both_modes_and_a_second_run_changes_nothing() {
    let t0 = Instant::now();
    let (mut host, service, def, _, first) = command_mode_twice(DEBIAN_12, DEBIAN_12_HOST);
    // The real worker's dependency, built with the setuptools<58 treatment (Python 3.11).
    host.root_ok("/opt/uworker/venv/bin/python -c 'import cloghandler'");
    assert!(!first.stderr.contains("without ConcurrentLogHandler"));
    assert_eq!(
        log_handler(&host),
        "cloghandler.ConcurrentRotatingFileHandler"
    );

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
    assert_installed(&host, &config, true);

    // 4. Docker mode with a docker daemon (the stand-in, driven by the real docker CLI
    // through /run/docker.sock) and UWORKER_REGISTRY_* set: the sandboxed unit logs in to
    // the registry (password on stdin, docker's login file in the worker's home), then the
    // worker reaches the daemon and the job service with the exact credentials.
    install_docker_daemon_standin(&host);
    let registry = [
        ("UWORKER_REGISTRY_URL", "registry.example.org:5000"),
        ("UWORKER_REGISTRY_USERNAME", "-r'obot $x #=\\"),
        ("UWORKER_REGISTRY_PASSWORD", "-tok'en \"$y\" \\ #=\nline 2"),
    ];
    let mut config = config;
    config.extend(registry.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let seen = service.requests().len();
    let r = provision(def.path(), &host, &config);
    assert_eq!(r.code, 0, "{}", r.all());
    let token = wait_for_request(&service, seen, "docker-mode login", |r| r.path == "/token");
    assert_eq!(token.header("x-standin-mode"), Some("docker"));
    assert_eq!(
        token.basic_auth,
        Some((USERNAME.to_string(), PASSWORD.to_string()))
    );
    wait_for_request(&service, seen, "docker-mode fetch", |r| {
        r.path == "/v4/projects/jobs/fetch"
    });
    let docker = docker_requests(&host);
    let auth: Vec<&serde_json::Value> = docker
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/auth"))
        .collect();
    assert_eq!(auth.len(), 1, "one registry login: {docker:?}");
    let login: serde_json::Value = serde_json::from_str(auth[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(login["username"], registry[1].1);
    assert_eq!(
        login["password"], registry[2].1,
        "the registry password arrives exactly"
    );
    assert_eq!(login["serveraddress"], registry[0].1);
    assert!(
        docker
            .iter()
            .any(|r| r["path"].as_str().unwrap().ends_with("/info")),
        "the worker asked the daemon (`docker info`): {docker:?}"
    );
    assert_eq!(
        host.root_ok("stat -c '%U %a' /var/lib/uworker/.docker/config.json"),
        "uworker 600\n"
    );
    let pid = show(&host, "MainPID");
    assert_sandboxed(&host, &pid);

    // 5. Back to command mode: out of group docker again, and the worker runs.
    let config = worker_config(&service, true);
    let seen = service.requests().len();
    let r = provision(def.path(), &host, &config);
    assert_eq!(r.code, 0, "{}", r.all());
    let token = wait_for_request(&service, seen, "command-mode login", |r| r.path == "/token");
    assert_eq!(token.header("x-standin-mode"), Some("command"));
    assert_installed(&host, &config, false);

    host.stop();
    // Everything happened inside the host: this machine has no worker.
    assert!(!Path::new("/etc/uworker").exists());
    assert!(!Path::new("/opt/uworker").exists());
    let user = std::process::Command::new("getent")
        .args(["passwd", "uworker"])
        .output()
        .unwrap();
    assert!(!user.status.success(), "no uworker user on this machine");
    eprintln!("Debian 12 booted-host sequence: {:?}", t0.elapsed());
}

#[test]
fn debian_13_the_worker_runs_without_concurrentloghandler_and_a_second_run_changes_nothing() {
    let t0 = Instant::now();
    let (host, _service, _def, _, first) = command_mode_twice(DEBIAN_13, DEBIAN_13_HOST);
    assert_eq!(
        host.root_ok(". /etc/os-release; echo \"$ID $VERSION_ID\""),
        "debian 13\n"
    );
    assert!(host
        .root_ok("/opt/uworker/venv/bin/python -V")
        .starts_with("Python 3.13"));
    // The Python 3.12+ path: said, done, and the worker logs through the standard library.
    assert!(
        first.stderr.contains(
            "35-worker.sh: Python 3.12+: the worker is installed without ConcurrentLogHandler"
        ),
        "{}",
        first.stderr
    );
    assert!(
        !host
            .root("/opt/uworker/venv/bin/python -c 'import cloghandler'")
            .status
            .success(),
        "no ConcurrentLogHandler on Python 3.13"
    );
    assert_eq!(log_handler(&host), "logging.handlers.RotatingFileHandler");
    drop(host);
    eprintln!("Debian 13 booted-host sequence: {:?}", t0.elapsed());
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
    let address = systemd_host::address(LISTENER);
    let listener = TcpListener::bind((address.as_str(), 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_var = format!("test_host={address}:{port}");
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

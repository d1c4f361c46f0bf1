//! End to end: `build` runs packer's real openstack builder against the real Keystone and
//! Glance and the Compute stand-in (tests/harness/compute), which holds every request and
//! answer to Nova's own schemas (floating IPs: neutron-lib's definitions) and boots each
//! server as a real systemd host. Scenarios run one at a time (one stand-in, a 2-core
//! machine); each ends with the stand-in reporting no server, key pair, container or
//! floating IP left, no schema violation, no unimplemented call and no error of its own.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::compute::{address, compute, faults, Compute, StandInServer};
use common::job_service::JobService;
use common::openstack::{env_pairs, unique};
use common::systemd_host::{BootOptions, SystemdHost};
use common::*;
use reqwest::Method;
use uworker_image::env::Env;
use uworker_image::openstack::client::{Backoff, Cloud, OpenStackError};
use uworker_image::openstack::credentials::Credentials;
use uworker_image::openstack::glance::{Glance, Image, IMAGE_PROPERTY};

/// Base images: placeholders in Glance whose standard os_distro/os_version properties
/// tell the stand-in which cached root filesystem a server of theirs boots (as a cloud
/// boots the image's disk). Debian 12 and 13: Debian's archive is the one distribution
/// registry these machines reach, so its systems are the root filesystems the harness can
/// build. Debian 13 (Python 3.13) stands for the default definition's Ubuntu 24.04.
pub(crate) const BASE_IMAGE: &str = "Debian 12 (e2e stand-in base)";
const BASE_IMAGE_13: &str = "Debian 13 (e2e stand-in base)";
const BASE_IMAGES: [(&str, &str, &str); 2] = [
    (BASE_IMAGE, "debian", "12"),
    (BASE_IMAGE_13, "debian", "13"),
];

/// One scenario at a time; each starts from a reset stand-in. The images of the
/// definitions it names are deleted when it ends, passed or failed.
pub(crate) struct Scenario {
    pub(crate) compute: &'static Compute,
    pub(crate) cloud: Cloud,
    pub(crate) definitions: std::cell::RefCell<Vec<String>>,
    _turn: MutexGuard<'static, ()>,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        for name in self.definitions.take() {
            self.delete_images(&name);
        }
    }
}

impl Scenario {
    pub(crate) fn start() -> Scenario {
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let compute = compute();
        compute.reset();
        let cloud = region_cloud(compute);
        ensure_base_images(&cloud);
        Scenario {
            compute,
            cloud,
            definitions: Default::default(),
            _turn: turn,
        }
    }

    /// A definition name of this scenario: its images go when the scenario ends.
    pub(crate) fn definition_name(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.definitions.borrow_mut().push(name.clone());
        name
    }

    /// Images of definition `name` in Glance.
    pub(crate) fn images(&self, name: &str) -> Vec<Image> {
        images_in(&self.cloud, name)
    }

    fn delete_images(&self, name: &str) {
        delete_images_in(&self.cloud, name);
    }

    /// Every scenario ends here: nothing left in the stand-in, nothing off Nova's spec.
    pub(crate) fn finish(&self) -> common::compute::Report {
        let report = self.compute.settled_report(Duration::from_secs(30));
        report.assert_clean();
        report
    }
}

/// Images of definition `name` in `cloud`'s Glance (its region's).
pub(crate) fn images_in(cloud: &Cloud, name: &str) -> Vec<Image> {
    Glance::new(cloud)
        .unwrap()
        .list(&[(IMAGE_PROPERTY, name)], |_| true)
        .unwrap()
}

/// Deletes them (a scenario's clean-up: quiet while a test panics).
pub(crate) fn delete_images_in(cloud: &Cloud, name: &str) {
    let glance = Glance::new(cloud).unwrap();
    for image in images_in(cloud, name) {
        let deleted = glance.delete(&image.id);
        assert!(deleted.is_ok() || std::thread::panicking(), "{deleted:?}");
    }
}

pub(crate) fn region_cloud(compute: &Compute) -> Cloud {
    region_cloud_with(compute, Backoff::default())
}

fn region_cloud_with(compute: &Compute, backoff: Backoff) -> Cloud {
    let env = Env::from_pairs(compute.os_env());
    let credentials = Credentials::from_env(&env).unwrap().unwrap();
    Cloud::connect(&credentials, backoff).unwrap()
}

/// The base images in `cloud`'s region's Glance, once per region.
pub(crate) fn ensure_base_images(cloud: &Cloud) {
    static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let region = cloud.region().unwrap_or_default().to_string();
    if done.contains(&region) {
        return;
    }
    {
        let glance = Glance::new(cloud).unwrap();
        for (name, distro, version) in BASE_IMAGES {
            // Exactly one image of the name: packer refuses a name that several have.
            let found = glance.list(&[("name", name)], |_| true).unwrap();
            let right = |i: &Image| {
                i.status == "active"
                    && i.property("os_distro") == Some(distro)
                    && i.property("os_version") == Some(version)
            };
            if found.len() == 1 && right(&found[0]) {
                continue;
            }
            for image in found {
                glance.delete(&image.id).unwrap();
            }
            let properties = [("os_distro", distro), ("os_version", version)];
            common::openstack::create_image(cloud, name, &properties, true);
        }
    }
    done.push(region);
}

/// A small definition: one script step on the stand-in's Debian host.
fn small_definition(name: &str, script: &str) -> Fixture {
    small_definition_with(name, "", script)
}

/// The small definition with more keys in its target.
fn small_definition_with(name: &str, target_keys: &str, script: &str) -> Fixture {
    let f = Fixture::new(&format!(
        "name = \"{name}\"\n\
         [target.e2e]\n\
         source_image_name = \"{BASE_IMAGE}\"\n\
         flavor = \"c1.small\"\n\
         ssh_username = \"ubuntu\"\n\
         {target_keys}\n\
         [[provision]]\n\
         script = \"step.sh\"\n"
    ));
    f.script("step.sh", script);
    f
}

pub(crate) fn record(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `uworker-image [GLOBAL...] build --retry-delay 1s --out DEF/record.json [ARGS...]` in
/// the stand-in's region with the worker `config`; the record it wrote (null if none). No
/// worker value may show up in what it prints.
pub(crate) fn build(
    s: &Scenario,
    def: &Path,
    config: &[(String, String)],
    global: &[&str],
    args: &[&str],
) -> (Run, serde_json::Value) {
    let out = def.join("record.json");
    let _ = std::fs::remove_file(&out);
    let mut vars = s.compute.os_env();
    vars.extend(config.iter().cloned());
    let build = [
        "build",
        "--retry-delay",
        "1s",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = run_tool(def, &[global, &build, args].concat(), &env_pairs(&vars));
    for (_, value) in config {
        for line in value.lines().filter(|l| l.trim().len() >= 4) {
            assert!(!run.all().contains(line), "leaked {line:?}:\n{}", run.all());
        }
    }
    let rec = if out.exists() {
        record(&out)
    } else {
        serde_json::Value::Null
    };
    (run, rec)
}

/// The small scenarios' step: it says where it ran.
pub(crate) const PROVISION_HOSTNAME: &str = "#!/bin/sh\nset -e\necho \"provisioned $(hostname)\"\n";

/// A build of PROVISION_HOSTNAME that succeeded: it ran on the stand-in's host, and the
/// record says so. The host's name is the one cloud-init took from Nova's metadata: the
/// server's name (packer names it after the image), as Nova sanitizes it (these names
/// only need lower case).
pub(crate) fn assert_built(run: &Run, rec: &serde_json::Value) {
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(rec["built"], true, "{rec:#}");
    let said = format!(
        "provisioned {}",
        rec["image_name"].as_str().unwrap().to_lowercase()
    );
    assert!(
        run.stderr.lines().any(|l| l.trim_end().ends_with(&said)),
        "{said}:\n{}",
        run.stderr
    );
}

/// The plain worker config of the small scenarios.
pub(crate) fn plain_config() -> Vec<(String, String)> {
    worker_env()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn transient_failures_are_retried_until_the_build_succeeds() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-retry-");
    let def = small_definition(&name, PROVISION_HOSTNAME);
    // Attempt 1: HTTP 500 on server create; attempt 2: the server goes to ERROR.
    s.compute
        .inject(faults(&[("create_500", 1), ("boot_error", 1)]));
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &["--attempts", "3"]);
    assert_built(&run, &rec);
    assert_eq!(rec["attempts"], 3, "{rec:#}");
    assert!(run.stderr.contains("attempt 3 of 3"), "{}", run.stderr);

    let report = s.finish();
    let creates: Vec<u64> = report
        .calls("ServersController.create")
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(creates, [500, 202, 202], "{:#?}", report.0["calls"]);
    // One key pair for the run, the tool's own (ed25519, imported, its marks in its name),
    // used by every attempt and deleted at the end: Nova generated none.
    assert_the_runs_own_key_pair(&report, &name);
    let images = s.images(&name);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].id, rec["image_id"].as_str().unwrap());
    assert_eq!(images[0].status, "active");
}

/// The run's one key pair was the tool's: imported (ed25519), named with its marks,
/// used by every server, deleted (by name, percent-encoded); Nova generated no key.
fn assert_the_runs_own_key_pair(report: &common::compute::Report, definition: &str) {
    let keys: Vec<&str> = report
        .list("public_keys")
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("ssh-ed25519 "), "{keys:?}");
    let created = report.calls("KeypairController.create");
    let deleted = report.calls("KeypairController.delete");
    assert_eq!(
        (created.len(), deleted.len()),
        (1, 1),
        "{:#?}",
        report.0["calls"]
    );
    assert!(
        deleted[0]["path"]
            .as_str()
            .is_some_and(|p| p.contains(&format!("uworker-image%20{definition}%20e2e%20"))),
        "{:#}",
        deleted[0]
    );
}

#[test]
fn a_failing_provisioner_is_not_retried() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-fail-");
    let def = small_definition(
        &name,
        "#!/bin/sh\necho 'step 2 of 3 broke on purpose' >&2\nexit 7\n",
    );
    let started = Instant::now();
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &["--attempts", "3"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("step 2 of 3 broke on purpose"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("attempt 2 of 3"), "{}", run.stderr);
    assert_eq!(rec["built"], false);
    assert_eq!(rec["attempts"], 1, "{rec:#}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains("FAILED after 1 attempt(s)")
            && reason.contains("Script exited with non-zero exit status: 7"),
        "{reason}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));

    let report = s.finish();
    assert_eq!(report.calls("ServersController.create").len(), 1);
    assert!(s.images(&name).is_empty());
}

/// `build --attempts 1 ARGS` of `def`, its output piped.
fn spawn_build_with(
    s: &Scenario,
    def: &Fixture,
    tmp: &Path,
    global: &[&str],
    args: &[&str],
) -> Child {
    let mut vars = s.compute.os_env();
    vars.extend(plain_config());
    let mut cmd = tool(&env_pairs(&vars));
    cmd.env("TMPDIR", tmp)
        .arg("--dir")
        .arg(def.path())
        .args(global)
        .args(["build", "--attempts", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// The provisioning step of the signal scenarios: it runs until it is stopped.
const PROVISION_FOREVER: &str =
    "#!/bin/sh\necho provisioning-started\nsleep 300\necho provisioning-finished\n";

/// A build of PROVISION_FOREVER, started and in its provisioning step.
struct LongBuild {
    name: String,
    _def: Fixture,
    /// The build's TMPDIR.
    tmp: tempfile::TempDir,
    child: Child,
    stderr: Lines,
    seen: Vec<String>,
}

fn long_build_in_provisioning(s: &Scenario, prefix: &str) -> LongBuild {
    build_until(s, prefix, PROVISION_FOREVER, &[], "provisioning-started")
}

/// A build of `script` with `args`, started and past the stderr line holding `marker`.
fn build_until(s: &Scenario, prefix: &str, script: &str, args: &[&str], marker: &str) -> LongBuild {
    let name = s.definition_name(prefix);
    let def = small_definition(&name, script);
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn_build_with(s, &def, tmp.path(), &[], args);
    let stderr = Lines::of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    stderr.wait_for(marker, Duration::from_secs(180), &mut seen);
    LongBuild {
        name,
        _def: def,
        tmp,
        child,
        stderr,
        seen,
    }
}

#[test]
fn sigint_mid_provisioning_cleans_up_within_ten_seconds() {
    let s = Scenario::start();
    let LongBuild {
        name,
        _def,
        tmp,
        mut child,
        stderr,
        mut seen,
    } = long_build_in_provisioning(&s, "e2e-sigint-");
    let report = s.compute.report();
    assert_eq!(report.0["servers"].as_array().unwrap().len(), 1);
    assert_eq!(report.0["containers"].as_array().unwrap().len(), 1);

    let interrupted = Instant::now();
    let pid = child.id() as i32;
    procs::signal(pid, libc::SIGINT).unwrap();
    let status = child.wait().unwrap();
    let took = interrupted.elapsed();
    stderr.drain_into(&mut seen);
    let log = seen.join("\n");
    assert!(took < Duration::from_secs(10), "exit took {took:?}:\n{log}");
    eprintln!("SIGINT mid-provisioning: exit {status:?} after {took:?}");
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(!log.contains("provisioning-finished"), "{log}");
    assert!(
        common::runner::workdirs(tmp.path()).is_empty(),
        "work dir left:\n{log}"
    );

    // Packer deleted the server, the tool its run's key pair, before exiting.
    let report = s.compute.report();
    assert!(
        report.0["servers"].as_array().unwrap().is_empty()
            && report.0["keypairs"].as_array().unwrap().is_empty(),
        "left behind at exit: {:#}\n{log}",
        report.0
    );
    assert_eq!(report.calls("ServersController.delete").len(), 1);
    assert_eq!(report.calls("KeypairController.delete").len(), 1);
    s.finish();
    assert!(s.images(&name).is_empty());
}

/// The stand-in's checks are live: what breaks Nova's API is refused and recorded.
#[test]
fn the_stand_in_refuses_and_records_what_nova_would_not_accept() {
    let s = Scenario::start();
    let strict = region_cloud_with(
        s.compute,
        Backoff {
            attempts: 1,
            first_delay: Duration::ZERO,
        },
    );
    // The HTTP status of a refused call (the client reports 5xx as "unavailable").
    let status = |result: Result<reqwest::blocking::Response, OpenStackError>| match result {
        Err(OpenStackError::Api { status, .. }) => status,
        Err(OpenStackError::Unavailable { reason, .. }) => {
            reason.trim_start_matches("HTTP ").parse().unwrap()
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    };
    let servers = format!("{}/v2.1/servers", s.compute.url);
    let off_spec = serde_json::json!({"server": {
        "name": "x", "imageRef": "00000000-0000-0000-0000-000000000000", "flavorRef": "1",
        "colour": "blue"}});
    let code = status(strict.call(Method::POST, &servers, |r| r.json(&off_spec)));
    assert_eq!(code, 400);
    let code = status(strict.call(Method::GET, &servers, |r| {
        r.header("OpenStack-API-Version", "compute 2.999")
    }));
    assert_eq!(code, 406);
    let hypervisors = format!("{}/v2.1/os-hypervisors", s.compute.url);
    let code = status(strict.call(Method::GET, &hypervisors, |r| r));
    assert_eq!(code, 501);

    let report = s.compute.report();
    let violations = report.0["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_eq!(violations[0]["operation"], "ServersController.create");
    assert!(
        violations[0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("Additional properties are not allowed ('colour' was unexpected)"),
        "{violations:#?}"
    );
    assert_eq!(
        report.0["unimplemented"],
        serde_json::json!(["GET /v2.1/os-hypervisors (HypervisorsController.index)"])
    );
    s.compute.reset();
    s.finish();
}

/// In the suite's loopback /24 (common::compute): the job service stand-in, and the host
/// the built image boots as.
const JOB_SERVICE_HOST: u8 = 2;
const IMAGE_HOST: u8 = 100;
const JOB_CMD: &str = "/bin/echo 'job' \"$1\" # a=b";
const PROJECT: &str = "e2e-project";

/// The default definition's base image, which the e2e copies replace.
const DEFAULT_BASE: &str = "source_image_name = \"Ubuntu 24.04\"";

/// The repository's default definition under a name of its own (so every run has a new
/// fingerprint), with the worker stand-in inside it as a local `worker_source`, on one of
/// the stand-in's base images instead of its "Ubuntu 24.04" (everything else unchanged).
fn default_definition_copy(name: &str, base: &str) -> tempfile::TempDir {
    let dir = default_definition_with_worker_standin();
    let toml = dir.path().join("image.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(
        text.contains(DEFAULT_BASE),
        "the default definition's base image is not the one this copy replaces:\n{text}"
    );
    let renamed = text
        .replacen("name = \"uworker\"", &format!("name = \"{name}\""), 1)
        .replacen(DEFAULT_BASE, &format!("source_image_name = \"{base}\""), 1);
    assert_eq!(renamed.matches(name).count(), 1, "{renamed}");
    std::fs::write(&toml, renamed).unwrap();
    dir
}

/// The worker's configuration (command mode), every value a secret.
fn command_mode_config(service: &JobService) -> Vec<(String, String)> {
    vec![
        ("UWORKER_JOB_API_ROOT".into(), service.root()),
        ("UWORKER_JOB_API_USERNAME".into(), NASTY_USERNAME.into()),
        ("UWORKER_JOB_API_PASSWORD".into(), NASTY_PASSWORD.into()),
        ("UWORKER_JOB_CMD".into(), JOB_CMD.into()),
        ("UWORKER_JOB_API_PROJECT".into(), PROJECT.into()),
    ]
}

/// The image's data from Glance (the provisioned root filesystem, a zstd tarball),
/// unpacked into `root`.
fn unpack_image(cloud: &Cloud, image_id: &str, root: &Path) {
    let url = format!(
        "{}/v2/images/{image_id}/file",
        cloud.endpoint("image").unwrap()
    );
    let mut response = cloud.call(Method::GET, &url, |r| r).unwrap();
    let tarball = root.with_extension("tar.zst");
    let mut file = std::fs::File::create(&tarball).unwrap();
    response.copy_to(&mut file).unwrap();
    std::fs::create_dir_all(root).unwrap();
    let ok = std::process::Command::new("tar")
        .args(["--zstd", "--numeric-owner", "-xpf"])
        .arg(&tarball)
        .arg("-C")
        .arg(root)
        .status()
        .unwrap()
        .success();
    assert!(ok, "unpacking the image's data");
    std::fs::remove_file(&tarball).unwrap();
}

/// Boots the image as a new host: the worker unit must come up by itself and log in to
/// the job service with exactly the configured credentials. `system` is what the image's
/// /etc/os-release says (`debian 12`).
fn boot_and_check_worker(s: &Scenario, image_id: &str, service: &JobService, system: &str) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    unpack_image(&s.cloud, image_id, &root);
    let mut host = SystemdHost::boot(&BootOptions {
        address: address(IMAGE_HOST),
        port: 22,
        release: common::systemd_host::DEBIAN_12,
        root: Some(root),
        persistent: false,
    });
    let until = Instant::now() + Duration::from_secs(60);
    let token = loop {
        let requests = service.requests();
        if let Some(token) = requests.into_iter().find(|r| r.path == "/token") {
            break token;
        }
        if Instant::now() > until {
            let status = host.root("SYSTEMD_COLORS=0 systemctl status --no-pager uworker.service; journalctl -u uworker --no-pager | tail -20");
            panic!(
                "the worker of the booted image never logged in:\n{}",
                String::from_utf8_lossy(&status.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        host.root_ok(". /etc/os-release; echo \"$ID $VERSION_ID\"")
            .trim(),
        system,
        "the image is the provisioned system of its base image"
    );
    assert_eq!(
        host.root_ok("systemctl is-active uworker.service"),
        "active\n"
    );
    assert_eq!(
        host.root_ok("systemctl show --property=User --value uworker.service"),
        "uworker\n"
    );
    assert_eq!(
        token.basic_auth,
        Some((NASTY_USERNAME.to_string(), NASTY_PASSWORD.to_string())),
        "the worker logs in with exactly the configured credentials"
    );
    assert_eq!(token.header("x-standin-mode"), Some("command"));
    // Booted without cloud-init's seed: the image's own unit made the host keys.
    assert_eq!(
        host.root_ok(
            "systemctl show -p ConditionResult,ExecMainStatus uworker-ssh-host-keys.service | sort"
        ),
        "ConditionResult=yes\nExecMainStatus=0\n"
    );
    host.stop();
}

/// The default definition (its base swapped for `base`) built in command mode with the
/// worker stand-in, for a job-service stand-in; the build succeeded.
struct DefaultBuild {
    def: tempfile::TempDir,
    service: JobService,
    config: Vec<(String, String)>,
    run: Run,
    rec: serde_json::Value,
    image_id: String,
    took: Duration,
}

fn build_default_definition(s: &Scenario, prefix: &str, base: &str) -> DefaultBuild {
    let name = s.definition_name(prefix);
    let def = default_definition_copy(&name, base);
    let service = JobService::start(&address(JOB_SERVICE_HOST));
    let config = command_mode_config(&service);
    let t0 = Instant::now();
    let (run, rec) = build(
        s,
        def.path(),
        &config,
        &["--var", "worker_source=worker-standin"],
        &[],
    );
    let took = t0.elapsed();
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(rec["built"], true, "{rec:#}");
    let image_id = rec["image_id"].as_str().unwrap().to_string();
    DefaultBuild {
        def,
        service,
        config,
        run,
        rec,
        image_id,
        took,
    }
}

#[test]
fn the_default_definition_builds_then_skips_and_its_image_boots_into_a_working_worker() {
    let s = Scenario::start();
    // 1. A fresh build: packer's openstack builder provisions the stand-in's server over
    // SSH; the image is active in Glance with the fingerprint; the record is written.
    let DefaultBuild {
        def,
        service,
        config,
        run,
        rec,
        image_id,
        took: first,
    } = build_default_definition(&s, "e2e-default-", BASE_IMAGE);
    assert!(run.stderr.contains("(command mode)"), "{}", run.stderr);
    assert!(run.stderr.contains("Connected to SSH!"), "{}", run.stderr);
    assert_eq!(rec["action"], "build", "{rec:#}");
    let fingerprint = rec["fingerprint"].as_str().unwrap().to_string();
    let image = Glance::new(&s.cloud).unwrap().get(&image_id).unwrap();
    assert_eq!(image.status, "active");
    assert_eq!(
        image.property("uworker_fingerprint"),
        Some(fingerprint.as_str())
    );
    assert_eq!(image.property("image_type"), Some("snapshot"));
    let report = s.finish();
    assert_eq!(report.calls("ServersController._create_image").len(), 1);

    // 2. Again: an image with this fingerprint exists, so packer never starts.
    s.compute.reset();
    let (run, rec) = build(
        &s,
        def.path(),
        &config,
        &["--var", "worker_source=worker-standin"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(rec["action"], "skip", "{rec:#}");
    assert_eq!(rec["image_id"], image_id.as_str());
    assert!(!run.stderr.contains("packer build"), "{}", run.stderr);
    let report = s.finish();
    assert!(
        report.0["calls"].as_array().unwrap().is_empty(),
        "a skip makes no compute call: {:#}",
        report.0["calls"]
    );

    // 3. The image works: booted as a new host, its worker starts and logs in.
    let t1 = Instant::now();
    boot_and_check_worker(&s, &image_id, &service, "debian 12");
    eprintln!(
        "default definition: build {first:?}, boot check {:?}",
        t1.elapsed()
    );
}

/// Debian 13 (Python 3.13: the install path of the default base, Ubuntu 24.04): the
/// default definition builds on it, and its image boots into a working worker.
#[test]
fn the_default_definition_builds_on_debian_13_and_its_image_runs_the_worker() {
    let s = Scenario::start();
    let DefaultBuild {
        service,
        run,
        image_id,
        took: built,
        ..
    } = build_default_definition(&s, "e2e-debian13-", BASE_IMAGE_13);
    assert!(
        run.stderr
            .contains("Python 3.12+: the worker is installed without ConcurrentLogHandler"),
        "{}",
        run.stderr
    );
    assert_eq!(
        Glance::new(&s.cloud)
            .unwrap()
            .get(&image_id)
            .unwrap()
            .status,
        "active"
    );
    let report = s.finish();
    assert_eq!(report.calls("ServersController._create_image").len(), 1);
    let t1 = Instant::now();
    boot_and_check_worker(&s, &image_id, &service, "debian 13");
    eprintln!(
        "default definition on Debian 13: build {built:?}, boot check {:?}",
        t1.elapsed()
    );
}

/// A floating IP allocated on the cloud's external network, as a user does beforehand
/// (`openstack floating ip create public`); released when dropped.
struct FloatingIp<'a> {
    cloud: &'a Cloud,
    id: String,
    address: String,
}

impl FloatingIp<'_> {
    fn url(&self) -> String {
        let network = self.cloud.endpoint("network").unwrap();
        format!("{network}/v2.0/floatingips/{}", self.id)
    }
}

impl Drop for FloatingIp<'_> {
    fn drop(&mut self) {
        let released = self.cloud.call(Method::DELETE, &self.url(), |r| r);
        assert!(released.is_ok() || std::thread::panicking(), "{released:?}");
    }
}

fn allocate_floating_ip(cloud: &Cloud) -> FloatingIp<'_> {
    let network = cloud.endpoint("network").unwrap();
    let networks: serde_json::Value = cloud
        .call(
            Method::GET,
            &format!("{network}/v2.0/networks?router:external=true"),
            |r| r,
        )
        .unwrap()
        .json()
        .unwrap();
    let public = networks["networks"][0]["id"].as_str().unwrap();
    let body = serde_json::json!({"floatingip": {"floating_network_id": public}});
    let created: serde_json::Value = cloud
        .call(Method::POST, &format!("{network}/v2.0/floatingips"), |r| {
            r.json(&body)
        })
        .unwrap()
        .json()
        .unwrap();
    let fip = &created["floatingip"];
    FloatingIp {
        cloud,
        id: fip["id"].as_str().unwrap().to_string(),
        address: fip["floating_ip_address"].as_str().unwrap().to_string(),
    }
}

#[test]
fn a_configured_floating_ip_is_how_packer_reaches_the_server() {
    let s = Scenario::start();
    let floating = allocate_floating_ip(&s.cloud);
    let (fip, address) = (floating.id.clone(), floating.address.clone());
    let name = s.definition_name("e2e-fip-");
    let def = small_definition(&name, PROVISION_HOSTNAME);
    // The seed's variable holds the address; packer's `floating_ip` takes the ID, which
    // `build` looks up.
    let var = format!("openstack_free_floating_ip={address}");
    let (run, rec) = build(&s, def.path(), &plain_config(), &["--var", &var], &[]);
    assert_built(&run, &rec);
    for said in [
        format!("build: floating IP {address} is {fip}"),
        format!("Using ssh communicator to connect: {address}"),
    ] {
        assert!(run.stderr.contains(&said), "{said}:\n{}", run.stderr);
    }
    let report = s.compute.report();
    assert_eq!(report.calls("neutron PUT floatingips").len(), 1);
    assert_eq!(report.calls("InterfaceAttachmentController.index").len(), 1);

    // A target's own floating_ip is in the template as written: an address there is
    // refused before packer, with the ID to write instead.
    s.compute.reset();
    let literal = s.definition_name("e2e-fiplit-");
    let def = small_definition_with(
        &literal,
        &format!("floating_ip = \"{address}\""),
        "#!/bin/sh\ntrue\n",
    );
    let (run, _) = build(&s, def.path(), &plain_config(), &[], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("floating_ip")
            && run
                .stderr
                .contains(&format!("write \"{fip}\" (the ID of {address})")),
        "{}",
        run.stderr
    );
    assert!(s
        .compute
        .report()
        .calls("ServersController.create")
        .is_empty());

    // The server's deletion freed the address; the floating IP itself is the user's.
    let now: serde_json::Value = s
        .cloud
        .call(Method::GET, &floating.url(), |r| r)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        now["floatingip"]["port_id"],
        serde_json::Value::Null,
        "{now:#}"
    );
    drop(floating);
    s.finish();
}

#[test]
fn a_floating_ip_from_the_pool_is_allocated_and_released_by_packer() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-pool-");
    let def = small_definition_with(
        &name,
        "floating_ip_network = \"public\"",
        PROVISION_HOSTNAME,
    );
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &[]);
    assert_built(&run, &rec);
    let report = s.finish();
    assert_eq!(
        report.calls("neutron POST floatingips").len(),
        1,
        "{:#}",
        report.0["calls"]
    );
    assert_eq!(
        report.calls("neutron DELETE floatingips").len(),
        1,
        "{:#}",
        report.0["calls"]
    );
}

/// Base images made for one test, deleted when it ends, passed or failed.
struct TempImages<'a> {
    cloud: &'a Cloud,
    ids: Vec<String>,
}

impl Drop for TempImages<'_> {
    fn drop(&mut self) {
        let glance = Glance::new(self.cloud).unwrap();
        for id in &self.ids {
            let deleted = glance.delete(id);
            assert!(deleted.is_ok() || std::thread::panicking(), "{deleted:?}");
        }
    }
}

/// A base image name that several images share, one of them someone else's public
/// image newer than ours (as anyone on a shared cloud can upload): the tool takes none of
/// them by itself, as packer would not, and names each; `trusted_base_owners` narrowed to
/// our project picks ours, which packer then gets by ID.
#[test]
fn a_base_image_name_several_images_share_is_refused_unless_trusted_owners_pick_one() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-twins-");
    let base = unique("Debian 12 twin ");
    let properties = [("os_distro", "debian"), ("os_version", "12")];
    let ours = common::openstack::create_image(&s.cloud, &base, &properties, true);
    let _ours = TempImages {
        cloud: &s.cloud,
        ids: vec![ours.id.clone()],
    };
    std::thread::sleep(Duration::from_millis(1100)); // Glance's created_at has seconds
    let admin = {
        let env = Env::from_pairs(common::openstack::admin_env());
        let credentials = Credentials::from_env(&env).unwrap().unwrap();
        Cloud::connect(&credentials, Backoff::default()).unwrap()
    };
    let public = [
        ("visibility", "public"),
        ("os_distro", "debian"),
        ("os_version", "12"),
    ];
    let theirs = common::openstack::create_image(&admin, &base, &public, true);
    let _theirs = TempImages {
        cloud: &admin,
        ids: vec![theirs.id.clone()],
    };
    let our_project = s.cloud.project_id().unwrap().to_string();
    let definition = |target_keys: &str| {
        let def = small_definition_with(&name, target_keys, PROVISION_HOSTNAME);
        let toml = def.path().join("image.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(&toml, text.replace(BASE_IMAGE, &base)).unwrap();
        def
    };

    let def = definition("");
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &["--attempts", "1"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(rec, serde_json::Value::Null, "no build record");
    for (image, owner) in [
        (&ours, &our_project),
        (&theirs, theirs.owner.as_ref().unwrap()),
    ] {
        let named = format!("{} (owner {owner}, ", image.id);
        assert!(run.stderr.contains(&named), "{named}: {}", run.stderr);
    }
    assert!(
        run.stderr
            .contains(&format!("2 active images are named `{base}`"))
            && run.stderr.contains("trusted_base_owners"),
        "{}",
        run.stderr
    );
    assert!(
        s.compute
            .report()
            .calls("ServersController.create")
            .is_empty(),
        "no server booted"
    );

    let def = definition(&format!("trusted_base_owners = [\"{our_project}\"]"));
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &["--attempts", "1"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(rec["built"], true, "{rec:#}");
    assert_eq!(
        rec["manifest"]["base_image"]["resolved_id"], ours.id,
        "{rec:#}"
    );
    s.finish();
}

/// A user's workflow cancelled: the action's run step, run and cancelled exactly as
/// GitHub's runner does (signals to the step's shell only). The tool gets the signal,
/// packer cleans up, and within the runner's 10 s nothing is left: no server, key pair
/// or floating IP, no process of the step's session, no work directory.
#[test]
fn a_cancelled_action_step_leaves_nothing_within_the_runners_ten_seconds() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-cancel-");
    let def = small_definition_with(&name, "floating_ip_network = \"public\"", PROVISION_FOREVER);
    let tmp = tempfile::tempdir().unwrap();
    let inputs = std::collections::BTreeMap::from([
        ("command", "build".to_string()),
        ("dir", def.path().display().to_string()),
        ("args", "--attempts\n1".to_string()),
    ]);
    let step = common::runner::action_step("run", &inputs);
    let mut vars = s.compute.os_env();
    vars.extend(plain_config());
    vars.extend(common::runner::runner_vars(tmp.path()));
    let mut step = common::runner::RunningStep::start(&step, &vars);
    let mut seen = Vec::new();
    step.stderr
        .wait_for("provisioning-started", Duration::from_secs(180), &mut seen);
    let report = s.compute.report();
    assert_eq!(report.list("servers").len(), 1, "{:#}", report.0);
    assert_eq!(report.list("floating_ips").len(), 1, "{:#}", report.0);

    let (code, began) = step.cancel_as_the_runner_does();
    let within = began + Duration::from_secs(10);
    let left = loop {
        let report = s.compute.report();
        let cloud_left: Vec<String> = ["servers", "keypairs", "floating_ips"]
            .into_iter()
            .filter(|k| !report.list(k).is_empty())
            .map(String::from)
            .collect();
        let processes = step.session_processes();
        if (cloud_left.is_empty() && processes.is_empty()) || Instant::now() >= within {
            break (cloud_left, processes, report);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    step.stderr.drain_into(&mut seen);
    let log = seen.join("\n");
    eprintln!(
        "runner cancel: step exit {code:?}, clean after {:?}",
        began.elapsed()
    );
    assert!(
        left.0.is_empty(),
        "left in the cloud: {:?}\n{:#}\n{log}",
        left.0,
        left.2 .0
    );
    assert!(left.1.is_empty(), "processes left: {:?}\n{log}", left.1);
    assert_eq!(code, Some(130), "the step exits as the tool did:\n{log}");
    assert!(
        common::runner::workdirs(tmp.path()).is_empty(),
        "work directory left:\n{log}"
    );
    assert!(!log.contains("provisioning-finished"), "{log}");
    s.finish();
    assert!(s.images(&name).is_empty());
}

/// The tool killed outright (`kill -9`) mid-provisioning: packer gets its death signal,
/// cancels and cleans up by itself; within 15 s nothing but the run's own key pair (the
/// tool's to delete) is left in the cloud, and no packer process is left. `sweep` then
/// takes the key pair.
#[test]
fn a_killed_tool_leaves_packer_to_clean_up() {
    let s = Scenario::start();
    let LongBuild {
        name,
        _def: def,
        tmp,
        mut child,
        ..
    } = long_build_in_provisioning(&s, "e2e-kill9-");
    let tool_pid = child.id() as i32;
    // Packer runs as a pair (its outer process and the real packer) plus plugins, all in
    // the group of the outer one: every one of them must end.
    let group = child_group(child.id(), "packer").expect("packer runs under the tool");
    procs::signal(tool_pid, libc::SIGKILL).unwrap();
    let killed = Instant::now();
    child.wait().unwrap();
    let within = killed + Duration::from_secs(15);
    let run_keypair = format!("uworker-image {name} e2e ");
    loop {
        let report = s.compute.report();
        let keypairs = report.list("keypairs");
        let clean = report.list("servers").is_empty()
            && keypairs.len() == 1
            && keypairs[0].as_str().unwrap().starts_with(&run_keypair);
        let packer_left = procs::all().iter().any(|p| p.pgrp == group);
        if clean && !packer_left {
            eprintln!("kill -9: packer cleaned up in {:?}", killed.elapsed());
            break;
        }
        assert!(
            Instant::now() < within,
            "15 s after kill -9: left {:#}, packer's group {group} alive: {packer_left}",
            report.0
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = s.compute.report();
    assert_eq!(report.calls("ServersController.delete").len(), 1);
    let (swept, report) = sweep(&s, def.path(), &["--older-than", "0s"]);
    assert_eq!(swept.code, 0, "{}", swept.all());
    assert_eq!(report["removed"], 1, "{report:#}");
    s.finish();

    // Its work directory (the 0600 var-file with the worker's secrets) outlived it; the
    // next run of the tool on this machine removes it, and says so.
    let left = common::runner::workdirs(tmp.path());
    assert_eq!(left.len(), 1, "{left:?}");
    let mut next = tool(&[]);
    next.env("TMPDIR", tmp.path()).arg("--version");
    let r = run(next);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("removed {}", tmp.path().join(&left[0]).display()))
            && r.stderr.contains("left by a run that was killed"),
        "{}",
        r.stderr
    );
    assert!(common::runner::workdirs(tmp.path()).is_empty());
}

/// PIDs of the direct children of `parent` whose command name is `name`.
fn children_named(parent: i32, name: &str) -> Vec<i32> {
    procs::all()
        .into_iter()
        .filter(|p| p.ppid == parent && p.comm == name)
        .map(|p| p.pid)
        .collect()
}

/// Keystone tokens last an hour and builds may take hours. Here tokens last 20 seconds (a
/// second Keystone of the harness, same users and catalog) and a step sleeps past that:
/// packer re-authenticates itself, the stand-in's snapshot upload rides on its service
/// token, and the tool's own calls after packer (verify, mark) need a renewed token.
#[test]
fn a_build_outlives_its_token() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-token-");
    let def = small_definition(
        &name,
        "#!/bin/sh\nset -e\nsleep 25\necho \"provisioned $(hostname)\"\n",
    );
    let mut vars: Vec<(String, String)> = s
        .compute
        .os_env()
        .into_iter()
        .filter(|(k, _)| k != "OS_AUTH_URL")
        .collect();
    vars.push((
        "OS_AUTH_URL".into(),
        common::openstack::short_token_auth_url().into(),
    ));
    vars.extend(plain_config());
    let out = def.path().join("record.json");
    let started = Instant::now();
    // The lease renewed every 5 s, from a login of its own: past its token's 20 s too.
    let run = run_tool(
        def.path(),
        &[
            "build",
            "--attempts",
            "1",
            "--heartbeat",
            "5s",
            "--out",
            out.to_str().unwrap(),
        ],
        &env_pairs(&vars),
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let rec = record(&out);
    assert_built(&run, &rec);
    assert!(started.elapsed() > Duration::from_secs(25));
    assert!(
        !run.stderr.contains("the run's lease") && !run.stderr.contains("no lease"),
        "{}",
        run.stderr
    );

    // The image is there, active, and marked after the token it started with expired.
    let images = s.images(&name);
    assert_eq!(images.len(), 1, "{images:?}");
    let image = &images[0];
    assert_eq!(image.id, rec["image_id"].as_str().unwrap());
    assert_eq!(image.status, "active");
    let fingerprint = rec["fingerprint"].as_str().unwrap();
    assert_eq!(image.property("uworker_fingerprint"), Some(fingerprint));
    let tag = format!(
        "uworker-{}",
        &fingerprint.trim_start_matches("sha256:")[..12]
    );
    assert!(image.tags.contains(&tag), "{:?}", image.tags);

    let report = s.finish();
    // The tokens did expire on the way: the stand-in refused packer a stale one.
    let refused = report.0["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == 401)
        .count();
    assert!(refused >= 1, "{:#}", report.0["calls"]);
    // The run's lease was renewed all through the 25 s of provisioning (a renewal each
    // 5 s), past the first token's expiry; the only refusals were Nova's 409s while the
    // server was building or being stopped, which the tool waits out without a word.
    let renewals: Vec<u64> = report
        .calls("ServerMetadataController.create")
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert!(
        renewals.iter().filter(|status| **status == 200).count() >= 4
            && renewals.iter().all(|status| [200, 409].contains(status)),
        "{renewals:?}"
    );
}

/// A live run, however old by an explicit `--older-than`, is spared while its tool renews
/// its lease: the sweep says so, and takes nothing of it.
#[test]
fn a_live_runs_lease_spares_it_from_any_sweep() {
    let s = Scenario::start();
    let LongBuild {
        name: _,
        _def: def,
        tmp: _tmp,
        mut child,
        stderr,
        mut seen,
    } = build_until(
        &s,
        "e2e-lease-",
        PROVISION_FOREVER,
        &["--heartbeat", "2s"],
        "provisioning-started",
    );
    // A renewal that went through (one while the server was still building got a 409).
    let until = Instant::now() + Duration::from_secs(20);
    while !s
        .compute
        .report()
        .calls("ServerMetadataController.create")
        .iter()
        .any(|c| c["status"] == 200)
    {
        assert!(Instant::now() < until, "no lease renewal within 20 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    let server = ids_of(&s.compute.report(), "servers", "id");

    let (run, report) = sweep(&s, def.path(), &["--older-than", "0s"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(swept(&report), [], "{report:#}");
    let spared = &report["spared"][0];
    assert_eq!(spared["id"], server[0].as_str(), "{report:#}");
    assert!(
        spared["reason"]
            .as_str()
            .unwrap()
            .starts_with("its run is alive (lease renewed until "),
        "{report:#}"
    );

    procs::signal(child.id() as i32, libc::SIGINT).unwrap();
    let status = child.wait().unwrap();
    stderr.drain_into(&mut seen);
    assert_eq!(status.code(), Some(130), "{}", seen.join("\n"));
    s.finish();
}

/// Nova takes no lease while it saves the image, which on a real cloud can take hours: a
/// sweep by age meanwhile spares the server, its lease lapsed, and the build ends well.
#[test]
fn a_server_nova_is_snapshotting_is_spared_by_a_sweep_though_its_lease_lapsed() {
    let s = Scenario::start();
    s.compute.inject(faults(&[("slow_snapshot", 1)]));
    // A 1 s heartbeat: a 3 s lease, lapsed within the snapshot's 15 s.
    let LongBuild {
        name,
        _def: def,
        tmp: _tmp,
        mut child,
        stderr,
        mut seen,
    } = build_until(
        &s,
        "e2e-snap-",
        PROVISION_HOSTNAME,
        &["--heartbeat", "1s"],
        "Waiting for image",
    );
    std::thread::sleep(Duration::from_secs(4));

    let (run, report) = sweep(&s, def.path(), &["--older-than", "0s"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(swept(&report), [], "{report:#}");
    assert_eq!(
        report["spared"][0]["reason"],
        "Nova is at work on it (task_state image_uploading) before its run's deadline: its run can renew no lease meanwhile",
        "{report:#}"
    );

    let status = child.wait().unwrap();
    stderr.drain_into(&mut seen);
    assert!(status.success(), "{}", seen.join("\n"));
    let images = s.images(&name);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].status, "active");
    s.finish();
}

// ---- sweep: what a dead run leaves behind ----------------------------------------------

/// `uworker-image --output json sweep ARGS...` in the stand-in's region: the run and the
/// report it printed (null if none).
pub(crate) fn sweep(s: &Scenario, def: &Path, args: &[&str]) -> (Run, serde_json::Value) {
    let vars = s.compute.os_env();
    let run = run_tool(
        def,
        &[&["--output", "json", "sweep"][..], args].concat(),
        &env_pairs(&vars),
    );
    let report = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, report)
}

/// (kind, id, action) of each item a sweep report lists, sorted.
pub(crate) fn swept(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut items: Vec<(String, String, String)> = report["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {report:#}"))
        .iter()
        .map(|i| {
            let text = |k: &str| i[k].as_str().unwrap().to_string();
            (text("kind"), text("id"), text("action"))
        })
        .collect();
    items.sort();
    items
}

/// The process group of `pid`'s child called `name` (packer runs in a group of its own).
fn child_group(pid: u32, name: &str) -> Option<i32> {
    children_named(pid as i32, name)
        .first()
        .and_then(|child| procs::stat(*child))
        .map(|child| child.pgrp)
}

/// A build of `def` (whose step says `provisioning-started`, then sleeps) killed the way a
/// lost runner dies: SIGKILL to the tool and to packer's whole process group while the
/// step runs, so no cleanup of either ever runs.
fn kill_build_mid_provisioning(s: &Scenario, def: &Fixture) {
    let tmp = tempfile::tempdir().unwrap();
    kill_mid_provisioning(spawn_build_with(s, def, tmp.path(), &[], &QUIET_LEASE));
}

/// A lease renewed only every hour: a killed run's server then carries none, so a sweep
/// right after the kill judges it by its deadline or age alone.
const QUIET_LEASE: [&str; 2] = ["--heartbeat", "1h"];

/// SIGKILL to a started build (tool and packer's group) once its step runs.
fn kill_mid_provisioning(mut child: Child) {
    let stderr = Lines::of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    stderr.wait_for("provisioning-started", Duration::from_secs(180), &mut seen);
    let group = child_group(child.id(), "packer").expect("packer runs under the tool");
    let own_group = unsafe { libc::getpgrp() };
    assert!(
        group > 1 && group != own_group,
        "packer's group {group} is its own"
    );
    // Packer's group first: killed first, the tool would hand packer its death signal
    // (SIGTERM), and packer could start its cleanup before the group's SIGKILL lands.
    procs::signal(-group, libc::SIGKILL).unwrap();
    child.kill().unwrap(); // SIGKILL, to the tool alone
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    // Every process of packer's group is gone.
    let until = Instant::now() + Duration::from_secs(10);
    while procs::signal(-group, 0).is_ok() {
        assert!(
            Instant::now() < until,
            "packer's group {group} outlived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Servers and key pairs the test makes itself (of other definitions and other tools),
/// through Nova's API; deleted when dropped, passed or failed.
struct Nova<'a> {
    cloud: &'a Cloud,
    url: String,
    servers: Vec<String>,
    keypairs: Vec<String>,
}

impl Drop for Nova<'_> {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.servers) {
            let deleted =
                self.cloud
                    .call(Method::DELETE, &format!("{}/servers/{id}", self.url), |r| r);
            assert!(deleted.is_ok() || std::thread::panicking(), "{deleted:?}");
        }
        for name in std::mem::take(&mut self.keypairs) {
            let deleted = self.cloud.call(
                Method::DELETE,
                &format!("{}/os-keypairs/{name}", self.url),
                |r| r,
            );
            assert!(deleted.is_ok() || std::thread::panicking(), "{deleted:?}");
        }
    }
}

impl<'a> Nova<'a> {
    fn new(s: &'a Scenario) -> Nova<'a> {
        Nova {
            cloud: &s.cloud,
            url: s.cloud.endpoint("compute").unwrap(),
            servers: Vec::new(),
            keypairs: Vec::new(),
        }
    }

    fn keypair(&mut self, name: &str) {
        let body = serde_json::json!({"keypair": {"name": name}});
        self.cloud
            .call(Method::POST, &format!("{}/os-keypairs", self.url), |r| {
                r.json(&body)
            })
            .unwrap();
        self.keypairs.push(name.to_string());
    }

    /// A server booted from the base image, with `metadata` and key pair `key`.
    fn server(&mut self, name: &str, key: Option<&str>, metadata: serde_json::Value) -> String {
        let base = Glance::new(self.cloud)
            .unwrap()
            .active_named(BASE_IMAGE)
            .unwrap()
            .remove(0);
        let mut server = serde_json::json!({
            "name": name, "imageRef": base.id, "flavorRef": "1", "metadata": metadata});
        if let Some(key) = key {
            server["key_name"] = serde_json::json!(key);
        }
        let created: serde_json::Value = self
            .cloud
            .call(Method::POST, &format!("{}/servers", self.url), |r| {
                r.json(&serde_json::json!({ "server": server }))
            })
            .unwrap()
            .json()
            .unwrap();
        let id = created["server"]["id"].as_str().unwrap().to_string();
        self.servers.push(id.clone());
        id
    }
}

/// Once the stand-in settles: the servers and key pairs the test made itself are all
/// that is left, and no floating IP.
fn only_foreign_left(
    s: &Scenario,
    foreign_servers: &[String],
    foreign_keys: &[String],
) -> common::compute::Report {
    let after = s.compute.settled_report(Duration::from_secs(30));
    assert_eq!(
        ids_of(&after, "servers", "id"),
        foreign_servers,
        "{:#}",
        after.0
    );
    assert_eq!(
        ids_of(&after, "keypairs", ""),
        foreign_keys,
        "{:#}",
        after.0
    );
    assert_eq!(
        after.0["floating_ips"],
        serde_json::json!([]),
        "{:#}",
        after.0
    );
    after
}

fn ids_of(report: &common::compute::Report, key: &str, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = report.0[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match field {
            "" => v.as_str().unwrap().to_string(),
            f => v[f].as_str().unwrap().to_string(),
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_killed_runner_leaves_nothing_after_sweep() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-killed-");
    let def = small_definition_with(&name, "floating_ip_network = \"public\"", PROVISION_FOREVER);
    // Another definition's server and its packer key pair, a server with no metadata,
    // and a key pair of another tool: none of them is ours.
    let mut nova = Nova::new(&s);
    let foreign_key = unique("packer_foreign");
    let tool_key = unique("e2e-other-tool-");
    nova.keypair(&foreign_key);
    nova.keypair(&tool_key);
    let other = unique("e2e-other-");
    let foreign_server = nova.server(
        "packer_other_definition",
        Some(&foreign_key),
        serde_json::json!({"uworker_image": other, "uworker_run_id": "7", "uworker_target": "e2e"}),
    );
    let bare_server = nova.server("no-metadata", None, serde_json::json!({}));
    let foreign_servers = {
        let mut ids = vec![foreign_server.clone(), bare_server.clone()];
        ids.sort();
        ids
    };
    let foreign_keys = {
        let mut names = vec![foreign_key.clone(), tool_key.clone()];
        names.sort();
        names
    };

    // 1. The runner dies mid-provisioning: the tool and packer get SIGKILL.
    let t0 = Instant::now();
    kill_build_mid_provisioning(&s, &def);
    let left = s.compute.report();
    let our_server: Vec<String> = ids_of(&left, "servers", "id")
        .into_iter()
        .filter(|id| !foreign_servers.contains(id))
        .collect();
    let our_key: Vec<String> = ids_of(&left, "keypairs", "")
        .into_iter()
        .filter(|k| !foreign_keys.contains(k))
        .collect();
    let our_fip = ids_of(&left, "floating_ips", "id");
    assert_eq!(our_server.len(), 1, "{:#}", left.0);
    assert_eq!(our_key.len(), 1, "{:#}", left.0);
    assert!(
        our_key[0].starts_with(&format!("uworker-image {name} e2e ")),
        "the run's own key pair: {our_key:?}"
    );
    assert_eq!(
        our_fip.len(),
        1,
        "a floating IP from the pool: {:#}",
        left.0
    );
    assert_eq!(left.0["containers"].as_array().unwrap().len(), 3);

    // 2. Before its own deadline (the build's 4h and the grace) it may be a live build:
    // nothing is listed, the server and its key pair are spared.
    let (run, report) = sweep(&s, def.path(), &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(swept(&report), [], "{report:#}");
    let spared: Vec<(&str, &str)> = report["spared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(spared.len(), 2, "{report:#}");
    assert_eq!(spared[0].0, our_server[0], "{report:#}");
    assert!(spared[0].1.ends_with("has not passed"), "{report:#}");
    let in_use = format!("used by server {}, which stays", our_server[0]);
    assert_eq!(
        spared[1],
        (our_key[0].as_str(), in_use.as_str()),
        "{report:#}"
    );

    // 3. --dry-run lists exactly what the run left, and removes nothing.
    let (run, report) = sweep(&s, def.path(), &["--dry-run", "--older-than", "0s"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let expected = {
        let mut items = vec![
            (
                "floating_ip".to_string(),
                our_fip[0].clone(),
                "release".to_string(),
            ),
            (
                "keypair".to_string(),
                our_key[0].clone(),
                "delete".to_string(),
            ),
            (
                "server".to_string(),
                our_server[0].clone(),
                "delete".to_string(),
            ),
        ];
        items.sort();
        items
    };
    assert_eq!(swept(&report), expected, "{report:#}");
    assert!(report["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["result"].as_str().unwrap().starts_with("would ")));
    let after_dry_run = s.compute.report();
    assert_eq!(
        ids_of(&after_dry_run, "servers", "id"),
        ids_of(&left, "servers", "id")
    );
    assert_eq!(
        ids_of(&after_dry_run, "keypairs", ""),
        ids_of(&left, "keypairs", "")
    );
    assert_eq!(after_dry_run.0["floating_ips"], left.0["floating_ips"]);
    // The text form names each, with the run it came from.
    let text = run_tool(
        def.path(),
        &["sweep", "--dry-run", "--older-than", "0s"],
        &env_pairs(&s.compute.os_env()),
    );
    assert_eq!(text.code, 0, "{}", text.all());
    for said in [
        format!("delete server {}", our_server[0]),
        format!("delete key pair {}", our_key[0]),
        format!("release floating IP {}", our_fip[0]),
        "sweep: 3 would be removed (dry run), 0 failed".to_string(),
    ] {
        assert!(text.stdout.contains(&said), "{said}:\n{}", text.stdout);
    }

    // 4. The sweep removes them; the other definition's and the other tools' stay.
    let (run, report) = sweep(&s, def.path(), &["--older-than", "0s"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(swept(&report), expected, "{report:#}");
    assert_eq!(report["removed"], 3, "{report:#}");
    let after = only_foreign_left(&s, &foreign_servers, &foreign_keys);
    assert_eq!(after.0["containers"].as_array().unwrap().len(), 2);
    assert_eq!(after.calls("neutron DELETE floatingips").len(), 1);
    eprintln!("killed runner swept after {:?}", t0.elapsed());

    // 5. Another death; hours later the next build sweeps its target's leftovers first
    // (default limit), then builds, and leaves nothing behind.
    kill_build_mid_provisioning(&s, &def);
    let second = s.compute.report();
    let second_server: Vec<String> = ids_of(&second, "servers", "id")
        .into_iter()
        .filter(|id| !foreign_servers.contains(id))
        .collect();
    assert_eq!(second_server.len(), 1, "{:#}", second.0);
    s.compute.age(5 * 3600);
    def.script("step.sh", PROVISION_HOSTNAME);
    let t1 = Instant::now();
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &["--attempts", "1"]);
    assert_built(&run, &rec);
    assert!(
        run.stderr
            .contains(&format!("build: sweep: delete server {}", second_server[0])),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("build: sweep: release floating IP"),
        "{}",
        run.stderr
    );
    eprintln!("build after a death: {:?}", t1.elapsed());
    only_foreign_left(&s, &foreign_servers, &foreign_keys);
    let images = s.images(&name);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].status, "active");

    // The test's own things go; the stand-in ends clean.
    drop(nova);
    s.finish();
}

/// Two runs of one target at once with different deadlines (a second pipeline, a local
/// `build --timeout 2m`): the short one's pre-build sweep never touches the long one,
/// however old the long one's server is by the short one's measure.
#[test]
fn a_short_runs_sweep_never_touches_a_long_runs_server() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-tworuns-");
    let long_def = small_definition(&name, PROVISION_FOREVER);
    let tmp = tempfile::tempdir().unwrap();
    // No lease renewal during the test: the long run's deadline alone must spare it.
    let mut long = spawn_build_with(&s, &long_def, tmp.path(), &[], &QUIET_LEASE);
    let stderr = Lines::of(long.stderr.take().unwrap());
    let mut seen = Vec::new();
    stderr.wait_for("provisioning-started", Duration::from_secs(180), &mut seen);
    let before = s.compute.report();
    let long_server = ids_of(&before, "servers", "id");
    let long_keypair = ids_of(&before, "keypairs", "");
    assert_eq!(
        (long_server.len(), long_keypair.len()),
        (1, 1),
        "{:#}",
        before.0
    );
    // Beside it, a dead run's server of the same target, its deadline long past: the
    // short run's sweep must take that one (a sweep that failed or found nothing would
    // pass the rest of this test too).
    let mut nova = Nova::new(&s);
    let dead = nova.server(
        "dead-run",
        None,
        serde_json::json!({"uworker_image": name, "uworker_run_id": "dead-1",
            "uworker_target": "e2e", "uworker_deadline": "2026-01-01T00:00:00Z"}),
    );
    // Ten minutes pass: more than the short run's whole life (2m, and 5m to clean up).
    s.compute.age(600);

    let short_def = small_definition(&name, PROVISION_HOSTNAME);
    let (run, rec) = build(
        &s,
        short_def.path(),
        &plain_config(),
        &[],
        &["--attempts", "1", "--timeout", "2m"],
    );
    assert_built(&run, &rec);
    assert!(
        run.stderr
            .contains(&format!("build: sweep: delete server {dead}"))
            && !run.stderr.contains("cannot sweep")
            && !run.stderr.contains("did not finish"),
        "the short run's sweep took the dead run's server:\n{}",
        run.stderr
    );
    nova.servers.retain(|id| *id != dead);
    assert!(
        !run.stderr.contains(&long_server[0]) && !run.stderr.contains(&long_keypair[0]),
        "the short run's sweep named the long run's server or key pair:\n{}",
        run.stderr
    );
    let after = s.compute.report();
    assert_eq!(
        (
            ids_of(&after, "servers", "id"),
            ids_of(&after, "keypairs", "")
        ),
        (long_server, long_keypair),
        "the long run's server and key pair stay"
    );
    assert!(long.try_wait().unwrap().is_none(), "the long build runs on");

    procs::signal(long.id() as i32, libc::SIGINT).unwrap();
    let status = long.wait().unwrap();
    stderr.drain_into(&mut seen);
    assert_eq!(status.code(), Some(130), "{}", seen.join("\n"));
    drop(nova);
    s.finish();
}

#[test]
fn a_stuck_image_of_ours_older_than_the_limit_is_swept_and_a_fresh_one_is_not() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-stuck-");
    let other = s.definition_name("e2e-stuck-other-");
    let def = small_definition(&name, PROVISION_HOSTNAME);
    let ours = |suffix: &str| format!("{name}-e2e-{suffix}");
    let marks = [("uworker_image", name.as_str()), ("uworker_target", "e2e")];
    // Old: ours stuck saving (its upload died with the glance-api worker), ours active (a
    // finished image, prune's business), another definition's stuck queued.
    let t_old = Instant::now();
    let old_saving = common::openstack::image_stuck_saving(&s.cloud, &ours("old"), &marks);
    let active = common::openstack::create_image(&s.cloud, &ours("done"), &marks, true);
    let foreign = common::openstack::create_image(
        &s.cloud,
        &format!("{other}-e2e-x"),
        &[("uworker_image", other.as_str()), ("uworker_target", "e2e")],
        false,
    );
    std::thread::sleep(Duration::from_secs(8));
    // Fresh: ours stuck saving too, but younger than the limit.
    let t_fresh = Instant::now();
    let fresh_saving = common::openstack::image_stuck_saving(&s.cloud, &ours("new"), &marks);

    // The limit halfway between the two images' ages (each stuck image takes Glance a few
    // seconds to come back from): at least 8 s from either.
    let limit = t_fresh.elapsed() + (t_fresh - t_old) / 2;
    let limit = format!("{}s", limit.as_secs());
    let (run, report) = sweep(&s, def.path(), &["--older-than", &limit]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        swept(&report),
        [(
            "image".to_string(),
            old_saving.id.clone(),
            "delete".to_string()
        )],
        "{report:#}"
    );
    assert_eq!(report["items"][0]["result"], "done", "{report:#}");
    let spared: Vec<&str> = report["spared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(spared, [fresh_saving.id.as_str()], "{report:#}");

    let glance = Glance::new(&s.cloud).unwrap();
    let left: Vec<String> = s.images(&name).into_iter().map(|i| i.id).collect();
    assert!(!left.contains(&old_saving.id), "{left:?}");
    assert!(
        left.contains(&fresh_saving.id) && left.contains(&active.id),
        "{left:?}"
    );
    assert_eq!(glance.get(&foreign.id).unwrap().status, "queued");
    // No compute resource was there, none was touched.
    let report = s.finish();
    assert!(report.calls("ServersController.delete").is_empty());
}

#[test]
fn sweep_exits_3_when_the_cloud_keeps_failing_and_0_when_it_recovers() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-sweepfail-");
    let def = small_definition(&name, PROVISION_HOSTNAME);
    // The client tries 4 times: 4 failures are one too many, 3 are weathered.
    s.compute.inject(faults(&[("list_500", 4)]));
    let (run, report) = sweep(&s, def.path(), &["--dry-run"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(
        run.stderr.contains("servers/detail")
            && run.stderr.contains("HTTP 500, still after 4 attempts"),
        "{}",
        run.stderr
    );
    assert!(
        report.is_null(),
        "no report when nothing could be listed: {report:#}"
    );
    s.compute.inject(faults(&[("list_500", 3)]));
    let (run, report) = sweep(&s, def.path(), &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(swept(&report), [], "{report:#}");
    let report = s.finish();
    let lists: Vec<u64> = report
        .calls("ServersController.detail")
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(lists, [500, 500, 500, 500, 500, 500, 500, 200]);
}

#[test]
fn a_configured_floating_ip_left_on_a_dead_server_is_detached_not_released() {
    let s = Scenario::start();
    let floating = allocate_floating_ip(&s.cloud);
    let name = s.definition_name("e2e-killedfip-");
    let def = small_definition(&name, PROVISION_FOREVER);
    let var = format!("openstack_free_floating_ip={}", floating.address);
    // The build as kill_build_mid_provisioning runs it, with the seed's floating IP.
    let tmp = tempfile::tempdir().unwrap();
    kill_mid_provisioning(spawn_build_with(
        &s,
        &def,
        tmp.path(),
        &["--var", &var],
        &QUIET_LEASE,
    ));
    let left = s.compute.report();
    assert_eq!(
        left.0["floating_ips"][0]["id"],
        floating.id.as_str(),
        "{:#}",
        left.0
    );
    assert!(left.0["floating_ips"][0]["port_id"].is_string(), "attached");

    // Swept without the var-file (the daily sweep has none): the server says its run
    // took no address from a pool, so the address is someone's, and stays theirs.
    let (run, report) = sweep(&s, def.path(), &["--older-than", "0s"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let items = swept(&report);
    assert!(
        items.contains(&("floating_ip".into(), floating.id.clone(), "detach".into())),
        "{report:#}"
    );
    assert_eq!(items.len(), 3, "{report:#}");
    let now: serde_json::Value = s
        .cloud
        .call(Method::GET, &floating.url(), |r| r)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        now["floatingip"]["port_id"],
        serde_json::Value::Null,
        "{now:#}"
    );
    let report = s.compute.report();
    assert_eq!(
        report.calls("neutron PUT floatingips").len(),
        2,
        "attach, detach"
    );
    assert!(report.calls("neutron DELETE floatingips").is_empty());
    drop(floating);
    s.finish();
}

/// The names the two servers booted from one generalized image get, and the hostnames
/// Nova makes of them (sanitized: lower case, `_`, `.` and spaces to `-`).
const CLONES: [(&str, &str); 2] = [
    ("uworker Clone_1", "uworker-clone-1"),
    ("uworker Clone.2", "uworker-clone-2"),
];

/// Prints, one line each, what a generalized image must not hold under root `$1` (empty:
/// the host it runs on): packer's public key `$2` in an authorized_keys, a package in
/// apt's cache, apt's lists, the worker's uploads in /tmp.
const LEFTOVERS: &str = r#"
set -euo pipefail
shopt -s nullglob
r=$1 key=$2
for dir in "$r/root" "$r/home" "$r/etc" "$r/var/lib"; do
  find "$dir" -xdev -type f -name 'authorized_keys*' -exec grep -lF -- "$key" {} + |
    sed 's/^/packer key in: /' || true
done
for f in "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/archives/partial/*.deb; do
  echo "package: $f"
done
find "$r/var/lib/apt/lists" -mindepth 1 ! -name lock ! -path "$r/var/lib/apt/lists/partial" |
  sed 's/^/apt list: /'
for f in "$r"/tmp/uworker*; do echo "upload: $f"; done
"#;

/// Prints, one line each, what identifies the build server in an image root `$1` and a
/// clone would share: cloud-init's record of its instance, its hostname `$2` (in
/// /etc/hostname or /etc/hosts), docker's engine identity, its DHCP leases.
const BUILD_IDENTITY: &str = r#"
set -euo pipefail
shopt -s nullglob
r=$1 build_host=$2
for f in "$r"/var/lib/cloud/instances/* "$r"/var/lib/cloud/instance \
  "$r"/var/lib/cloud/data/instance-id "$r"/etc/docker/key.json "$r"/var/lib/docker/engine-id \
  "$r"/var/lib/dhcp/* "$r"/var/lib/dhcpcd*/* "$r"/var/lib/NetworkManager/*lease*; do
  if [ -e "$f" ] || [ -L "$f" ]; then echo "left: ${f#"$r"}"; fi
done
for f in "$r"/var/lib/systemd/credential.secret "$r"/var/lib/cloud/seed/*/*; do
  if [ -f "$f" ]; then echo "left: ${f#"$r"}"; fi
done
if grep -qwF -- "$build_host" "$r/etc/hostname"; then echo "hostname: $(cat "$r/etc/hostname")"; fi
grep -wF -- "$build_host" "$r/etc/hosts" | sed 's/^/hosts: /' || true
grep -qE '^127\.0\.0\.1[[:space:]](.*[[:space:]])?localhost([[:space:]]|$)' "$r/etc/hosts" ||
  echo "hosts: no 127.0.0.1 localhost"
"#;

/// The first boot of a stand-in server as cloud-init makes it: cloud-init ran to its end;
/// its per-instance stage ran for this server's instance-id and no other (no instance
/// record from the build server); the hostname is the one Nova made of its name; the
/// server's own key pair is the only key authorized (ubuntu and root).
fn assert_first_boot_of(server: &StandInServer, hostname: &str) {
    let ssh = &server.ssh;
    assert_eq!(
        ssh.root_ok("cloud-init status --wait >/dev/null || true; cloud-init status"),
        "status: done\n",
        "cloud-init on {}: {}",
        server.name,
        ssh.root_ok("cloud-init status --long || true")
    );
    assert_eq!(
        ssh.root_ok(
            "cat /var/lib/cloud/data/instance-id; ls /var/lib/cloud/instances; \
             readlink -f /var/lib/cloud/instance"
        ),
        format!(
            "{id}\n{id}\n/var/lib/cloud/instances/{id}\n",
            id = server.id
        ),
        "the per-instance stage of {} ran for its own instance-id only",
        server.name
    );
    ssh.root_ok(&format!(
        "test -e /var/lib/cloud/instances/{}/sem/config_ssh",
        server.id
    ));
    assert_eq!(
        ssh.root_ok("hostname; cat /etc/hostname"),
        format!("{hostname}\n{hostname}\n")
    );
    let own = server.public_key.split_whitespace().nth(1).unwrap();
    assert_eq!(
        ssh.root_ok(
            "cat ~ubuntu/.ssh/authorized_keys /root/.ssh/authorized_keys | \
             grep -o 'ssh-[a-z0-9-]* AAAA[^ ]*' | awk '{print $2}' | sort -u"
        ),
        format!("{own}\n"),
        "{} authorizes its own key pair and no other",
        server.name
    );
}

/// Runs LEFTOVERS against the image's root on this machine.
fn leftovers_in(root: &Path, key: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["-c", LEFTOVERS, "leftovers"])
        .arg(root)
        .arg(key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(&root.display().to_string(), "")
}

/// The generalize step's proof: one build of the default definition, two servers booted
/// from its image through the stand-in (each with a key pair of its own, as a user boots
/// them) are two machines: each ran cloud-init's per-instance stage with its own
/// instance-id, authorizes only its own key pair, has its own hostname, machine-id and
/// SSH host keys; both run the worker; and neither holds what the build left (packer's
/// key, apt's cache and lists, the uploads, the build server's hostname, instance record,
/// docker identity and leases).
#[test]
fn two_clones_are_two_machines() {
    let started = Instant::now();
    let s = Scenario::start();
    let DefaultBuild {
        service,
        run,
        image_id,
        took: built,
        ..
    } = build_default_definition(&s, "e2e-clones-", BASE_IMAGE);
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("90-generalize.sh: "))
        .collect();
    eprintln!("two clones: {}", said.join("\n"));
    assert!(
        said.last()
            .is_some_and(|l| l.ends_with("the image is generalized")),
        "the generalize step ran to its end:\n{}",
        run.stderr
    );
    assert!(
        said.iter()
            .any(|l| l.ends_with("cleaned cloud-init's state and logs")),
        "the generalize step found cloud-init on the build server:\n{}",
        said.join("\n")
    );
    let image = Glance::new(&s.cloud).unwrap().get(&image_id).unwrap();
    eprintln!(
        "two clones: image size in Glance {} bytes",
        image.properties["size"]
    );
    let report = s.finish();
    let packer_keys: Vec<String> = report
        .list("public_keys")
        .iter()
        .map(|k| {
            k.as_str()
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        packer_keys.len(),
        1,
        "packer made one key pair: {packer_keys:?}"
    );
    let packer_key = &packer_keys[0];
    let build_servers = report.list("created");
    assert_eq!(build_servers.len(), 1, "{build_servers:?}");
    let build_host = build_servers[0]["hostname"].as_str().unwrap();

    // The image itself: no machine-id, no host keys, nothing the build left, nothing that
    // names the build server.
    let work = tempfile::tempdir().unwrap();
    let image_root = work.path().join("image");
    unpack_image(&s.cloud, &image_id, &image_root);
    let mut found = leftovers_in(&image_root, packer_key);
    let machine_id = std::fs::read_to_string(image_root.join("etc/machine-id")).unwrap();
    if !machine_id.is_empty() {
        found += &format!("machine-id: {machine_id:?}\n");
    }
    for entry in std::fs::read_dir(image_root.join("etc/ssh"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("ssh_host_") {
            found += &format!("host key: {name}\n");
        }
    }
    let identity = std::process::Command::new("bash")
        .args(["-c", BUILD_IDENTITY, "identity"])
        .arg(&image_root)
        .arg(build_host)
        .output()
        .unwrap();
    assert!(identity.status.success(), "{identity:?}");
    found += &String::from_utf8(identity.stdout).unwrap();
    assert_eq!(
        found, "",
        "the image holds what identifies or only served the build ({build_host})"
    );
    drop(work);

    // Two servers from it, booted one after the other and running side by side.
    s.compute.reset();
    let t_boot = Instant::now();
    let clones: Vec<StandInServer> = CLONES
        .iter()
        .map(|(name, _)| StandInServer::boot(&s.cloud, &image_id, name, None))
        .collect();
    // Each worker logs in once as it starts (and is never restarted, below): two logins
    // are one from each host.
    let until = Instant::now() + Duration::from_secs(90);
    let tokens = loop {
        let tokens: Vec<_> = service
            .requests()
            .into_iter()
            .filter(|r| r.path == "/token")
            .collect();
        if tokens.len() >= 2 {
            break tokens;
        }
        if Instant::now() > until {
            let status: Vec<String> = clones
                .iter()
                .map(|c| {
                    let out = c.ssh.root("SYSTEMD_COLORS=0 systemctl status --no-pager uworker.service; journalctl -u uworker --no-pager | tail -20");
                    String::from_utf8_lossy(&out.stdout).into_owned()
                })
                .collect();
            panic!(
                "{} of 2 workers logged in:\n{}",
                tokens.len(),
                status.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    for token in &tokens {
        assert_eq!(
            token.basic_auth,
            Some((NASTY_USERNAME.to_string(), NASTY_PASSWORD.to_string())),
            "each worker logs in with exactly the configured credentials"
        );
    }
    let mut machine_ids = Vec::new();
    let mut fingerprints = Vec::new();
    for (clone, (_, hostname)) in clones.iter().zip(CLONES) {
        let host = &clone.ssh;
        assert_first_boot_of(clone, hostname);
        assert_eq!(
            host.root_ok(
                "systemctl is-active uworker.service; \
                 systemctl show --property=NRestarts --value uworker.service"
            ),
            "active\n0\n",
            "the worker of {} runs, never restarted",
            clone.name
        );
        let id = host.root_ok("cat /etc/machine-id").trim().to_string();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "machine-id of {}: {id:?}",
            clone.name
        );
        machine_ids.push(id);
        // The keys sshd serves, as a client sees them.
        let scan = std::process::Command::new("sh")
            .arg("-c")
            .arg("ssh-keyscan -p \"$2\" \"$1\" 2>/dev/null | ssh-keygen -lf - | awk '{print $2}' | sort")
            .args(["keyscan", &host.address, &host.port.to_string()])
            .output()
            .unwrap();
        let mut keys: Vec<String> = String::from_utf8(scan.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        keys.sort();
        assert!(keys.len() >= 2, "{} serves host keys: {keys:?}", clone.name);
        // cloud-init makes a clone's host keys; the image's unit, there and enabled, only
        // fills in where it does not: here its condition found the keys made. (`Result`
        // says `success` even of a unit that does not exist.)
        assert_eq!(
            host.root_ok(
                "systemctl show -p LoadState,UnitFileState,ConditionResult uworker-ssh-host-keys.service | sort"
            ),
            "ConditionResult=no\nLoadState=loaded\nUnitFileState=enabled\n",
            "uworker-ssh-host-keys.service on {}",
            clone.name
        );
        fingerprints.push(keys);
        assert_eq!(
            host.root_ok(&format!(
                "bash -s '' '{packer_key}' <<'CHECK'\n{LEFTOVERS}\nCHECK"
            )),
            "",
            "left on {}",
            clone.name
        );
    }
    assert_ne!(machine_ids[0], machine_ids[1], "two machine-ids");
    assert!(
        fingerprints[0].iter().all(|k| !fingerprints[1].contains(k)),
        "no host key shared: {fingerprints:?}"
    );
    assert_eq!(
        service
            .requests()
            .iter()
            .filter(|r| r.path == "/token")
            .count(),
        2,
        "no third login"
    );
    let booted = t_boot.elapsed();
    drop(clones);
    s.finish();
    eprintln!(
        "two clones: build {built:?}, two boots and checks {booted:?}, total {:?}",
        started.elapsed()
    );
}

/// A private repository's URL, given in the environment (UWORKER_IMAGE_WORKER_SOURCE),
/// travels to a build step the way WORKER_SOURCE does; the built image's files hold
/// neither its credentials nor the run's upload directory.
#[test]
fn the_image_holds_no_url_credentials_and_no_upload_directory() {
    use common::worker_url::{assert_no_credentials, private_url};
    let s = Scenario::start();
    let name = s.definition_name("e2e-token-");
    let def = Fixture::new(&format!(
        "name = \"{name}\"\n\
         [variables]\n\
         worker_source = \"uworker==1.0\"\n\
         [target.e2e]\n\
         source_image_name = \"{BASE_IMAGE}\"\n\
         flavor = \"c1.small\"\n\
         ssh_username = \"ubuntu\"\n\
         [[provision]]\n\
         worker_config = \"{{{{user `upload_dir`}}}}/uworker.conf\"\n\
         [[provision]]\n\
         script = \"step.sh\"\n\
         sudo = true\n\
         environment = {{ WORKER_SOURCE = \"{{{{user `worker_source`}}}}\" }}\n"
    ));
    // The step uses the URL (a stamp without the credentials, as 35-worker.sh writes).
    def.script(
        "step.sh",
        "#!/bin/bash\nset -euo pipefail\ntest -n \"$WORKER_SOURCE\"\n\
         printf '%s\\n' \"${WORKER_SOURCE//x-access-token*@/}\" >/etc/e2e-stamp\n\
         echo \"provisioned $(hostname)\"\n",
    );
    let url = private_url();
    let mut config = plain_config();
    config.push(("UWORKER_IMAGE_WORKER_SOURCE".into(), url.clone()));
    let (run, rec) = build(&s, def.path(), &config, &[], &[]);
    assert_built(&run, &rec);
    assert_no_credentials("the build's output", &run.all());
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    unpack_image(&s.cloud, rec["image_id"].as_str().unwrap(), &root);
    assert!(
        std::fs::read_to_string(root.join("etc/e2e-stamp"))
            .unwrap()
            .contains("127.0.0.1:9/o/worker.git"),
        "the step got the URL"
    );
    let found = std::process::Command::new("grep")
        .args([
            "-r",
            "-a",
            "-l",
            "-F",
            "-e",
            "x-access-token",
            "-e",
            "T0k$en",
        ])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&found.stdout),
        "",
        "files of the image hold the URL's credentials"
    );
    let uploads: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("uworker-image."))
        .collect();
    assert!(uploads.is_empty(), "{uploads:?}");
    s.finish();
}

/// The stand-in feeds a server's cloud-init as Nova does: the server ID as instance-id, the
/// hostname Nova makes of the name, the key pair (the only way a key reaches the host),
/// the create body's user data. And it keeps the server's metadata as Nova's API does
/// (merge, set one item, list, show), held to Nova's schemas.
#[test]
fn a_server_gets_its_identity_through_cloud_init_and_keeps_its_metadata() {
    let s = Scenario::start();
    let glance = Glance::new(&s.cloud).unwrap();
    let base = glance.list(&[("name", BASE_IMAGE)], |_| true).unwrap();
    let server = StandInServer::boot(
        &s.cloud,
        &base[0].id,
        "First_boot check.1",
        Some("#cloud-config\nruncmd:\n  - [touch, /run/user-data-ran]\n"),
    );
    assert_first_boot_of(&server, "first-boot-check-1");
    server.ssh.root_ok("test -e /run/user-data-ran");

    let url = format!(
        "{}/servers/{}/metadata",
        s.cloud.endpoint("compute").unwrap(),
        server.id
    );
    let call = |method: Method, url: &str, body: serde_json::Value| -> serde_json::Value {
        s.cloud
            .call(method, url, |r| r.json(&body))
            .unwrap()
            .json()
            .unwrap()
    };
    let merged = call(
        Method::POST,
        &url,
        serde_json::json!({ "metadata": { "a": "1", "b": "2" } }),
    );
    assert_eq!(
        merged["metadata"],
        serde_json::json!({ "a": "1", "b": "2" })
    );
    let merged = call(
        Method::POST,
        &url,
        serde_json::json!({ "metadata": { "b": "3" } }),
    );
    assert_eq!(
        merged["metadata"],
        serde_json::json!({ "a": "1", "b": "3" })
    );
    let item = call(
        Method::PUT,
        &format!("{url}/heartbeat"),
        serde_json::json!({ "meta": { "heartbeat": "2026-01-01T00:00:00Z" } }),
    );
    assert_eq!(
        item["meta"],
        serde_json::json!({ "heartbeat": "2026-01-01T00:00:00Z" })
    );
    let all: serde_json::Value = s.cloud.get_json(&url).unwrap();
    assert_eq!(
        all["metadata"],
        serde_json::json!({ "a": "1", "b": "3", "heartbeat": "2026-01-01T00:00:00Z" })
    );
    assert_eq!(server.show()["metadata"], all["metadata"]);
    let one: serde_json::Value = s.cloud.get_json(&format!("{url}/a")).unwrap();
    assert_eq!(one["meta"], serde_json::json!({ "a": "1" }));
    // A body that does not name the URL's key is refused, as Nova refuses it.
    let mismatch = s.cloud.call(Method::PUT, &format!("{url}/other"), |r| {
        r.json(&serde_json::json!({ "meta": { "a": "x" } }))
    });
    assert!(
        matches!(&mismatch, Err(e) if e.to_string().contains("Request body and URI mismatch")),
        "{mismatch:?}"
    );

    drop(server);
    let report = s.finish();
    for (operation, count) in [
        ("ServerMetadataController.create", 2),
        ("ServerMetadataController.update", 2),
        ("ServerMetadataController.index", 1),
        ("ServerMetadataController.show", 1),
    ] {
        assert_eq!(
            report.calls(operation).len(),
            count,
            "{operation}: {:#}",
            report.0["calls"]
        );
    }
}

//! End to end: `build` runs packer's real openstack builder against the real Keystone and
//! Glance and the Compute stand-in (tests/harness/compute), which holds every request and
//! answer to Nova's own schemas (floating IPs: neutron-lib's definitions) and boots each
//! server as a real systemd host. Scenarios run one at a time (one stand-in, a 2-core
//! machine); each ends with the stand-in reporting no server, key pair, container or
//! floating IP left, no schema violation, no unimplemented call and no error of its own.
//!
//! This file holds `Scenario` and the helpers the families share; each family runs alone
//! by its path, e.g. `cargo test --release --features services --test services e2e::sweep::`.

mod base_image;
mod cancel;
mod default_image;
mod failures;
mod floating_ip;
mod image;
mod pins;
mod standin;
mod sweep;
mod token;
mod verify;

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::compute::{address, compute, Compute, StandInServer};
use common::job_service::JobService;
use common::openstack::{env_pairs, unique};
use common::*;
use reqwest::Method;
use uworker_image::http::retry::Retry;
use uworker_image::openstack::client::Cloud;
use uworker_image::openstack::glance::{Glance, Image};
use uworker_image::run_marks::IMAGE_PROPERTY;

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

    /// The small definition of one script step under a new definition name of this
    /// scenario (from `prefix`): the name and the definition.
    pub(crate) fn small_definition(&self, prefix: &str, script: &str) -> (String, Fixture) {
        self.small_definition_with(prefix, "", script)
    }

    /// The same with more keys in its target.
    pub(crate) fn small_definition_with(
        &self,
        prefix: &str,
        target_keys: &str,
        script: &str,
    ) -> (String, Fixture) {
        let name = self.definition_name(prefix);
        let def = small_definition_with(&name, target_keys, script);
        (name, def)
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
    region_cloud_with(compute, Retry::default())
}

fn region_cloud_with(compute: &Compute, retry: Retry) -> Cloud {
    common::openstack::connect_with(&compute.os_env(), retry)
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

/// The small definition with more keys in its target. Its image is not generalized (the
/// build's key stays authorized, the build server's cloud-init state stays): a
/// verification would rightly fail it, so it has none (e2e/verify.rs verifies).
fn small_definition_with(name: &str, target_keys: &str, script: &str) -> Fixture {
    let f = Fixture::new(&format!(
        "name = \"{name}\"\n\
         [target.e2e]\n\
         source_image_name = \"{BASE_IMAGE}\"\n\
         flavor = \"c1.small\"\n\
         ssh_username = \"ubuntu\"\n\
         {target_keys}\n\
         [[provision]]\n\
         script = \"step.sh\"\n\
         [verify]\n\
         enabled = false\n"
    ));
    f.script("step.sh", script);
    f
}

/// The target key of a small definition whose server gets a floating IP from the pool.
const FIP_FROM_POOL: &str = "floating_ip_network = \"public\"";

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

/// `build --attempts 1 ARGS` of `def`, its output piped, for a test that signals it.
/// Its work directory goes into `tmp` (TMPDIR), where the test can look for it.
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

/// A build started in the background and past a given line of its output (`build_until`).
struct LongBuild {
    name: String,
    def: Fixture,
    /// The build's TMPDIR.
    tmp: tempfile::TempDir,
    child: Child,
    stderr: Lines,
    seen: Vec<String>,
}

impl LongBuild {
    /// SIGINT, as a user's Ctrl-C: the build exits 130.
    fn interrupt(&mut self) {
        procs::signal(self.child.id() as i32, libc::SIGINT).unwrap();
        let status = self.child.wait().unwrap();
        self.stderr.drain_into(&mut self.seen);
        assert_eq!(status.code(), Some(130), "{}", self.seen.join("\n"));
    }
}

/// A build of PROVISION_FOREVER with `args`, started and in its provisioning step.
fn long_build_in_provisioning(s: &Scenario, prefix: &str, args: &[&str]) -> LongBuild {
    build_until(s, prefix, PROVISION_FOREVER, args, "provisioning-started")
}

/// A build of `script` with `args`, started and past the stderr line holding `marker`.
fn build_until(s: &Scenario, prefix: &str, script: &str, args: &[&str], marker: &str) -> LongBuild {
    let (name, def) = s.small_definition(prefix, script);
    build_of_until(s, name, def, args, marker, Duration::from_secs(180))
}

/// A build of definition `name` (`def`) with `args`, started and past the stderr line
/// holding `marker`, seen `within` the start.
fn build_of_until(
    s: &Scenario,
    name: String,
    def: Fixture,
    args: &[&str],
    marker: &str,
    within: Duration,
) -> LongBuild {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn_build_with(s, &def, tmp.path(), &[], args);
    let stderr = Lines::of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    stderr.wait_for(marker, within, &mut seen);
    LongBuild {
        name,
        def,
        tmp,
        child,
        stderr,
        seen,
    }
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

/// PIDs of the direct children of `parent` whose command name is `name`.
fn children_named(parent: i32, name: &str) -> Vec<i32> {
    procs::all()
        .into_iter()
        .filter(|p| p.ppid == parent && p.comm == name)
        .map(|p| p.pid)
        .collect()
}

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

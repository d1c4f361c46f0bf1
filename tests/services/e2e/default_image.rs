//! The default image: the repository's default definition built on Debian 12 and 13,
//! skipped when built, and its image booted into a working worker.

use super::*;
use common::systemd_host::{BootOptions, SystemdHost};

/// Boots the image as a new host: the worker unit must come up by itself and log in to
/// the job service with exactly the configured credentials. `system` is what the image's
/// /etc/os-release says (`debian 12`).
fn boot_and_check_worker(s: &Scenario, image_id: &str, service: &JobService, system: &str) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    unpack_image(&s.cloud, image_id, &root);
    // The build's verification logged in from its own server before: not this host.
    let earlier = service.requests().len();
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
        if let Some(token) = requests
            .into_iter()
            .skip(earlier)
            .find(|r| r.path == "/token")
        {
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

#[test]
fn the_default_definition_builds_then_skips_and_its_image_boots_into_a_working_worker() {
    let s = Scenario::start();
    // 1. A fresh build: packer's openstack builder provisions the stand-in's server over
    // SSH; the image is active in Glance with the fingerprint; the record is written.
    let first = build_default_definition(&s, "e2e-default-", BASE_IMAGE);
    let (said, rec, image_id) = (&first.run.stderr, &first.rec, &first.image_id);
    assert!(said.contains("(command mode)"), "{said}");
    assert!(said.contains("Connected to SSH!"), "{said}");
    assert_eq!(rec["action"], "build", "{rec:#}");
    let fingerprint = rec["fingerprint"].as_str().unwrap().to_string();
    let image = Glance::new(&s.cloud).unwrap().get(image_id).unwrap();
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
        first.def.path(),
        &first.config,
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
    boot_and_check_worker(&s, image_id, &first.service, "debian 12");
    eprintln!(
        "default definition: build {:?}, boot check {:?}",
        first.took,
        t1.elapsed()
    );
}

/// Debian 13 (Python 3.13: the install path of the default base, Ubuntu 24.04): the
/// default definition builds on it, and its image boots into a working worker.
#[test]
fn the_default_definition_builds_on_debian_13_and_its_image_runs_the_worker() {
    let s = Scenario::start();
    let built = build_default_definition(&s, "e2e-debian13-", BASE_IMAGE_13);
    let said = &built.run.stderr;
    assert!(
        said.contains("Python 3.12+: the worker is installed without ConcurrentLogHandler"),
        "{said}"
    );
    let image = Glance::new(&s.cloud).unwrap().get(&built.image_id).unwrap();
    assert_eq!(image.status, "active");
    let report = s.finish();
    assert_eq!(report.calls("ServersController._create_image").len(), 1);
    let t1 = Instant::now();
    boot_and_check_worker(&s, &built.image_id, &built.service, "debian 13");
    eprintln!(
        "default definition on Debian 13: build {:?}, boot check {:?}",
        built.took,
        t1.elapsed()
    );
}

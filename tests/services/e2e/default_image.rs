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
    check_sbom(&first, &image);

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

/// Issue 28: the build's SBOM, taken on the build server and brought back next to the
/// record: valid CycloneDX 1.5, its SHA-256 in the record and on the image in Glance, and
/// listing dpkg's packages, the kernel and the worker pinned by the hash of the source
/// the tool uploaded. Then `report` of that record against GitHub's description (Prism
/// in front of the fake) releases it with the package diff against an earlier SBOM.
fn check_sbom(built: &DefaultBuild, image: &uworker_image::openstack::glance::Image) {
    use crate::sbom::{assert_valid_cyclonedx, components, property};
    let path = built.def.path().join("sbom.cdx.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let sha256 = uworker_image::sbom::sha256(&text);
    assert_eq!(
        built.rec["sbom"]["sha256"],
        sha256.as_str(),
        "{:#}",
        built.rec
    );
    assert_eq!(image.property("uworker_sbom_sha256"), Some(sha256.as_str()));
    assert_valid_cyclonedx(&[&path]);
    let sbom: serde_json::Value = serde_json::from_str(&text).unwrap();
    let debs = components(&sbom, "deb");
    assert!(debs.len() > 100, "{} deb packages", debs.len());
    assert!(debs.iter().any(|c| c["name"] == "systemd"), "no systemd");
    assert!(!components(&sbom, "kernel").is_empty(), "no kernel");
    let pypi = components(&sbom, "pypi");
    assert!(
        pypi.iter().any(|c| c["name"] == "requests"),
        "the worker's dependencies: {pypi:?}"
    );
    let [worker] = components(&sbom, "worker")[..] else {
        panic!("one worker: {sbom:#}")
    };
    assert_eq!(worker["name"], "uworker-standin");
    let pin = property(worker, "uworker-image:worker:pin").unwrap();
    let stamp = property(worker, "uworker-image:worker:installed-source").unwrap();
    assert!(
        pin.starts_with("sha256:") && stamp == format!("directory {}", &pin[7..]),
        "{pin} / {stamp}"
    );
    for (_, value) in &built.config {
        for line in value.lines().filter(|l| l.trim().len() >= 4) {
            assert!(!text.contains(line), "the SBOM holds a worker secret");
        }
    }
    assert_eq!(
        built.rec["sbom"]["packages"]["deb"],
        debs.len() as u64,
        "{:#}",
        built.rec
    );

    // The release: an earlier image of the target had an older openssl and worker.
    use common::github::{FakeGitHub, Job, Prism};
    let mut older: serde_json::Value = sbom.clone();
    for c in older["components"].as_array_mut().unwrap() {
        if c["name"] == "openssl" || c["name"] == "libc6" {
            c["version"] = "0.0.1-1".into();
        }
        for p in c["properties"].as_array_mut().unwrap() {
            if p["name"] == "uworker-image:worker:pin" {
                p["value"] = format!("sha256:{}", "0".repeat(64)).into();
            }
        }
    }
    let fake = FakeGitHub::start();
    let prism = Prism::proxy_logging(&fake.url);
    let mut previous = built.rec.clone();
    previous["image_id"] = "0b5e7c1e-aaaa-4bbb-8ccc-000000000007".into();
    let target = built.rec["target"].as_str().unwrap();
    fake.state.lock().unwrap().add_release(
        "image-000000000000",
        &format!("<!-- uworker-image:{target} -->\nolder"),
        &[
            ("image.json", &previous.to_string()),
            (
                "sbom-0b5e7c1e-aaaa-4bbb-8ccc-000000000007.cdx.json",
                &older.to_string(),
            ),
        ],
    );
    let job = Job::push(&prism.url);
    std::fs::copy(&path, job.dir.path().join("sbom.cdx.json")).unwrap();
    let r = job.report(&built.rec, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), prism.log());
    let state = fake.state.lock().unwrap();
    let release = state
        .releases
        .iter()
        .find(|r| r.tag != "image-000000000000")
        .unwrap();
    let asset = format!("sbom-{}.cdx.json", built.image_id);
    assert!(
        release
            .assets
            .iter()
            .any(|a| a.name == asset && a.content == text.as_bytes()),
        "{:?}",
        release.assets.iter().map(|a| &a.name).collect::<Vec<_>>()
    );
    let body = &release.body;
    assert!(
        body.contains("**Packages** against image `0b5e7c1e-aaaa-4bbb-8ccc-000000000007`"),
        "{body}"
    );
    assert!(body.contains("**worker** (1 changed)"), "{body}");
    assert!(
        body.contains(&format!(
            "`0.0.1-1` → `{}`",
            debs.iter().find(|c| c["name"] == "libc6").unwrap()["version"]
                .as_str()
                .unwrap()
        )),
        "{body}"
    );
    drop(state);
    prism.assert_conformant_but_storage();
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

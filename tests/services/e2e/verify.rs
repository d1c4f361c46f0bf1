//! Verification in the cloud (docs/verify.md): `build` boots the built image once through
//! the stand-in (a real systemd host from the Glance image, cloud-init fed the create
//! body's user-data and key) and checks it over SSH. A good image becomes `verified`, a
//! broken one `failed` (exit 1, the check named) while the previous verified image stays
//! current; a cancel during the verification leaves nothing, a killed runner leaves a
//! server that `sweep` removes.

use super::*;
use uworker_image::lifecycle::STATUS_PROPERTY;
use uworker_image::run_marks::TARGET_PROPERTY;

/// The repository's generalization step: a small image must be a clean clone too.
fn generalize_script() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("provision/scripts/90-generalize.sh"),
    )
    .unwrap()
}

/// A check of the definition's own that runs until it is stopped.
const CHECK_FOREVER: &str = "#!/bin/sh\necho verification-check-started\nsleep 300\n";

/// A small generalized definition (no worker) whose verification's last check is
/// CHECK_FOREVER: the build is then in its verification for as long as a test wants.
fn small_verified_definition(s: &Scenario, prefix: &str) -> (String, Fixture) {
    let (name, f) = s.small_definition(prefix, PROVISION_HOSTNAME);
    // The small definition, generalized and verified instead of unverified.
    let toml = f.path().join("image.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let unverified = "[verify]\nenabled = false\n";
    assert!(text.ends_with(unverified), "{text}");
    let verified = text.replace(
        unverified,
        "[[provision]]\n\
         script = \"generalize.sh\"\n\
         sudo = true\n\
         only = \"build\"\n\
         [verify]\n\
         timeout = \"10m\"\n\
         checks = [\"verify/forever.sh\"]\n",
    );
    std::fs::write(&toml, verified).unwrap();
    f.script("generalize.sh", &generalize_script());
    f.script("verify/forever.sh", CHECK_FOREVER);
    (name, f)
}

/// A build of `small_verified_definition` started, in its own verification check.
fn build_in_verification(s: &Scenario, prefix: &str, args: &[&str]) -> LongBuild {
    let (name, def) = small_verified_definition(s, prefix);
    // The built-in checks passed (the image is a clean clone); its own check runs now.
    let marker = "verify: residue ok";
    build_of_until(s, name, def, args, marker, Duration::from_secs(600))
}

/// The verification's checks in a build record, as (name, ok).
fn checks_of(rec: &serde_json::Value) -> Vec<(String, bool)> {
    rec["verification"]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no verification: {rec:#}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The target's current image: its newest `verified` one (the documented query).
fn current_image(s: &Scenario, name: &str) -> Option<Image> {
    let mut verified = Glance::new(&s.cloud)
        .unwrap()
        .list(
            &[
                (IMAGE_PROPERTY, name),
                (TARGET_PROPERTY, "smog"),
                (STATUS_PROPERTY, "verified"),
            ],
            |_| true,
        )
        .unwrap();
    verified.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    verified.into_iter().next()
}

/// The default definition, verified by default: every check passes, the image becomes
/// `verified` and current; the worker logged in from the verification's server and never
/// polled for a job. Then the same definition with a provisioning step that breaks the
/// worker's install: its verification fails on the import check, the run exits 1, the
/// image is `failed` and the first stays current.
#[test]
fn a_good_image_is_verified_and_a_broken_one_fails_while_the_good_one_stays_current() {
    let s = Scenario::start();
    let good = build_default_definition(&s, "e2e-verify-", BASE_IMAGE);
    let name = s.definitions.borrow().last().unwrap().clone();
    let rec = &good.rec;
    let checks = checks_of(rec);
    assert_eq!(
        checks,
        [
            "ssh",
            "cloud-init",
            "identity",
            "residue",
            "worker-unit",
            "worker-config",
            "worker-import",
            "job-service-login",
            "worker-not-started"
        ]
        .map(|n| (n.to_string(), true)),
        "{rec:#}"
    );
    assert_eq!(rec["verification"]["status"], "passed", "{rec:#}");
    assert_eq!(rec["verification"]["failed_check"], serde_json::Value::Null);
    let verify_ms = rec["verification"]["total_milliseconds"].as_u64().unwrap();
    eprintln!(
        "verification of the default image: {verify_ms} ms of a {:?} build",
        good.took
    );
    let image = Glance::new(&s.cloud).unwrap().get(&good.image_id).unwrap();
    assert_eq!(image.property(STATUS_PROPERTY), Some("verified"));
    assert!(image.property("uworker_verified_at").is_some(), "{image:?}");
    assert_eq!(
        current_image(&s, &name).map(|i| i.id),
        Some(good.image_id.clone())
    );
    // The verification's server logged in with the image's credentials, and the worker
    // never asked for a job: only `/token` reached the job service.
    let requests = good.service.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/token"], "{requests:#?}");
    assert_eq!(
        requests[0].basic_auth,
        Some((NASTY_USERNAME.to_string(), NASTY_PASSWORD.to_string()))
    );
    // The server was the stand-in's second (after packer's), and is gone with its key pair.
    let report = s.finish();
    assert_eq!(
        report.calls("ServersController.create").len(),
        2,
        "{:#}",
        report.0
    );

    // 2. The worker's package removed from its venv after the install: the import fails.
    s.compute.reset();
    let toml = good.def.path().join("image.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(
        "\n[[provision]]\ninline = [\"sudo rm -rf /opt/uworker/venv/lib/python3*/site-packages/uworker_standin\"]\nonly = \"build\"\n",
    );
    std::fs::write(&toml, text).unwrap();
    let (run, rec) = build(
        &s,
        good.def.path(),
        &good.config,
        &["--var", "worker_source=worker-standin"],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(rec["verification"]["status"], "failed", "{rec:#}");
    assert_eq!(rec["verification"]["failed_check"], "worker-import");
    assert!(
        run.stderr.contains("verify: worker-import FAILED"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the worker's python cannot import the worker"),
        "{}",
        run.stderr
    );
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("verification failed: worker-import"),
        "{rec:#}"
    );
    let failed_id = rec["image_id"].as_str().unwrap();
    let failed = Glance::new(&s.cloud).unwrap().get(failed_id).unwrap();
    assert_eq!(failed.property(STATUS_PROPERTY), Some("failed"));
    assert_ne!(
        failed.property("uworker_fingerprint"),
        image.property("uworker_fingerprint")
    );
    // The good image stays the target's current one.
    assert_eq!(
        current_image(&s, &name).map(|i| i.id),
        Some(good.image_id.clone())
    );
    s.finish();
}

/// SIGINT while the verification runs a check: the tool ends the check, deletes the
/// server and both key pairs, and exits 130; the image stays a candidate.
#[test]
fn a_cancel_during_verification_leaves_no_server_and_no_key_pair() {
    let s = Scenario::start();
    let mut build = build_in_verification(&s, "e2e-verify-cancel-", &[]);
    let during = s.compute.report();
    assert_eq!(
        during.0["servers"].as_array().unwrap().len(),
        1,
        "the verification's server: {:#}",
        during.0
    );
    let t0 = Instant::now();
    build.interrupt();
    let took = t0.elapsed();
    let log = build.seen.join("\n");
    assert!(took < Duration::from_secs(10), "exit took {took:?}:\n{log}");
    eprintln!("SIGINT during verification: out after {took:?}");
    for line in build.seen.iter().filter(|l| l.contains("verify:")) {
        eprintln!("  {line}");
    }
    assert!(log.contains("verification interrupted"), "{log}");
    assert!(
        common::runner::workdirs(build.tmp.path()).is_empty(),
        "work dir left:\n{log}"
    );
    // Asked before the exit: the stand-in ends clean (its host stops in the background).
    let report = s.finish();
    assert_eq!(
        report.calls("ServersController.delete").len(),
        2,
        "packer's and ours"
    );
    assert_eq!(
        report.calls("KeypairController.delete").len(),
        2,
        "the build's and ours"
    );
    let images = s.images(&build.name);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].property(STATUS_PROPERTY), Some("candidate"));
}

/// The runner dies (SIGKILL) during the verification: its server and key pair stay,
/// marked as the run's; once the run is over `sweep` removes both.
#[test]
fn a_runner_killed_during_verification_leaves_a_server_that_sweep_removes() {
    let s = Scenario::start();
    let build = build_in_verification(&s, "e2e-verify-killed-", &QUIET_LEASE);
    let ssh_groups: Vec<i32> = children_named(build.child.id() as i32, "ssh")
        .into_iter()
        .filter_map(procs::stat)
        .map(|p| p.pgrp)
        .collect();
    let mut child = build.child;
    child.kill().unwrap();
    child.wait().unwrap();
    for group in ssh_groups {
        let _ = procs::signal(-group, libc::SIGKILL);
    }
    let left = s.compute.report();
    let servers = left.0["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{:#}", left.0);
    let server_id = servers[0]["id"].as_str().unwrap().to_string();
    let keypairs = left.0["keypairs"].as_array().unwrap();
    assert_eq!(
        keypairs.len(),
        1,
        "the verification's key pair: {:#}",
        left.0
    );
    let keypair = keypairs[0].as_str().unwrap().to_string();
    assert!(
        keypair.starts_with(&format!("uworker-image {} e2e ", build.name)),
        "{keypair}"
    );

    // While its deadline has not passed, it may be a live run: nothing goes.
    let (run, report) = sweep(&s, build.def.path(), &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(swept(&report), [], "{report:#}");

    // Hours later the sweep removes the server and its key pair.
    s.compute.age(5 * 3600);
    let (run, report) = sweep(&s, build.def.path(), &["--older-than", "0s"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mut expected = vec![
        ("keypair".to_string(), keypair, "delete".to_string()),
        ("server".to_string(), server_id, "delete".to_string()),
    ];
    expected.sort();
    assert_eq!(swept(&report), expected, "{report:#}");
    s.finish();
}

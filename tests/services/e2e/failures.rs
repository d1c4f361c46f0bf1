//! Failures: faults the cloud injects are retried until the build succeeds, a failing
//! provisioner is not retried, and the stand-in refuses what Nova would not accept.

use super::*;
use common::compute::faults;
use uworker_image::openstack::client::OpenStackError;

#[test]
fn transient_failures_are_retried_until_the_build_succeeds() {
    let s = Scenario::start();
    let (name, def) = s.small_definition("e2e-retry-", PROVISION_HOSTNAME);
    // Attempt 1: HTTP 500 on server create; attempt 2: the server goes to ERROR.
    s.compute
        .inject(faults(&[("create_500", 1), ("boot_error", 1)]));
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &["--attempts", "3"]);
    assert_built(&run, &rec);
    assert_eq!(rec["attempts"], 3, "{rec:#}");
    assert!(run.stderr.contains("attempt 3 of 3"), "{}", run.stderr);

    let report = s.finish();
    let creates = report.statuses("ServersController.create");
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

/// A step that fails, saying so.
const BREAKS_ON_PURPOSE: &str = "#!/bin/sh\necho 'step 2 of 3 broke on purpose' >&2\nexit 7\n";

#[test]
fn a_failing_provisioner_is_not_retried() {
    let s = Scenario::start();
    let (name, def) = s.small_definition("e2e-fail-", BREAKS_ON_PURPOSE);
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

/// The stand-in's checks are live: what breaks Nova's API is refused and recorded.
#[test]
fn the_stand_in_refuses_and_records_what_nova_would_not_accept() {
    let s = Scenario::start();
    let strict = region_cloud_with(
        s.compute,
        Retry {
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

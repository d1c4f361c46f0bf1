//! Token: a build outlives its Keystone token.

use super::*;

/// PROVISION_HOSTNAME after 25 s, past the short-token Keystone's 20 s tokens.
const SLEEPS_PAST_THE_TOKEN: &str =
    "#!/bin/sh\nset -e\nsleep 25\necho \"provisioned $(hostname)\"\n";

/// Keystone tokens last an hour and builds may take hours. Here tokens last 20 seconds (a
/// second Keystone of the harness, same users and catalog) and a step sleeps past that:
/// packer re-authenticates itself, the stand-in's snapshot upload rides on its service
/// token, and the tool's own calls after packer (verify, mark) need a renewed token.
#[test]
fn a_build_outlives_its_token() {
    let s = Scenario::start();
    let (name, def) = s.small_definition("e2e-token-", SLEEPS_PAST_THE_TOKEN);
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
    let renewals = report.statuses("ServerMetadataController.create");
    assert!(
        renewals.iter().filter(|status| **status == 200).count() >= 4
            && renewals.iter().all(|status| [200, 409].contains(status)),
        "{renewals:?}"
    );
}

//! Sweep: what a dead run leaves behind, what a live run keeps (its lease, its deadline,
//! Nova at work on its server), stuck images, and a cloud that keeps failing.

use super::*;
use common::compute::faults;

/// A live run, however old by an explicit `--older-than`, is spared while its tool renews
/// its lease: the sweep says so, and takes nothing of it.
#[test]
fn a_live_runs_lease_spares_it_from_any_sweep() {
    let s = Scenario::start();
    let mut lease = long_build_in_provisioning(&s, "e2e-lease-", &["--heartbeat", "2s"]);
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

    let (run, report) = sweep(&s, lease.def.path(), &["--older-than", "0s"]);
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

    lease.interrupt();
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
        def,
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

/// A build of `def` (whose step says `provisioning-started`, then sleeps) killed the way a
/// lost runner dies: SIGKILL to the tool and to packer's whole process group while the
/// step runs, so no cleanup of either ever runs.
fn kill_build_mid_provisioning(s: &Scenario, def: &Fixture) {
    let tmp = tempfile::tempdir().unwrap();
    kill_mid_provisioning(spawn_build_with(s, def, tmp.path(), &[], &QUIET_LEASE));
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

/// `ids_of` but for those in `foreign` (what the test made itself).
fn ids_of_ours(
    report: &common::compute::Report,
    key: &str,
    field: &str,
    foreign: &[String],
) -> Vec<String> {
    let mut ids = ids_of(report, key, field);
    ids.retain(|id| !foreign.contains(id));
    ids
}

#[test]
fn a_killed_runner_leaves_nothing_after_sweep() {
    let s = Scenario::start();
    let (name, def) = s.small_definition_with("e2e-killed-", FIP_FROM_POOL, PROVISION_FOREVER);
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
    let our_server = ids_of_ours(&left, "servers", "id", &foreign_servers);
    let our_key = ids_of_ours(&left, "keypairs", "", &foreign_keys);
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
    let second_server = ids_of_ours(&second, "servers", "id", &foreign_servers);
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
    // No lease renewal during the test: the long run's deadline alone must spare it.
    let mut long = long_build_in_provisioning(&s, "e2e-tworuns-", &QUIET_LEASE);
    let name = long.name.clone();
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
    assert!(
        long.child.try_wait().unwrap().is_none(),
        "the long build runs on"
    );

    long.interrupt();
    drop(nova);
    s.finish();
}

#[test]
fn a_stuck_image_of_ours_older_than_the_limit_is_swept_and_a_fresh_one_is_not() {
    let s = Scenario::start();
    let (name, def) = s.small_definition("e2e-stuck-", PROVISION_HOSTNAME);
    let other = s.definition_name("e2e-stuck-other-");
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
    let (_, def) = s.small_definition("e2e-sweepfail-", PROVISION_HOSTNAME);
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
    let lists = report.statuses("ServersController.detail");
    assert_eq!(lists, [500, 500, 500, 500, 500, 500, 500, 200]);
}

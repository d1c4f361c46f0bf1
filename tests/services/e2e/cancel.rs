//! Cancel: SIGINT mid-provisioning, the action's run step cancelled as GitHub's runner
//! cancels it, and the tool killed outright; each leaves nothing behind.

use super::*;

#[test]
fn sigint_mid_provisioning_cleans_up_within_ten_seconds() {
    let s = Scenario::start();
    let LongBuild {
        name,
        def: _def,
        tmp,
        mut child,
        stderr,
        mut seen,
    } = long_build_in_provisioning(&s, "e2e-sigint-", &[]);
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

/// A user's workflow cancelled: the action's run step, run and cancelled exactly as
/// GitHub's runner does (signals to the step's shell only). The tool gets the signal,
/// packer cleans up, and within the runner's 10 s nothing is left: no server, key pair
/// or floating IP, no process of the step's session, no work directory.
#[test]
fn a_cancelled_action_step_leaves_nothing_within_the_runners_ten_seconds() {
    let s = Scenario::start();
    let (name, def) = s.small_definition_with("e2e-cancel-", FIP_FROM_POOL, PROVISION_FOREVER);
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
        def,
        tmp,
        mut child,
        ..
    } = long_build_in_provisioning(&s, "e2e-kill9-", &[]);
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

//! The worker's branch moves one commit (issue 28): the worker stand-in in a git
//! repository on loopback (common::git_server), the default definition (its base image the
//! Debian 12 stand-in's) with `worker_source = git+http://127.0.0.1:PORT/worker.git@main
//! #subdirectory=src`, pinned with the real git. `plan` says build, naming the old and the
//! new commit; the built image's worker is the new commit (its install stamp); a second
//! plan without changes skips to that image.

use super::*;
use crate::common::git_server::GitServer;

#[test]
fn the_worker_branch_moves_and_the_image_holds_the_new_commit() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-pins-");
    let def = default_definition_copy(&name, BASE_IMAGE);
    let server = GitServer::start(None);
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/worker-standin");
    let old = server.commit_dir(&standin, "src", "the worker stand-in");
    let source = format!(
        "worker_source=git+{}@main#subdirectory=src",
        server.repository_url()
    );
    let service = JobService::start(&address(JOB_SERVICE_HOST));
    let config = command_mode_config(&service);
    let mut vars = s.compute.os_env();
    vars.extend(config.iter().cloned());
    vars.push((REAL_GIT.0.into(), REAL_GIT.1.into()));
    let tool = |args: &[&str]| run_tool(def.path(), args, &env_pairs(&vars));
    let plan = |previous: Option<&Path>| {
        let out = def.path().join("plan.json");
        let mut args = vec!["--var", &source, "plan", "--out", out.to_str().unwrap()];
        if let Some(previous) = previous {
            args.extend(["--previous", previous.to_str().unwrap()]);
        }
        let run = tool(&args);
        assert_eq!(run.code, 0, "{}", run.all());
        (run.stdout, record(&out))
    };

    let (_, first) = plan(None);
    assert_eq!(first["action"], "build", "{first:#}");
    assert_eq!(first["pins"][0]["pinned"], old.as_str());
    let before = def.path().join("before.json");
    std::fs::write(&before, first.to_string()).unwrap();

    // The branch moves one commit.
    let new = server.commit("the worker moves");
    let (text, moved) = plan(Some(&before));
    let arrow = format!("{} → {}", &old[..7], &new[..7]);
    assert_eq!(moved["action"], "build");
    assert!(
        moved["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("the worker's branch moved ({arrow});")),
        "{moved:#}"
    );
    assert!(text.contains(&format!("(moved: {arrow})")), "{text}");

    let t0 = Instant::now();
    let (run, rec) = build(
        &s,
        def.path(),
        &[config.clone(), vec![(REAL_GIT.0.into(), REAL_GIT.1.into())]].concat(),
        &["--var", &source],
        &["--previous", before.to_str().unwrap()],
    );
    let took = t0.elapsed();
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(rec["built"], true, "{rec:#}");
    assert_eq!(rec["fingerprint"], moved["fingerprint"]);
    assert_eq!(rec["pins"][0]["pinned"], new.as_str());
    let image_id = rec["image_id"].as_str().unwrap().to_string();

    // The image's worker is the new commit: 35-worker.sh's stamp says what pip installed.
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    unpack_image(&s.cloud, &image_id, &root);
    let stamp = std::fs::read_to_string(root.join("opt/uworker/installed-source")).unwrap();
    assert_eq!(
        stamp.trim(),
        format!(
            "requirement git+{}@{new}#subdirectory=src",
            server.repository_url()
        )
    );
    assert!(root.join("opt/uworker/venv/bin/uworker").exists());
    // pip fetched that commit from the server (git's smart HTTP upload-pack).
    assert!(server
        .requests()
        .iter()
        .any(|r| r.target.ends_with("/git-upload-pack")));

    // Nothing changed: plan skips to the new image.
    let (_, again) = plan(None);
    assert_eq!(again["action"], "skip", "{again:#}");
    assert_eq!(again["image_id"], image_id.as_str());
    eprintln!("e2e pins: build {took:?}");
    s.finish();
}

//! The image lifecycle against the real Keystone and Glance: images uploaded with the
//! properties a build leaves (`uworker_status` candidate, verified, failed, or none from
//! before the lifecycle), then `rollback`, `promote`, `plan` and `prune` as users run
//! them, and the current image read back with the consumers' own Glance query (the one
//! the README documents), never with the tool's code.

use crate::common;

use common::openstack::*;
use common::*;
use reqwest::Method;
use serde_json::Value;
use uworker_image::openstack::client::Cloud;
use uworker_image::openstack::glance::{Glance, Image};

fn definition(name: &str) -> Fixture {
    let f = Fixture::new(&format!(
        "name = \"{name}\"\n[target.t]\nsource_image = \"base-id\"\nflavor = \"f\"\n\
         [[provision]]\nscript = \"s.sh\"\n"
    ));
    f.script("s.sh", "#!/bin/sh\necho hi\n");
    f
}

fn json(r: &Run) -> Value {
    assert_eq!(r.code, 0, "{}", r.all());
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// The definition's fingerprint, as `plan` finds it.
fn fingerprint_of(f: &Fixture, vars: &[(&str, &str)]) -> String {
    json(&run_tool(f.path(), &["--output", "json", "plan"], vars))["fingerprint"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An active image of the definition's target `t` as a build leaves it, with
/// `uworker_status` = `status` (None: an image from before the lifecycle). One second
/// after the previous one, so created_at orders them.
fn image(cloud: &Cloud, name: &str, n: &str, fingerprint: &str, status: Option<&str>) -> Image {
    next_second();
    let mut properties = vec![
        ("uworker_image", name),
        ("uworker_target", "t"),
        ("uworker_fingerprint", fingerprint),
    ];
    properties.extend(status.map(|s| ("uworker_status", s)));
    create_image(cloud, &format!("{name}-t-{n}"), &properties, true)
}

/// The consumers' query (README, "The image lifecycle"): the project's newest active
/// image of the definition and target with `uworker_status=verified`, one request, as
/// `openstack image list --property ... --sort created_at:desc` sends it.
fn consumers_current(cloud: &Cloud, name: &str) -> Option<String> {
    let base = cloud.endpoint("image").unwrap();
    let base = base.trim_end_matches('/').trim_end_matches("/v2");
    let owner = cloud.project_id().unwrap().to_string();
    let query = [
        ("uworker_image", name),
        ("uworker_target", "t"),
        ("uworker_status", "verified"),
        ("status", "active"),
        ("owner", owner.as_str()),
        ("sort", "created_at:desc"),
        ("limit", "1"),
    ];
    let page: Value = cloud
        .call(Method::GET, &format!("{base}/v2/images"), |r| {
            r.query(&query)
        })
        .unwrap()
        .json()
        .unwrap();
    page["images"][0]["id"].as_str().map(str::to_string)
}

/// `rollback` withdraws the current image and the previous verified one is what
/// consumers get; a second rollback with nothing verified before it is refused and
/// changes nothing; `plan` no longer counts the withdrawn image as serving its
/// fingerprint; `promote` moves current forward and back, refuses candidate, failed and
/// (without `--adopt`) status-less images.
#[test]
fn rollback_moves_the_current_image_back_and_promote_moves_it_forward() {
    let name = unique("life");
    let f = definition(&name);
    let vars = os_env("appcred");
    let vars = env_pairs(&vars);
    let fingerprint = fingerprint_of(&f, &vars);
    let cloud = cloud();
    let legacy = image(&cloud, &name, "0", "sha256:old0", None);
    let v1 = image(&cloud, &name, "1", "sha256:old1", Some("verified"));
    let v2 = image(&cloud, &name, "2", &fingerprint, Some("verified"));
    let failed = image(&cloud, &name, "3", "sha256:new3", Some("failed"));
    let candidate = image(&cloud, &name, "4", "sha256:new4", Some("candidate"));
    assert_eq!(consumers_current(&cloud, &name).as_deref(), Some(&*v2.id));
    let plan = json(&run_tool(f.path(), &["--output", "json", "plan"], &vars));
    assert_eq!(
        (&plan["action"], &plan["image_id"]),
        (&"skip".into(), &v2.id.as_str().into())
    );

    let dry = run_tool(f.path(), &["rollback", "--dry-run"], &vars);
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout
            .contains(&format!("would withdraw:   {} {name}-t-2", v2.id))
            && dry
                .stdout
                .contains(&format!("would be current: {} {name}-t-1", v1.id)),
        "{}",
        dry.stdout
    );
    assert_eq!(
        consumers_current(&cloud, &name).as_deref(),
        Some(&*v2.id),
        "dry run"
    );

    let reason = "worker \"crashes\" at $HOME start\nsee run 42";
    // As a workflow step: the job summary, the step outputs, the actor.
    let actions = tempfile::tempdir().unwrap();
    let summary = actions.path().join("summary.md");
    let outputs = actions.path().join("outputs");
    let mut in_actions = vars.clone();
    in_actions.extend([
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_ACTOR", "octo cat"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
    ]);
    let rolled = run_tool(
        f.path(),
        &["--output", "json", "rollback", "--reason", reason],
        &in_actions,
    );
    let outcome = json(&rolled);
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.starts_with("### rollback of target `t`\n")
            && summary.contains(&format!("| withdrawn | `{}` `{name}-t-2`", v2.id))
            && summary.contains(&format!("| current now | `{}` `{name}-t-1`", v1.id))
            && summary.contains("| reason | worker \"crashes\" at $HOME start see run 42 |\n"),
        "{summary}"
    );
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    assert!(
        outputs.contains(&format!("current_image_id={}\n", v1.id))
            && outputs.contains(&format!("withdrawn_image_ids={}\n", v2.id)),
        "{outputs}"
    );
    assert_eq!(outcome["was_current"]["id"], v2.id.as_str());
    assert_eq!(outcome["withdrawn"][0]["id"], v2.id.as_str());
    assert_eq!(outcome["current"]["id"], v1.id.as_str());
    assert_eq!(outcome["reason"], reason);
    assert_eq!(consumers_current(&cloud, &name).as_deref(), Some(&*v1.id));
    let glance = Glance::new(&cloud).unwrap();
    let withdrawn = glance.get(&v2.id).unwrap();
    assert_eq!(withdrawn.property("uworker_status"), Some("withdrawn"));
    assert_eq!(withdrawn.property("uworker_withdrawn_reason"), Some(reason));
    assert_eq!(
        withdrawn.property("uworker_withdrawn_by"),
        Some("github:octo cat")
    );
    let withdrawn_at = withdrawn
        .property("uworker_withdrawn_at")
        .unwrap()
        .to_string();
    assert!(withdrawn_at.ends_with('Z'), "{withdrawn_at}");

    // The withdrawn image no longer serves its fingerprint; the same inputs are not
    // built again by themselves.
    let plan = json(&run_tool(f.path(), &["--output", "json", "plan"], &vars));
    assert_eq!(
        (&plan["action"], &plan["image_id"]),
        (&"skip".into(), &Value::Null)
    );
    assert_eq!(
        plan["reason"],
        format!(
            "image {} of this fingerprint was withdrawn (rolled back) on {withdrawn_at}: a \
             rebuild needs a changed input or --force",
            v2.id
        )
    );
    let forced = json(&run_tool(
        f.path(),
        &["--output", "json", "plan", "--force"],
        &vars,
    ));
    assert_eq!(forced["action"], "build");

    // Nothing verified before v1: refused, and nothing changes.
    let again = run_tool(f.path(), &["rollback"], &vars);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(
        again.stderr.contains(&format!(
            "image {} is the only verified image of target `t`: a rollback has no previous \
             verified image to return to",
            v1.id
        )),
        "{}",
        again.stderr
    );
    assert_eq!(consumers_current(&cloud, &name).as_deref(), Some(&*v1.id));

    // A secret's value as the reason is refused before anything changes, and not shown.
    let secret = vars
        .iter()
        .find(|(k, _)| *k == "OS_APPLICATION_CREDENTIAL_SECRET")
        .unwrap()
        .1;
    let leaky = run_tool(f.path(), &["promote", &v2.id, "--reason", secret], &vars);
    assert_eq!(leaky.code, 2, "{}", leaky.all());
    assert!(!leaky.all().contains(secret), "{}", leaky.all());
    assert_eq!(consumers_current(&cloud, &name).as_deref(), Some(&*v1.id));

    // Promote does not skip verification, nor adopt an image by itself.
    for (id, says) in [
        (
            &failed.id,
            "is `failed`: promote does not skip verification",
        ),
        (
            &candidate.id,
            "is `candidate`: promote does not skip verification",
        ),
        (&legacy.id, "`promote --adopt` makes it current anyway"),
        (
            &"no-such-image".to_string(),
            "no image `no-such-image` of target `t`",
        ),
    ] {
        let r = run_tool(f.path(), &["promote", id], &vars);
        assert_eq!(r.code, 2, "{}", r.all());
        assert!(r.stderr.contains(says), "{}", r.stderr);
    }
    assert_eq!(consumers_current(&cloud, &name).as_deref(), Some(&*v1.id));

    // The withdrawn image, by its name, is current again and serves its fingerprint.
    let promoted = json(&run_tool(
        f.path(),
        &["--output", "json", "promote", &format!("{name}-t-2")],
        &vars,
    ));
    assert_eq!(promoted["was_current"]["id"], v1.id.as_str());
    assert_eq!(promoted["current"]["id"], v2.id.as_str());
    assert_eq!(promoted["withdrawn"], serde_json::json!([]));
    assert_eq!(consumers_current(&cloud, &name).as_deref(), Some(&*v2.id));
    let plan = json(&run_tool(f.path(), &["--output", "json", "plan"], &vars));
    assert_eq!(
        (&plan["action"], &plan["image_id"]),
        (&"skip".into(), &v2.id.as_str().into())
    );

    // An image from before the lifecycle, adopted: every newer verified image goes.
    let adopted = run_tool(f.path(), &["promote", &legacy.id, "--adopt"], &vars);
    assert_eq!(adopted.code, 0, "{}", adopted.all());
    assert!(
        adopted
            .stdout
            .contains(&format!("withdrawn:        {} ", v1.id))
            && adopted
                .stdout
                .contains(&format!("withdrawn:        {} ", v2.id))
            && adopted
                .stdout
                .contains(&format!("current now:      {} ", legacy.id)),
        "{}",
        adopted.stdout
    );
    assert_eq!(
        consumers_current(&cloud, &name).as_deref(),
        Some(&*legacy.id)
    );
    assert_eq!(
        glance
            .get(&v1.id)
            .unwrap()
            .property("uworker_withdrawn_reason"),
        Some(format!("superseded by the promotion of {}", legacy.id).as_str())
    );
    for image in [legacy, v1, v2, failed, candidate] {
        glance.delete(&image.id).unwrap();
    }
}

/// A candidate (its run died before verifying it) does not serve: the fingerprint is
/// built again. A failed one holds its fingerprint as a withdrawn one does.
#[test]
fn plan_builds_over_a_candidate_and_holds_a_failed_fingerprint() {
    let name = unique("life-plan");
    let f = definition(&name);
    let vars = os_env("appcred");
    let vars = env_pairs(&vars);
    let fingerprint = fingerprint_of(&f, &vars);
    let cloud = cloud();
    let candidate = image(&cloud, &name, "0", &fingerprint, Some("candidate"));
    let plan = json(&run_tool(f.path(), &["--output", "json", "plan"], &vars));
    assert_eq!(plan["action"], "build");
    assert_eq!(
        plan["reason"],
        format!(
            "image {} of this fingerprint is `candidate`, never verified (a run that ended \
             before its verification): a build is planned",
            candidate.id
        )
    );
    let failed = image(&cloud, &name, "1", &fingerprint, Some("failed"));
    let r = run_tool(f.path(), &["plan"], &vars);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("action:      skip\n")
            && r.stdout.contains(&format!(
                "image {} of this fingerprint failed its verification: a rebuild needs a \
                 changed input or --force",
                failed.id
            ))
            && !r.stdout.contains("image:"),
        "{}",
        r.stdout
    );
    let glance = Glance::new(&cloud).unwrap();
    for image in [candidate, failed] {
        glance.delete(&image.id).unwrap();
    }
}

/// Whatever `--keep` says, prune keeps the current image and the one a rollback would
/// return to, even when newer failed, withdrawn, candidate and older images fill the
/// count; a third verified image goes like any other.
#[test]
fn prune_keeps_the_current_image_and_the_rollback_target() {
    let name = unique("life-prune");
    let f = definition(&name);
    let vars = os_env("appcred");
    let vars = env_pairs(&vars);
    let cloud = cloud();
    let mut ids = Vec::new();
    for (n, status) in [
        ("1", Some("verified")),
        ("2", Some("verified")),
        ("3", Some("verified")),
        ("4", Some("withdrawn")),
        ("5", Some("failed")),
        ("6", Some("candidate")),
        ("7", None),
    ] {
        ids.push(image(&cloud, &name, n, &format!("sha256:old{n}"), status).id);
    }
    let decisions = json(&run_tool(
        f.path(),
        &["--output", "json", "prune", "--keep", "0"],
        &vars,
    ));
    let reason = |id: &str| {
        decisions
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .map(|d| {
                (
                    d["delete"].as_bool().unwrap(),
                    d["reason"].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(
        reason(&ids[2]),
        (
            false,
            "the target's current image (its newest verified)".into()
        )
    );
    assert_eq!(
        reason(&ids[1]),
        (
            false,
            "the image a rollback returns to (the target's second newest verified)".into()
        )
    );
    let glance = Glance::new(&cloud).unwrap();
    let kept: Vec<&String> = ids.iter().filter(|id| glance.get(id).is_ok()).collect();
    assert_eq!(kept, [&ids[1], &ids[2]], "{decisions:#}");
    assert_eq!(consumers_current(&cloud, &name).as_deref(), Some(&*ids[2]));
    // Rolled back, the target still has a current image after the next prune.
    let r = run_tool(f.path(), &["rollback"], &vars);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = run_tool(f.path(), &["prune", "--keep", "0"], &vars);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(consumers_current(&cloud, &name).as_deref(), Some(&*ids[1]));
    for id in &ids[1..3] {
        let _ = glance.delete(id);
    }
}

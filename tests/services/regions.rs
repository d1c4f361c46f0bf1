//! Two regions of one cloud: the suite's Keystone with the first Glance and Compute
//! stand-in in the e2e region, and a second Glance and stand-in in RegionTwo
//! (`openstack.sh start-second-region`). A definition's target `one` names no region (it
//! is in OS_REGION_NAME's), target `two` names RegionTwo: every call for each goes to its
//! own region's services, packer's included.

use crate::common;
use crate::e2e::{
    assert_built, build, delete_images_in, ensure_base_images, images_in, plain_config, record,
    region_cloud, sweep, swept, Scenario, BASE_IMAGE, PROVISION_HOSTNAME,
};

use std::path::Path;
use std::time::Duration;

use common::compute::{second_compute, Compute, REGION_TWO};
use common::openstack::{create_image, env_pairs};
use common::*;
use uworker_image::openstack::client::Cloud;
use uworker_image::openstack::glance::{Glance, Image};

/// An e2e scenario with the second region beside it; the images of its definitions go
/// from both regions when it ends.
struct TwoRegions {
    s: Scenario,
    two: &'static Compute,
    cloud_two: Cloud,
}

impl TwoRegions {
    fn start() -> TwoRegions {
        let s = Scenario::start();
        let two = second_compute();
        two.reset();
        let cloud_two = region_cloud(two);
        ensure_base_images(&cloud_two);
        TwoRegions { s, two, cloud_two }
    }

    /// A new definition of this scenario (`two_region_definition`): its name and fixture.
    fn definition(&self, prefix: &str) -> (String, Fixture) {
        let name = self.s.definition_name(prefix);
        let def = two_region_definition(&name);
        (name, def)
    }

    /// Images of definition `name` in the first region's Glance and the second's.
    fn images(&self, name: &str) -> (Vec<Image>, Vec<Image>) {
        (self.s.images(name), images_in(&self.cloud_two, name))
    }

    fn finish(&self) {
        self.s.finish();
        self.two
            .settled_report(Duration::from_secs(30))
            .assert_clean();
    }
}

impl Drop for TwoRegions {
    fn drop(&mut self) {
        for name in self.s.definitions.borrow().iter() {
            delete_images_in(&self.cloud_two, name);
        }
    }
}

/// Target `one` in the environment's region, target `two` in RegionTwo: the same base
/// image name and step.
fn two_region_definition(name: &str) -> Fixture {
    let target = |target: &str, keys: &str| {
        format!(
            "[target.{target}]\n\
             source_image_name = \"{BASE_IMAGE}\"\n\
             flavor = \"c1.small\"\n\
             ssh_username = \"ubuntu\"\n\
             {keys}\n"
        )
    };
    let f = Fixture::new(&format!(
        // Not generalized: no verification (tests/services/e2e/verify.rs verifies).
        "name = \"{name}\"\n{}{}[[provision]]\nscript = \"step.sh\"\n[verify]\nenabled = false\n",
        target("one", ""),
        target("two", &format!("region = \"{REGION_TWO}\"")),
    ));
    f.script("step.sh", PROVISION_HOSTNAME);
    f
}

/// `--output json plan --target TARGET` in the first region's environment.
fn plan(s: &Scenario, def: &Path, target: &str) -> serde_json::Value {
    let vars = s.compute.os_env();
    let run = run_tool(
        def,
        &["--target", target, "--output", "json", "plan"],
        &env_pairs(&vars),
    );
    assert_eq!(run.code, 0, "{}", run.all());
    serde_json::from_str(&run.stdout).unwrap()
}

/// The image of `name` with these marks, active, as a build leaves it.
fn image_of(cloud: &Cloud, name: &str, definition: &str, target: &str, fingerprint: &str) -> Image {
    let marks = [
        ("uworker_image", definition),
        ("uworker_target", target),
        ("uworker_fingerprint", fingerprint),
    ];
    create_image(cloud, name, &marks, true)
}

fn ids(images: &[Image]) -> Vec<&str> {
    images.iter().map(|i| i.id.as_str()).collect()
}

#[test]
fn plan_prune_and_sweep_go_to_each_targets_region() {
    let t = TwoRegions::start();
    let (name, def) = t.definition("regions-glance-");
    let base_in = |cloud: &Cloud| {
        let found = Glance::new(cloud)
            .unwrap()
            .active_named(BASE_IMAGE)
            .unwrap();
        assert_eq!(found.len(), 1, "one base image of the name: {found:?}");
        found[0].id.clone()
    };
    let (base_one, base_two) = (base_in(&t.s.cloud), base_in(&t.cloud_two));
    assert_ne!(base_one, base_two);

    // Each target's base image is its own region's, and neither has an image yet.
    let plan_one = plan(&t.s, def.path(), "one");
    let plan_two = plan(&t.s, def.path(), "two");
    assert_eq!(
        plan_one["manifest"]["base_image"]["resolved_id"],
        base_one.as_str()
    );
    assert_eq!(
        plan_two["manifest"]["base_image"]["resolved_id"],
        base_two.as_str(),
        "{plan_two:#}"
    );
    assert_eq!(plan_two["action"], "build", "{plan_two:#}");
    let fingerprint = |plan: &serde_json::Value| plan["fingerprint"].as_str().unwrap().to_string();
    let (fp_one, fp_two) = (fingerprint(&plan_one), fingerprint(&plan_two));

    // Each target's image in its own region: both plans find theirs.
    let current_one = image_of(&t.s.cloud, &format!("{name}-one-a"), &name, "one", &fp_one);
    let current_two = image_of(
        &t.cloud_two,
        &format!("{name}-two-a"),
        &name,
        "two",
        &fp_two,
    );
    for (target, image) in [("one", &current_one), ("two", &current_two)] {
        let again = plan(&t.s, def.path(), target);
        assert_eq!(again["action"], "skip", "{target}: {again:#}");
        assert_eq!(again["image_id"], image.id.as_str(), "{target}: {again:#}");
    }

    // prune: an older image of each target, each in its region, goes; the current stay.
    let old_one = image_of(
        &t.s.cloud,
        &format!("{name}-one-old"),
        &name,
        "one",
        "sha256:00",
    );
    let old_two = image_of(
        &t.cloud_two,
        &format!("{name}-two-old"),
        &name,
        "two",
        "sha256:00",
    );
    let vars = t.s.compute.os_env();
    let prune = run_tool(
        def.path(),
        &["--output", "json", "prune", "--keep", "0"],
        &env_pairs(&vars),
    );
    assert_eq!(prune.code, 0, "{}", prune.all());
    let decisions: serde_json::Value = serde_json::from_str(&prune.stdout).unwrap();
    let mut deleted: Vec<&str> = decisions
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["delete"] == true)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    deleted.sort();
    let mut expected = vec![old_one.id.as_str(), old_two.id.as_str()];
    expected.sort();
    assert_eq!(deleted, expected, "{decisions:#}");
    let (left_one, left_two) = t.images(&name);
    assert_eq!(ids(&left_one), [current_one.id.as_str()]);
    assert_eq!(ids(&left_two), [current_two.id.as_str()]);

    // sweep: a stuck (queued) image of ours in each region, older than the limit, goes.
    let marks = |target| [("uworker_image", name.as_str()), ("uworker_target", target)];
    let stuck_one = create_image(
        &t.s.cloud,
        &format!("{name}-one-stuck"),
        &marks("one"),
        false,
    );
    let stuck_two = create_image(
        &t.cloud_two,
        &format!("{name}-two-stuck"),
        &marks("two"),
        false,
    );
    assert_eq!(stuck_two.status, "queued");
    std::thread::sleep(Duration::from_secs(2));
    let (run, report) = sweep(&t.s, def.path(), &["--older-than", "1s"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mut expected = vec![
        (
            "image".to_string(),
            stuck_one.id.clone(),
            "delete".to_string(),
        ),
        (
            "image".to_string(),
            stuck_two.id.clone(),
            "delete".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(swept(&report), expected, "{report:#}");
    let place_of = |id: &str| {
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["place"].clone())
            .unwrap()
    };
    assert_eq!(
        place_of(&stuck_two.id),
        format!("region {REGION_TWO}").as_str()
    );
    assert!(place_of(&stuck_one.id).is_null(), "{report:#}");
    let (left_one, left_two) = t.images(&name);
    assert_eq!(ids(&left_one), [current_one.id.as_str()]);
    assert_eq!(ids(&left_two), [current_two.id.as_str()]);
    t.finish();
}

#[test]
fn two_targets_build_in_their_own_regions_and_a_second_plan_skips_both() {
    let t = TwoRegions::start();
    let (name, def) = t.definition("regions-build-");
    let config = plain_config();
    let mut built = Vec::new();
    for target in ["one", "two"] {
        let (run, rec) = build(&t.s, def.path(), &config, &["--target", target], &[]);
        assert_built(&run, &rec);
        built.push(rec["image_id"].as_str().unwrap().to_string());
    }
    // Each server was the target's region's stand-in's.
    let creates = |compute: &Compute| compute.report().calls("ServersController.create").len();
    assert_eq!((creates(t.s.compute), creates(t.two)), (1, 1));

    // Each image is in its own region's Glance only, marked there.
    let (in_one, in_two) = t.images(&name);
    assert_eq!(ids(&in_one), [built[0].as_str()]);
    assert_eq!(ids(&in_two), [built[1].as_str()]);
    let fingerprint_of = |target: &str| plan(&t.s, def.path(), target)["fingerprint"].clone();
    for (image, target) in [(&in_one[0], "one"), (&in_two[0], "two")] {
        assert_eq!(image.property("uworker_target"), Some(target));
        // `[verify] enabled = false`: the definition vouches for it, so it serves and is current.
        assert_eq!(image.property("uworker_status"), Some("verified"));
        assert_eq!(image.property("uworker_verification"), Some("disabled"));
        assert_eq!(
            Some(image.property("uworker_fingerprint").unwrap()),
            fingerprint_of(target).as_str()
        );
        assert!(
            image.tags.iter().any(|t| t.starts_with("uworker-")),
            "{image:?}"
        );
    }

    // A second plan finds both, each in its region; a second build skips.
    for (target, id) in [("one", &built[0]), ("two", &built[1])] {
        let again = plan(&t.s, def.path(), target);
        assert_eq!(again["action"], "skip", "{target}: {again:#}");
        assert_eq!(again["image_id"], id.as_str());
    }
    let (run, _) = build(&t.s, def.path(), &config, &["--target", "two"], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let rec = record(&def.path().join("record.json"));
    assert_eq!(rec["action"], "skip", "{rec:#}");
    t.finish();
}

#[test]
fn a_region_sweep_cannot_list_is_reported_and_the_other_is_still_swept() {
    let t = TwoRegions::start();
    let (name, def) = t.definition("regions-sweepfail-");
    let marks = [("uworker_image", name.as_str()), ("uworker_target", "one")];
    let stuck = create_image(&t.s.cloud, &format!("{name}-one-stuck"), &marks, false);
    std::thread::sleep(Duration::from_secs(2));
    // The client tries 4 times: RegionTwo's Compute fails every one.
    t.two.inject(common::compute::faults(&[("list_500", 4)]));
    let (run, report) = sweep(&t.s, def.path(), &["--older-than", "1s"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert_eq!(
        swept(&report),
        [("image".to_string(), stuck.id.clone(), "delete".to_string())],
        "{report:#}"
    );
    assert_eq!(report["items"][0]["result"], "done", "{report:#}");
    let unswept = report["unswept"][0].as_str().unwrap_or_default();
    assert!(
        unswept.starts_with(&format!("region {REGION_TWO}: "))
            && unswept.contains("HTTP 500, still after 4 attempts"),
        "{report:#}"
    );
    assert!(
        t.images(&name).0.is_empty(),
        "the first region's stuck image went"
    );
    t.finish();
}

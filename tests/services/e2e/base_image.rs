//! The base image: a name several images share is refused unless `trusted_base_owners`
//! picks one.

use super::*;

/// Base images made for one test, deleted when it ends, passed or failed.
struct TempImages<'a> {
    cloud: &'a Cloud,
    ids: Vec<String>,
}

impl Drop for TempImages<'_> {
    fn drop(&mut self) {
        let glance = Glance::new(self.cloud).unwrap();
        for id in &self.ids {
            let deleted = glance.delete(id);
            assert!(deleted.is_ok() || std::thread::panicking(), "{deleted:?}");
        }
    }
}

/// A base image name that several images share, one of them someone else's public
/// image newer than ours (as anyone on a shared cloud can upload): the tool takes none of
/// them by itself, as packer would not, and names each; `trusted_base_owners` narrowed to
/// our project picks ours, which packer then gets by ID.
#[test]
fn a_base_image_name_several_images_share_is_refused_unless_trusted_owners_pick_one() {
    let s = Scenario::start();
    let name = s.definition_name("e2e-twins-");
    let base = unique("Debian 12 twin ");
    let properties = [("os_distro", "debian"), ("os_version", "12")];
    let ours = common::openstack::create_image(&s.cloud, &base, &properties, true);
    let _ours = TempImages {
        cloud: &s.cloud,
        ids: vec![ours.id.clone()],
    };
    std::thread::sleep(Duration::from_millis(1100)); // Glance's created_at has seconds
    let admin = common::openstack::connect(&common::openstack::admin_env());
    let public = [
        ("visibility", "public"),
        ("os_distro", "debian"),
        ("os_version", "12"),
    ];
    let theirs = common::openstack::create_image(&admin, &base, &public, true);
    let _theirs = TempImages {
        cloud: &admin,
        ids: vec![theirs.id.clone()],
    };
    let our_project = s.cloud.project_id().unwrap().to_string();
    let definition = |target_keys: &str| {
        let def = small_definition_with(&name, target_keys, PROVISION_HOSTNAME);
        let toml = def.path().join("image.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(&toml, text.replace(BASE_IMAGE, &base)).unwrap();
        def
    };

    let def = definition("");
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &["--attempts", "1"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(rec, serde_json::Value::Null, "no build record");
    for (image, owner) in [
        (&ours, &our_project),
        (&theirs, theirs.owner.as_ref().unwrap()),
    ] {
        let named = format!("{} (owner {owner}, ", image.id);
        assert!(run.stderr.contains(&named), "{named}: {}", run.stderr);
    }
    assert!(
        run.stderr
            .contains(&format!("2 active images are named `{base}`"))
            && run.stderr.contains("trusted_base_owners"),
        "{}",
        run.stderr
    );
    assert!(
        s.compute
            .report()
            .calls("ServersController.create")
            .is_empty(),
        "no server booted"
    );

    let def = definition(&format!("trusted_base_owners = [\"{our_project}\"]"));
    let (run, rec) = build(&s, def.path(), &plain_config(), &[], &["--attempts", "1"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(rec["built"], true, "{rec:#}");
    assert_eq!(
        rec["manifest"]["base_image"]["resolved_id"], ours.id,
        "{rec:#}"
    );
    s.finish();
}

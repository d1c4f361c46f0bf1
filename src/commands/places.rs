//! Where each target's calls go: the cloud (a clouds.yaml entry, or the environment's
//! own) and the region it names. One login per cloud, opened on first use; each region
//! a view of it that picks that region's endpoints (one Keystone serves every region of
//! a cloud, so the token is shared).

use std::cell::OnceCell;
use std::collections::BTreeMap;

use anyhow::Result;

use crate::definition::{Definition, Target};
use crate::env::Env;
use crate::http::retry::Retry;
use crate::openstack::client::{Cloud, OpenStackError};
use crate::openstack::clouds::{self, NamedBy};
use crate::openstack::credentials::Credentials;

/// A target's cloud and region.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// A clouds.yaml entry; None: the environment's cloud (OS_* variables, OS_CLOUD).
    pub cloud: Option<String>,
    /// None: the cloud's own (OS_REGION_NAME, the entry's `region_name`).
    pub region: Option<String>,
}

impl Place {
    /// `target`'s place. A target naming OS_CLOUD's own cloud is in the environment's
    /// cloud, whose OS_* variables (a password kept in CI, say) apply to it.
    pub fn of(target: &Target, env_cloud: Option<&str>) -> Place {
        Place {
            cloud: target
                .cloud
                .clone()
                .filter(|cloud| Some(cloud.as_str()) != env_cloud),
            region: target.region.clone(),
        }
    }

    /// `cloud smog, region RegionTwo`, for messages; None for the environment's cloud in
    /// its own region.
    pub fn label(&self) -> Option<String> {
        let parts: Vec<String> = [
            self.cloud.as_ref().map(|c| format!("cloud {c}")),
            self.region.as_ref().map(|r| format!("region {r}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// One cloud's settings: its credentials and what packer gets for it.
pub struct Account {
    /// None: no credentials; Err: why the set there is unusable.
    pub credentials: Result<Option<Credentials>, String>,
    /// The variables packer gets for this cloud, and inherited ones it must not see.
    pub packer_env: Vec<(String, String)>,
    pub packer_remove: Vec<&'static str>,
    /// Packer sees none of the tool's own OS_* variables (they are another cloud's).
    pub packer_own_env: bool,
    login: OnceCell<Option<Cloud>>,
}

impl Account {
    /// The environment's cloud: packer inherits its OS_* variables, with `packer_env` on top.
    pub fn environment(
        credentials: Result<Option<Credentials>, String>,
        packer_env: Vec<(String, String)>,
        packer_remove: Vec<&'static str>,
    ) -> Account {
        Account {
            credentials,
            packer_env,
            packer_remove,
            packer_own_env: false,
            login: OnceCell::new(),
        }
    }

    /// A clouds.yaml entry a target names: packer gets its variables and no others.
    fn named(
        credentials: Result<Option<Credentials>, String>,
        packer_env: Vec<(String, String)>,
    ) -> Account {
        Account {
            credentials,
            packer_env,
            packer_remove: Vec::new(),
            packer_own_env: true,
            login: OnceCell::new(),
        }
    }
}

/// The clouds and regions of one definition's targets.
pub struct Places {
    env_cloud: Option<String>,
    /// By cloud: None is the environment's.
    accounts: BTreeMap<Option<String>, Account>,
    views: BTreeMap<Place, OnceCell<Option<Cloud>>>,
}

impl Places {
    /// Every target's cloud read (from clouds.yaml and secure.yaml) now, so a cloud that is
    /// not there is bad input at once; `environment` is the environment's cloud.
    pub fn load(definition: &Definition, env: &Env, environment: Account) -> Result<Places> {
        let env_cloud = env.get("OS_CLOUD").map(str::to_string);
        let mut accounts = BTreeMap::from([(None, environment)]);
        let mut views = BTreeMap::from([(Place::default(), OnceCell::new())]);
        for target in definition.targets.values() {
            let place = Place::of(target, env_cloud.as_deref());
            if let Some(cloud) = &place.cloud {
                if !accounts.contains_key(&place.cloud) {
                    let origin =
                        format!("{} [target.{}]", definition.path().display(), target.name);
                    let named_by = NamedBy::target(&origin, cloud);
                    let account = named_account(env, cloud, named_by)?;
                    accounts.insert(place.cloud.clone(), account);
                }
            }
            views.entry(place).or_default();
        }
        Ok(Places {
            env_cloud,
            accounts,
            views,
        })
    }

    /// The secret values of the clouds targets name (the environment's are the redactor's
    /// already).
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.accounts
            .values()
            .filter(|account| account.packer_own_env)
            .flat_map(|account| &account.packer_env)
            .filter(|(key, _)| crate::secrets::SECRET_ENV.contains(&key.as_str()))
            .map(|(_, value)| value.as_str())
    }

    pub fn place(&self, target: &Target) -> Place {
        Place::of(target, self.env_cloud.as_deref())
    }

    /// The distinct places of `targets`, each with its targets, in order.
    pub fn group<'a>(&self, targets: &[&'a Target]) -> BTreeMap<Place, Vec<&'a Target>> {
        let mut groups: BTreeMap<Place, Vec<&'a Target>> = BTreeMap::new();
        for target in targets {
            groups.entry(self.place(target)).or_default().push(target);
        }
        groups
    }

    pub fn account(&self, place: &Place) -> &Account {
        &self.accounts[&place.cloud]
    }

    /// The session of `place`, logged in on first use; None without credentials.
    pub fn cloud(&self, place: &Place) -> Result<Option<&Cloud>, OpenStackError> {
        let view = self
            .views
            .get(place)
            .expect("every target's place is known from the start");
        if let Some(cloud) = view.get() {
            return Ok(cloud.as_ref());
        }
        let cloud = self
            .login(place)?
            .map(|login| login.in_region(place.region.as_deref()));
        Ok(view.get_or_init(|| cloud).as_ref())
    }

    fn login(&self, place: &Place) -> Result<Option<&Cloud>, OpenStackError> {
        let account = self.account(place);
        if let Some(login) = account.login.get() {
            return Ok(login.as_ref());
        }
        let login = match &account.credentials {
            Ok(None) => None,
            Ok(Some(credentials)) => Some(Cloud::connect(credentials, Retry::default())?),
            Err(why) => return Err(OpenStackError::Config(why.clone())),
        };
        Ok(account.login.get_or_init(|| login).as_ref())
    }
}

/// A target's named cloud: its entry alone, for the tool and for packer.
fn named_account(env: &Env, cloud: &str, named_by: NamedBy) -> Result<Account> {
    let resolved = clouds::resolve_entry(env, cloud, named_by.clone())?;
    let credentials = match Credentials::from_env(&resolved.env) {
        Ok(Some(credentials)) => Ok(Some(credentials)),
        // The entry resolved, so OS_CLOUD is set: detect never finds nothing.
        Ok(None) | Err(_) => Err(format!(
            "{}: its clouds.yaml entry (with secure.yaml) has no complete login: it needs auth.auth_url and either username + password or application_credential_id (or _name) + application_credential_secret",
            named_by.name
        )),
    };
    Ok(Account::named(credentials, resolved.from_entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn definition(text: &str) -> Definition {
        let dir = std::path::Path::new("/defs");
        Definition::parse(text, dir, &dir.join("image.toml")).unwrap()
    }

    fn target(cloud: Option<&str>, region: Option<&str>) -> Target {
        let text = "name = \"x\"\n[target.a]\nsource_image = \"i\"\nflavor = \"f\"\n";
        let mut target = definition(text).targets.remove("a").unwrap();
        target.cloud = cloud.map(str::to_string);
        target.region = region.map(str::to_string);
        target
    }

    #[test]
    fn a_target_naming_os_clouds_own_cloud_is_in_the_environments_cloud() {
        let place = Place::of(&target(Some("smog"), Some("east")), Some("smog"));
        assert_eq!(place.cloud, None);
        assert_eq!(place.region.as_deref(), Some("east"));
        let place = Place::of(&target(Some("other"), None), Some("smog"));
        assert_eq!(place.cloud.as_deref(), Some("other"));
        assert_eq!(Place::of(&target(None, None), None), Place::default());
    }

    #[test]
    fn a_place_is_labelled_by_what_the_target_names() {
        assert_eq!(Place::default().label(), None);
        let place = Place::of(&target(Some("c"), Some("r")), None);
        assert_eq!(place.label().as_deref(), Some("cloud c, region r"));
        let place = Place::of(&target(None, Some("r")), None);
        assert_eq!(place.label().as_deref(), Some("region r"));
    }
}

/// Each target's calls against loopback Keystones whose catalogs hold an image service in
/// two regions, each region's Glance a server of its own: which one a call reaches is
/// what the tests assert (the service tier proves the same against the real ones).
#[cfg(test)]
mod session_tests {
    use super::super::plan;
    use super::super::session::Session;
    use crate::env::Env;
    use crate::exit::{Code, Coded as _};
    use crate::loopback::{Answer, Request, Server};
    use crate::request::Load;

    const SECRET: &str = "pa$$ \"w o\"\nrd";

    /// A Glance that knows one base image `base` (its ID: `id`) and no image of ours.
    fn glance(id: &'static str) -> Server {
        Server::start("127.0.0.1", move |request| {
            let images = if request.path.contains("name=base") {
                serde_json::json!([{"id": id, "name": "base", "status": "active",
                    "created_at": "2026-01-01T00:00:00Z", "owner": "someone"}])
            } else {
                serde_json::json!([])
            };
            Answer::new(200, &serde_json::json!({ "images": images }).to_string())
                .header("Content-Type", "application/json")
        })
    }

    /// A Keystone whose catalog has `image` in RegionA and RegionB.
    fn keystone(region_a: &Server, region_b: &Server) -> Server {
        let endpoint = |region: &str, url: &str| serde_json::json!({"interface": "public", "region_id": region, "region": region, "url": url});
        let body = serde_json::json!({"token": {
            "project": {"id": "project-1"},
            "catalog": [{"type": "image", "endpoints": [
                endpoint("RegionA", &region_a.url),
                endpoint("RegionB", &region_b.url),
            ]}],
        }})
        .to_string();
        Server::start("127.0.0.1", move |_| {
            Answer::new(201, &body)
                .header("X-Subject-Token", "tok")
                .header("Content-Type", "application/json")
        })
    }

    fn image_calls(server: &Server) -> Vec<Request> {
        server
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v2/images"))
            .collect()
    }

    /// A definition of one target `a` with these extra keys, loaded with the packer
    /// stand-in and `env`.
    fn session(
        dir: &std::path::Path,
        target_keys: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Session> {
        std::fs::write(
            dir.join("image.toml"),
            format!("name = \"img\"\n[target.a]\nsource_image_name = \"base\"\nflavor = \"f\"\n{target_keys}\n[worker]\nrequired = []\n"),
        )
        .unwrap();
        let load = Load {
            dir: dir.to_path_buf(),
            inputs: Default::default(),
            openrc: None,
            packer: Some(
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/packer-1.6.6").into(),
            ),
            max_age: None,
            quiet: true,
        };
        let env = Env::from_pairs(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Session::load(&load, &env)
    }

    fn password_env(keystone: &Server) -> Vec<(&'static str, String)> {
        vec![
            ("OS_AUTH_URL", format!("{}/v3", keystone.url)),
            ("OS_USERNAME", "ci".into()),
            ("OS_PASSWORD", SECRET.into()),
            ("OS_PROJECT_NAME", "p".into()),
            ("OS_REGION_NAME", "RegionA".into()),
        ]
    }

    #[test]
    fn plan_looks_in_the_targets_region_not_os_region_name() {
        let (a, b) = (glance("base-in-a"), glance("base-in-b"));
        let keystone = keystone(&a, &b);
        let dir = tempfile::tempdir().unwrap();
        let session =
            session(dir.path(), "region = \"RegionB\"", &password_env(&keystone)).unwrap();
        let target = session.target(None).unwrap();
        let record = plan::compute(&session, target, false, None).unwrap();
        assert_eq!(
            record.manifest.base_image.resolved_id.as_deref(),
            Some("base-in-b"),
            "the base image is RegionB's"
        );
        assert!(
            image_calls(&a).is_empty(),
            "RegionA's Glance: {:?}",
            image_calls(&a)
        );
        let calls = image_calls(&b);
        assert!(
            calls
                .iter()
                .any(|r| r.path.contains("uworker_fingerprint=")),
            "the lookup went to RegionB's Glance: {calls:?}"
        );
    }

    #[test]
    fn a_copy_plans_its_sources_fingerprint_in_its_own_region() {
        let (a, b) = (glance("base-in-a"), glance("base-in-b"));
        let keystone = keystone(&a, &b);
        let dir = tempfile::tempdir().unwrap();
        // Target a in OS_REGION_NAME's RegionA; b its copy in RegionB.
        let copy = "\n[target.b]\ncopy_of = \"a\"\nregion = \"RegionB\"";
        let session = session(dir.path(), copy, &password_env(&keystone)).unwrap();
        let source = session.target(Some("a")).unwrap();
        let target = session.target(Some("b")).unwrap();
        let of_source = plan::compute(&session, source, false, None).unwrap();
        let before = image_calls(&b).len();
        let of_copy = plan::compute(&session, target, false, None).unwrap();
        // The source's build: its base image of RegionA, its fingerprint.
        assert_eq!(of_copy.fingerprint, of_source.fingerprint);
        assert_eq!(
            of_copy.manifest.base_image.resolved_id.as_deref(),
            Some("base-in-a")
        );
        assert_eq!(
            session.fingerprint(target).unwrap().fingerprint,
            of_source.fingerprint,
            "what prune keeps for the copy"
        );
        // Looked up in the copy's region, under the copy's name.
        let calls = image_calls(&b);
        assert!(
            calls[before..].iter().any(|r| r.path.contains(&format!(
                "uworker_fingerprint={}",
                of_source.fingerprint.as_str().replace(':', "%3A")
            ))),
            "{calls:?}"
        );
        assert_eq!(of_copy.target, "b");
        assert!(
            of_copy.reason.contains("copies target `a`"),
            "{}",
            of_copy.reason
        );
    }

    #[test]
    fn a_target_without_a_region_stays_in_os_region_name() {
        let (a, b) = (glance("base-in-a"), glance("base-in-b"));
        let keystone = keystone(&a, &b);
        let dir = tempfile::tempdir().unwrap();
        let session = session(dir.path(), "", &password_env(&keystone)).unwrap();
        let target = session.target(None).unwrap();
        let record = plan::compute(&session, target, false, None).unwrap();
        assert_eq!(
            record.manifest.base_image.resolved_id.as_deref(),
            Some("base-in-a")
        );
        assert!(image_calls(&b).is_empty());
    }

    #[test]
    fn a_targets_cloud_is_its_clouds_yaml_entry_for_the_tool_and_for_packer() {
        // The environment's cloud is another one (its Keystone never asked).
        let (a0, b0) = (glance("env-a"), glance("env-b"));
        let environment = keystone(&a0, &b0);
        let (a, b) = (glance("base-in-a"), glance("base-in-b"));
        let other = keystone(&a, &b);
        let dir = tempfile::tempdir().unwrap();
        let clouds = dir.path().join("clouds.yaml");
        std::fs::write(
            &clouds,
            format!("clouds:\n  other:\n    auth:\n      auth_url: {}/v3\n      username: u2\n      project_name: p2\n    region_name: RegionA\n", other.url),
        )
        .unwrap();
        let secure = dir.path().join("secure.yaml");
        let other_secret = "0ther $ecret 'q'";
        std::fs::write(
            &secure,
            format!(
                "clouds:\n  other:\n    auth:\n      password: {}\n",
                serde_json::json!(other_secret)
            ),
        )
        .unwrap();
        let mut env = password_env(&environment);
        env.push(("OS_CLIENT_CONFIG_FILE", clouds.display().to_string()));
        env.push(("OS_CLIENT_SECURE_FILE", secure.display().to_string()));
        let session = session(dir.path(), "cloud = \"other\"\nregion = \"RegionB\"", &env).unwrap();
        let target = session.target(None).unwrap();
        let record = plan::compute(&session, target, false, None).unwrap();
        assert_eq!(
            record.manifest.base_image.resolved_id.as_deref(),
            Some("base-in-b")
        );
        assert!(
            environment.requests().is_empty(),
            "the environment's Keystone"
        );
        let login = &other.requests()[0];
        assert!(login.body.contains("\"u2\"") && login.body.contains("0ther $ecret"));
        assert!(
            !login.body.contains("pa$$"),
            "no environment password in the login"
        );
        // Packer gets the entry alone, in the target's region, and nothing else OS_*.
        let packer = session.packer_for(target).unwrap();
        let (set, own) = packer.cloud_env_for_tests();
        assert!(own);
        let get = |key: &str| set.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(
            get("OS_AUTH_URL"),
            Some(format!("{}/v3", other.url).as_str())
        );
        assert_eq!(get("OS_PASSWORD"), Some(other_secret));
        assert_eq!(get("OS_REGION_NAME"), Some("RegionB"));
        // The other cloud's secret is redacted like the environment's.
        let shown = session
            .redactor
            .redact(&format!("{other_secret} / {SECRET}"))
            .to_string();
        assert!(
            !shown.contains("0ther") && !shown.contains("pa$$"),
            "{shown}"
        );
    }

    #[test]
    fn a_cloud_missing_from_clouds_yaml_is_bad_input_naming_the_target_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let clouds = dir.path().join("clouds.yaml");
        std::fs::write(
            &clouds,
            "clouds:\n  ci:\n    auth:\n      auth_url: http://k/v3\n",
        )
        .unwrap();
        let env = [("OS_CLIENT_CONFIG_FILE", clouds.display().to_string())];
        let error = session(dir.path(), "cloud = \"nope\"", &env)
            .err()
            .expect("refused");
        let clouds_error = error
            .downcast_ref::<crate::openstack::clouds::CloudsError>()
            .expect("a clouds.yaml error");
        assert_eq!(clouds_error.code(), Code::BadInput);
        let text = format!("{error:#}");
        let expected = format!(
            "{} [target.a] cloud = \"nope\": {} has no cloud of that name under `clouds:` (it has: ci); fix the target's `cloud` or the file",
            dir.path().join("image.toml").display(),
            clouds.display()
        );
        assert_eq!(text, expected);
        // Without any clouds.yaml: where it was looked for.
        let env = [(
            "OS_CLIENT_CONFIG_FILE",
            dir.path().join("none.yaml").display().to_string(),
        )];
        let error = session(dir.path(), "cloud = \"nope\"", &env)
            .err()
            .expect("refused");
        let text = format!("{error:#}");
        assert!(
            text.contains("[target.a] cloud = \"nope\": no clouds.yaml found (looked at ")
                && text.contains("none.yaml"),
            "{text}"
        );
    }

    #[test]
    fn validate_checks_each_clouds_builders_with_that_clouds_settings() {
        let dir = tempfile::tempdir().unwrap();
        let clouds = dir.path().join("clouds.yaml");
        let entry = "    auth:\n      auth_url: http://127.0.0.1:1/v3\n      username: u\n      password: \"p w\"\n";
        std::fs::write(&clouds, format!("clouds:\n  other:\n{entry}")).unwrap();
        let env = [("OS_CLIENT_CONFIG_FILE", clouds.display().to_string())];
        // One target: one validate of every builder, as before.
        let single = session(dir.path(), "", &env).unwrap();
        let runs = single.packers_by_cloud(true).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].only, None);
        // Target b in cloud `other`: a's builders and the test host's with the
        // environment's settings, b's with the entry's alone.
        let extra = "[target.b]\nsource_image = \"i\"\nflavor = \"f\"\ncloud = \"other\"";
        let two = session(dir.path(), extra, &env).unwrap();
        let runs = two.packers_by_cloud(true).unwrap();
        let only: Vec<_> = runs.iter().map(|r| r.only.clone().unwrap()).collect();
        assert_eq!(only, [vec!["a", "test"], vec!["b"]]);
        assert!(!runs[0].packer.cloud_env_for_tests().1);
        assert!(
            !runs[0].has_credentials,
            "none in the environment: syntax only"
        );
        let (set, own) = runs[1].packer.cloud_env_for_tests();
        assert!(own && set.contains(&("OS_PASSWORD".into(), "p w".into())));
        assert!(runs[1].has_credentials);
    }

    #[test]
    fn packer_gets_the_targets_region_over_os_region_name() {
        let dir = tempfile::tempdir().unwrap();
        let session = session(dir.path(), "region = \"RegionB\"", &[]).unwrap();
        let target = session.target(None).unwrap();
        let packer = session.packer_for(target).unwrap();
        let (set, own) = packer.cloud_env_for_tests();
        assert!(
            !own,
            "the environment's cloud: its OS_* variables are inherited"
        );
        assert_eq!(set, [("OS_REGION_NAME".to_string(), "RegionB".to_string())]);
    }
}

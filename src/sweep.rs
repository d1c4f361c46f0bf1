//! What a dead run left behind, and what of it to remove (pure). A run marks its
//! temporary server with metadata (`uworker_image`, `uworker_run_id`, `uworker_target`,
//! commit, run URL); everything else is found through such servers, or is packer's own
//! temporary key pair, or an image of the definition still being made. Only what is older
//! than the limit goes, so a live build (which never outlives its deadline and grace) is
//! never touched; nothing of another definition, project or tool is.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::openstack::compute::{Keypair, Server};
use crate::openstack::glance::{Image, IMAGE_PROPERTY, TARGET_PROPERTY};
use crate::openstack::network::FloatingIp;

/// Server metadata keys a run sets (render.rs, `instance_metadata`).
pub const RUN_ID_KEY: &str = "uworker_run_id";
/// Packer names its temporary key pairs `packer_<time-ordered UUID>`.
pub const PACKER_KEYPAIR_PREFIX: &str = "packer_";
/// Glance statuses of an image not yet made; a dead run can leave one so forever.
pub const UNFINISHED: [&str; 3] = ["queued", "saving", "importing"];

/// Whose leftovers to look for, and how old they must be.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The definition's `name`.
    pub definition: String,
    /// Only these targets (`build` sweeps its own); None: every target of the name,
    /// including ones since removed from image.toml.
    pub targets: Option<BTreeSet<String>>,
    /// Only this GitHub run's leftovers (any attempt): the sweep after a failed or
    /// cancelled build. Packer's key pairs no server uses carry no run: they are left to
    /// the unnarrowed sweep.
    pub run: Option<String>,
    /// The project the token is scoped to: images must be owned by it. None: images are
    /// not swept (ownership cannot be told).
    pub project_id: Option<String>,
    /// The user's own floating IPs (IDs or addresses): detached, never released.
    pub user_floating_ips: BTreeSet<String>,
    pub older_than: Duration,
    pub now: SystemTime,
}

/// What the cloud holds (as listed).
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub servers: Vec<Server>,
    /// Port IDs of each server that may be swept (by server ID).
    pub ports: BTreeMap<String, Vec<String>>,
    /// Key pairs; packer's unused ones with their creation time (`show`).
    pub keypairs: Vec<Keypair>,
    pub floating_ips: Vec<FloatingIp>,
    /// The definition's images (any status).
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    FloatingIp,
    Server,
    Keypair,
    Image,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Delete,
    /// A floating IP packer allocated: back to the pool.
    Release,
    /// The user's floating IP: off the dead server, kept.
    Detach,
}

/// One thing to remove, with why it is ours and old enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: Kind,
    pub id: String,
    pub name: String,
    pub action: Action,
    pub reason: String,
}

/// Something of ours that stays, and why (too young, unknown age).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spared {
    pub kind: Kind,
    pub id: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// In the order to act: floating IPs (while their ports exist), servers, key pairs,
    /// images.
    pub items: Vec<Item>,
    pub spared: Vec<Spared>,
}

/// A server a run of this definition (and target, when narrowed) left: our metadata,
/// in our project.
pub fn is_ours(scope: &Scope, server: &Server) -> bool {
    let meta = |k: &str| server.metadata.get(k).map(String::as_str);
    let in_project = match (&scope.project_id, &server.tenant_id) {
        (Some(project), Some(tenant)) => project == tenant,
        _ => true,
    };
    meta(IMAGE_PROPERTY) == Some(scope.definition.as_str())
        && meta(RUN_ID_KEY).is_some_and(|id| !id.is_empty() && of_run(scope, id))
        && in_scope(scope, meta(TARGET_PROPERTY))
        && in_project
}

/// A run ID is `<GitHub run>-<attempt>` (or the bare run): `run` narrows to its attempts.
fn of_run(scope: &Scope, run_id: &str) -> bool {
    scope.run.as_deref().is_none_or(|run| {
        run_id == run
            || run_id
                .strip_prefix(run)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

fn in_scope(scope: &Scope, target: Option<&str>) -> bool {
    match &scope.targets {
        None => true,
        Some(targets) => target.is_some_and(|t| targets.contains(t)),
    }
}

/// Old enough: created at least `older_than` before `now`. None when the time is unknown
/// or unreadable (then it is spared: never guess).
pub fn age(scope: &Scope, created: &str) -> Option<Duration> {
    let created = humantime::parse_rfc3339_weak(created.trim_end_matches('Z')).ok()?;
    Some(scope.now.duration_since(created).unwrap_or(Duration::ZERO))
}

fn old_enough(scope: &Scope, created: Option<&str>) -> Result<Duration, String> {
    match created.and_then(|c| age(scope, c)) {
        None => Err(format!(
            "creation time unknown ({})",
            created.unwrap_or("none")
        )),
        Some(age) if age >= scope.older_than => Ok(age),
        Some(age) => Err(format!(
            "created {} ago, younger than {}",
            short(age),
            short(scope.older_than)
        )),
    }
}

fn short(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

pub fn select(scope: &Scope, found: &Found) -> Selection {
    let mut selection = Selection::default();
    let mut swept_servers: Vec<&Server> = Vec::new();
    for server in found.servers.iter().filter(|s| is_ours(scope, s)) {
        match old_enough(scope, Some(&server.created)) {
            Ok(_) => swept_servers.push(server),
            Err(reason) => selection.spared.push(Spared {
                kind: Kind::Server,
                id: server.id.clone(),
                name: server.name.clone(),
                reason,
            }),
        }
    }

    // Floating IPs on a swept server's port: packer's are released, the user's detached.
    let swept_ports: BTreeMap<&str, &Server> = swept_servers
        .iter()
        .flat_map(|s| {
            found
                .ports
                .get(&s.id)
                .into_iter()
                .flatten()
                .map(move |p| (p.as_str(), *s))
        })
        .collect();
    for fip in &found.floating_ips {
        let Some(server) = fip.port_id.as_deref().and_then(|p| swept_ports.get(p)) else {
            continue;
        };
        let users = scope.user_floating_ips.contains(&fip.id)
            || scope.user_floating_ips.contains(&fip.floating_ip_address);
        selection.items.push(Item {
            kind: Kind::FloatingIp,
            id: fip.id.clone(),
            name: fip.floating_ip_address.clone(),
            action: if users {
                Action::Detach
            } else {
                Action::Release
            },
            reason: format!(
                "{} on server {} of run {}",
                if users {
                    "the configured floating IP, left attached"
                } else {
                    "allocated by packer"
                },
                server.id,
                run_of(server)
            ),
        });
    }

    for server in &swept_servers {
        let age = old_enough(scope, Some(&server.created)).unwrap_or_default();
        selection.items.push(Item {
            kind: Kind::Server,
            id: server.id.clone(),
            name: server.name.clone(),
            action: Action::Delete,
            reason: format!(
                "run {} of target {}, created {} ago ({})",
                run_of(server),
                server
                    .metadata
                    .get(TARGET_PROPERTY)
                    .map(String::as_str)
                    .unwrap_or("?"),
                short(age),
                server.status
            ),
        });
    }

    // Key pairs: a swept server's packer key (unless a server that stays uses it), and
    // packer keys no server uses at all, when old enough.
    let used_by_kept: BTreeSet<&str> = found
        .servers
        .iter()
        .filter(|s| !swept_servers.iter().any(|w| w.id == s.id))
        .filter_map(|s| s.key_name.as_deref())
        .collect();
    let used_by_swept: BTreeMap<&str, &Server> = swept_servers
        .iter()
        .filter_map(|s| s.key_name.as_deref().map(|k| (k, *s)))
        .collect();
    for keypair in &found.keypairs {
        let name = keypair.name.as_str();
        if !name.starts_with(PACKER_KEYPAIR_PREFIX) || used_by_kept.contains(name) {
            continue;
        }
        let reason = match used_by_swept.get(name) {
            Some(server) => format!("packer's key pair of server {}", server.id),
            None if scope.run.is_some() => continue,
            None => match old_enough(scope, keypair.created_at.as_deref()) {
                Ok(age) => format!(
                    "packer's key pair, used by no server, created {} ago",
                    short(age)
                ),
                Err(reason) => {
                    selection.spared.push(Spared {
                        kind: Kind::Keypair,
                        id: name.to_string(),
                        name: name.to_string(),
                        reason,
                    });
                    continue;
                }
            },
        };
        selection.items.push(Item {
            kind: Kind::Keypair,
            id: name.to_string(),
            name: name.to_string(),
            action: Action::Delete,
            reason,
        });
    }

    // Images of this definition, owned by this project, never finished.
    let prefix = format!("{}-", scope.definition);
    for image in &found.images {
        let ours = image.property(IMAGE_PROPERTY) == Some(scope.definition.as_str())
            && image
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&prefix))
            && scope.project_id.is_some()
            && image.owner.as_deref() == scope.project_id.as_deref()
            && in_scope(scope, image.property(TARGET_PROPERTY))
            && UNFINISHED.contains(&image.status.as_str())
            && !image.protected
            && scope.run.as_deref().is_none_or(|run| {
                image
                    .property("uworker_run_url")
                    .is_some_and(|url| url.ends_with(&format!("/runs/{run}")))
            });
        if !ours {
            continue;
        }
        let name = image.name.clone().unwrap_or_default();
        match old_enough(scope, Some(&image.created_at)) {
            Ok(age) => selection.items.push(Item {
                kind: Kind::Image,
                id: image.id.clone(),
                name,
                action: Action::Delete,
                reason: format!("still {}, created {} ago", image.status, short(age)),
            }),
            Err(reason) => selection.spared.push(Spared {
                kind: Kind::Image,
                id: image.id.clone(),
                name,
                reason,
            }),
        }
    }
    selection.items.sort_by_key(|i| i.kind);
    selection
}

fn run_of(server: &Server) -> &str {
    server
        .metadata
        .get(RUN_ID_KEY)
        .map(String::as_str)
        .unwrap_or("?")
}

/// The packer key pairs no server uses: the ones whose creation time must be looked up.
pub fn unused_packer_keypairs<'a>(servers: &[Server], keypairs: &'a [Keypair]) -> Vec<&'a str> {
    let used: BTreeSet<&str> = servers
        .iter()
        .filter_map(|s| s.key_name.as_deref())
        .collect();
    keypairs
        .iter()
        .map(|k| k.name.as_str())
        .filter(|n| n.starts_with(PACKER_KEYPAIR_PREFIX) && !used.contains(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: u64 = 3600;
    /// 2026-01-01T12:00:00Z
    fn noon() -> SystemTime {
        humantime::parse_rfc3339("2026-01-01T12:00:00Z").unwrap()
    }

    fn scope() -> Scope {
        Scope {
            definition: "uworker".into(),
            targets: None,
            run: None,
            project_id: Some("p1".into()),
            user_floating_ips: BTreeSet::from(["10.0.0.9".to_string()]),
            older_than: Duration::from_secs(4 * HOUR + 300),
            now: noon(),
        }
    }

    /// `hours` hours before noon, as Nova writes it.
    fn at(hours: u64) -> String {
        humantime::format_rfc3339_seconds(noon() - Duration::from_secs(hours * HOUR)).to_string()
    }

    fn server(id: &str, hours: u64, key: Option<&str>, meta: &[(&str, &str)]) -> Server {
        serde_json::from_value(json!({
            "id": id, "name": format!("packer_{id}"), "status": "ACTIVE",
            "created": at(hours), "tenant_id": "p1", "key_name": key,
            "metadata": meta.iter().map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>(),
        }))
        .unwrap()
    }

    fn ours(target: &str) -> Vec<(&'static str, String)> {
        vec![
            ("uworker_image", "uworker".into()),
            ("uworker_run_id", "42".into()),
            ("uworker_target", target.into()),
        ]
    }

    fn server_of(id: &str, hours: u64, key: Option<&str>, target: &str) -> Server {
        let meta = ours(target);
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
        server(id, hours, key, &meta)
    }

    fn keypair(name: &str, hours: Option<u64>) -> Keypair {
        Keypair {
            name: name.into(),
            created_at: hours.map(|h| at(h).trim_end_matches('Z').to_string() + ".000000"),
        }
    }

    fn fip(id: &str, address: &str, port: Option<&str>) -> FloatingIp {
        FloatingIp {
            id: id.into(),
            floating_ip_address: address.into(),
            port_id: port.map(str::to_string),
        }
    }

    fn image(id: &str, name: &str, status: &str, hours: u64, extra: &[(&str, &str)]) -> Image {
        let mut value = json!({
            "id": id, "name": name, "status": status, "created_at": at(hours),
            "owner": "p1", "uworker_image": "uworker", "uworker_target": "smog",
        });
        for (k, v) in extra {
            value[*k] = json!(v);
        }
        serde_json::from_value(value).unwrap()
    }

    fn ids(selection: &Selection) -> Vec<(Kind, &str, Action)> {
        selection
            .items
            .iter()
            .map(|i| (i.kind, i.id.as_str(), i.action))
            .collect()
    }

    #[test]
    fn only_servers_of_this_definition_with_a_run_id_in_this_project_are_ours() {
        let s = scope();
        assert!(is_ours(&s, &server_of("a", 5, None, "smog")));
        let other = server(
            "b",
            5,
            None,
            &[("uworker_image", "other"), ("uworker_run_id", "1")],
        );
        assert!(!is_ours(&s, &other), "another definition");
        assert!(!is_ours(&s, &server("c", 5, None, &[])), "no metadata");
        let no_run = server("d", 5, None, &[("uworker_image", "uworker")]);
        assert!(!is_ours(&s, &no_run), "no run id");
        let empty_run = server(
            "e",
            5,
            None,
            &[("uworker_image", "uworker"), ("uworker_run_id", "")],
        );
        assert!(!is_ours(&s, &empty_run), "an empty run id");
        let mut foreign = server_of("f", 5, None, "smog");
        foreign.tenant_id = Some("p2".into());
        assert!(!is_ours(&s, &foreign), "another project");
        let narrowed = Scope {
            targets: Some(BTreeSet::from(["smog".to_string()])),
            ..scope()
        };
        assert!(is_ours(&narrowed, &server_of("g", 5, None, "smog")));
        assert!(!is_ours(&narrowed, &server_of("h", 5, None, "other")));
        let untargeted = server(
            "i",
            5,
            None,
            &[("uworker_image", "uworker"), ("uworker_run_id", "7")],
        );
        assert!(is_ours(&s, &untargeted), "every target when not narrowed");
        assert!(
            !is_ours(&narrowed, &untargeted),
            "an unknown target when narrowed"
        );
    }

    #[test]
    fn a_dead_runs_server_its_key_and_packers_floating_ip_go_when_old_enough() {
        let found = Found {
            servers: vec![
                server_of("old", 5, Some("packer_old"), "smog"),
                server_of("young", 1, Some("packer_young"), "smog"),
                server(
                    "foreign",
                    9,
                    Some("packer_foreign"),
                    &[("uworker_image", "x"), ("uworker_run_id", "1")],
                ),
            ],
            ports: BTreeMap::from([
                ("old".into(), vec!["port-old".into()]),
                ("young".into(), vec!["port-young".into()]),
            ]),
            keypairs: vec![
                keypair("packer_old", None),
                keypair("packer_young", None),
                keypair("packer_foreign", Some(9)),
                keypair("packer_orphan_old", Some(5)),
                keypair("packer_orphan_young", Some(1)),
                keypair("packer_orphan_unknown", None),
                keypair("deploy-key", Some(99)),
            ],
            floating_ips: vec![
                fip("fip-pool", "10.0.0.5", Some("port-old")),
                fip("fip-user", "10.0.0.9", Some("port-old")),
                fip("fip-young", "10.0.0.6", Some("port-young")),
                fip("fip-free", "10.0.0.7", None),
                fip("fip-elsewhere", "10.0.0.8", Some("port-foreign")),
            ],
            images: vec![],
        };
        let selection = select(&scope(), &found);
        assert_eq!(
            ids(&selection),
            [
                (Kind::FloatingIp, "fip-pool", Action::Release),
                (Kind::FloatingIp, "fip-user", Action::Detach),
                (Kind::Server, "old", Action::Delete),
                (Kind::Keypair, "packer_old", Action::Delete),
                (Kind::Keypair, "packer_orphan_old", Action::Delete),
            ]
        );
        let spared: Vec<(&str, &str)> = selection
            .spared
            .iter()
            .map(|s| (s.id.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            spared,
            [
                ("young", "created 1h ago, younger than 4h 5m"),
                ("packer_orphan_young", "created 1h ago, younger than 4h 5m"),
                ("packer_orphan_unknown", "creation time unknown (none)"),
            ]
        );
        assert_eq!(
            selection.items[2].reason,
            "run 42 of target smog, created 5h ago (ACTIVE)"
        );
    }

    #[test]
    fn the_limit_is_inclusive_and_zero_takes_everything_of_ours() {
        let found = Found {
            servers: vec![server_of("now", 0, None, "smog")],
            ..Found::default()
        };
        assert!(select(&scope(), &found).items.is_empty());
        let zero = Scope {
            older_than: Duration::ZERO,
            ..scope()
        };
        assert_eq!(
            ids(&select(&zero, &found)),
            [(Kind::Server, "now", Action::Delete)]
        );
        // Exactly at the limit counts as old enough; a clock ahead of ours is age zero.
        let exact = Scope {
            older_than: Duration::from_secs(5 * HOUR),
            ..scope()
        };
        let found = Found {
            servers: vec![server_of("five", 5, None, "smog")],
            ..Found::default()
        };
        assert_eq!(select(&exact, &found).items.len(), 1);
        let mut future = server_of("future", 0, None, "smog");
        future.created = "2026-01-01T13:00:00Z".into();
        assert_eq!(age(&scope(), &future.created), Some(Duration::ZERO));
        let mut garbled = server_of("garbled", 0, None, "smog");
        garbled.created = "yesterday".into();
        let found = Found {
            servers: vec![garbled],
            ..Found::default()
        };
        let selection = select(&zero, &found);
        assert!(
            selection.items.is_empty(),
            "an unreadable time is never taken"
        );
        assert_eq!(
            selection.spared[0].reason,
            "creation time unknown (yesterday)"
        );
    }

    #[test]
    fn only_unfinished_old_images_of_ours_in_our_project_go() {
        let found = Found {
            images: vec![
                image("saving-old", "uworker-smog-1", "saving", 5, &[]),
                image("queued-old", "uworker-smog-2", "queued", 5, &[]),
                image("importing-old", "uworker-smog-3", "importing", 5, &[]),
                image("saving-young", "uworker-smog-4", "saving", 1, &[]),
                image("active-old", "uworker-smog-5", "active", 5, &[]),
                image("killed-old", "uworker-smog-6", "killed", 5, &[]),
                image(
                    "other-project",
                    "uworker-smog-7",
                    "saving",
                    5,
                    &[("owner", "p2")],
                ),
                image("other-name", "foreign-smog-8", "saving", 5, &[]),
                image(
                    "other-def",
                    "uworker-smog-9",
                    "saving",
                    5,
                    &[("uworker_image", "x")],
                ),
                image("protected", "uworker-smog-10", "queued", 5, &[]),
            ],
            ..Found::default()
        };
        let mut found = found;
        found.images[9].protected = true;
        let selection = select(&scope(), &found);
        assert_eq!(
            ids(&selection),
            [
                (Kind::Image, "saving-old", Action::Delete),
                (Kind::Image, "queued-old", Action::Delete),
                (Kind::Image, "importing-old", Action::Delete),
            ]
        );
        assert_eq!(selection.items[0].reason, "still saving, created 5h ago");
        assert_eq!(selection.spared.len(), 1, "{:?}", selection.spared);
        // Without the project, ownership cannot be told: no image is touched.
        let unknown = Scope {
            project_id: None,
            ..scope()
        };
        assert!(select(&unknown, &found).items.is_empty());
        // Narrowed to another target: none of these.
        let narrowed = Scope {
            targets: Some(BTreeSet::from(["other".to_string()])),
            ..scope()
        };
        assert!(select(&narrowed, &found).items.is_empty());
    }

    #[test]
    fn a_key_a_staying_server_uses_stays_even_when_a_swept_one_used_it_too() {
        let found = Found {
            servers: vec![
                server_of("old", 5, Some("packer_shared"), "smog"),
                server("mine", 9, Some("packer_shared"), &[]),
            ],
            keypairs: vec![keypair("packer_shared", Some(9))],
            ..Found::default()
        };
        let selection = select(&scope(), &found);
        assert_eq!(ids(&selection), [(Kind::Server, "old", Action::Delete)]);
        let keypairs = [
            keypair("packer_shared", None),
            keypair("packer_x", None),
            keypair("mine", None),
        ];
        let unused = unused_packer_keypairs(&found.servers, &keypairs);
        assert_eq!(unused, ["packer_x"]);
    }

    #[test]
    fn narrowed_to_a_run_only_that_runs_attempts_and_images_go() {
        let run = |id: &str, key: &str| {
            server(
                id,
                5,
                Some(key),
                &[("uworker_image", "uworker"), ("uworker_run_id", id)],
            )
        };
        let found = Found {
            servers: vec![
                run("1234-1", "packer_a"),
                run("1234-2", "packer_b"),
                run("12345-1", "packer_c"),
                run("1234", "packer_d"),
            ],
            keypairs: [
                "packer_a",
                "packer_b",
                "packer_c",
                "packer_d",
                "packer_orphan",
            ]
            .iter()
            .map(|k| keypair(k, Some(9)))
            .collect(),
            images: vec![
                image(
                    "mine",
                    "uworker-smog-1",
                    "saving",
                    5,
                    &[(
                        "uworker_run_url",
                        "https://github.com/o/r/actions/runs/1234",
                    )],
                ),
                image(
                    "other",
                    "uworker-smog-2",
                    "saving",
                    5,
                    &[(
                        "uworker_run_url",
                        "https://github.com/o/r/actions/runs/12345",
                    )],
                ),
                image("unknown", "uworker-smog-3", "saving", 5, &[]),
            ],
            ..Found::default()
        };
        let narrowed = Scope {
            run: Some("1234".into()),
            ..scope()
        };
        let selection = select(&narrowed, &found);
        let taken: Vec<&str> = selection.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            taken,
            ["1234-1", "1234-2", "1234", "packer_a", "packer_b", "packer_d", "mine"]
        );
        assert_eq!(
            select(&scope(), &found).items.len(),
            12,
            "unnarrowed: all of them"
        );
    }
}

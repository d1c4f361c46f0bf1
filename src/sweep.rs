//! What a dead run left behind, and what of it to remove (pure). A run marks what it makes
//! (src/run_marks.rs): its temporary server and image with metadata (the definition, the
//! run, the target, the run's deadline, a lease its tool renews while the run lives), its
//! key pair by name. Everything else is found through such servers. A leftover goes only
//! when its run is over: its lease has run out and its own deadline has passed (or, for
//! what runs from before the deadline marks left, when it is older than the limit). Nothing
//! of another definition, project or tool is ever touched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::run_marks::{
    self, KeypairMarks, ALIVE_UNTIL_KEY, DEADLINE_KEY, FLOATING_IP_FROM_POOL, FLOATING_IP_KEY,
    IMAGE_PROPERTY, RUN_ID_KEY, TARGET_PROPERTY,
};

/// Packer names the key pairs it makes itself `packer_<time-ordered UUID>`: runs from before
/// the tool made its own key pair left such ones on their servers.
pub const PACKER_KEYPAIR_PREFIX: &str = "packer_";
/// Glance statuses of an image not yet made; a dead run can leave one so forever (a
/// build's snapshot, or a copy whose upload stopped: `uploading` is an import's stage).
pub const UNFINISHED: [&str; 4] = ["queued", "saving", "uploading", "importing"];

/// When a leftover of ours counts as dead. Whatever the limit, a run whose lease has not
/// run out is alive, and nothing of it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The default: each run's own deadline. What carries none (left by a tool from before
    /// the marks) must be older than `unmarked`.
    OwnDeadline { unmarked: Duration },
    /// `--older-than`: anything of ours created at least this long ago, marked or not.
    OlderThan(Duration),
}

/// Whose leftovers to look for, and when they count as dead.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The definition's `name`.
    pub definition: String,
    /// Only these targets (`build` sweeps its own); None: every target of the name,
    /// including ones since removed from image.toml.
    pub targets: Option<BTreeSet<String>>,
    /// Only this GitHub run's leftovers (any attempt): the sweep after a failed or
    /// cancelled build. The caller knows that run has ended: its lease no longer counts.
    pub run: Option<String>,
    /// The project the token is scoped to: images must be owned by it. None: images are
    /// not swept (ownership cannot be told).
    pub project_id: Option<String>,
    /// The user's own floating IPs (IDs or addresses): detached, never released.
    pub user_floating_ips: BTreeSet<String>,
    pub limit: Limit,
    pub now: SystemTime,
}

/// A server as the selection sees it; the cloud's edge fills it from Nova's
/// (commands/sweep.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    /// RFC 3339 in UTC (`2026-01-01T00:00:00Z`).
    pub created: String,
    /// The project it runs in (Nova's `tenant_id`), when Nova says.
    pub project_id: Option<String>,
    pub key_name: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// What Nova is doing with it right now (`spawning`, `image_uploading`, ...); None
    /// when nothing. Nova changes no metadata while a task runs.
    pub task_state: Option<String>,
}

/// A key pair of the user's; `created_at` only when it was shown one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keypair {
    pub name: String,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloatingIp {
    pub id: String,
    pub address: String,
    /// The port it is attached to, if any.
    pub port_id: Option<String>,
}

/// An image as the selection sees it: Glance's fields and its text properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub status: String,
    pub created_at: String,
    /// The project that owns it.
    pub owner: Option<String>,
    pub protected: bool,
    pub properties: BTreeMap<String, String>,
}

impl Image {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }
}

/// What the cloud holds (as listed).
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub servers: Vec<Server>,
    /// Port IDs of each server that may be swept (by server ID).
    pub ports: BTreeMap<String, Vec<String>>,
    /// The user's key pairs; the unused ones of ours with their creation time (`show`)
    /// when the limit is an age.
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
    /// A floating IP the dead run's packer allocated from a pool: back to the pool.
    Release,
    /// Any other floating IP: off the dead server, kept for its owner.
    Detach,
}

/// One thing to remove, with why it is ours and dead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: Kind,
    pub id: String,
    pub name: String,
    pub action: Action,
    pub reason: String,
}

/// Something of ours that stays, and why (its run is alive or may still be).
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
    let in_project = match (&scope.project_id, &server.project_id) {
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

/// How long ago `created` was. None when the time is unknown or unreadable (then it is
/// spared: never guess).
pub fn age(scope: &Scope, created: &str) -> Option<Duration> {
    let created = run_marks::parse_stamp(created)?;
    Some(scope.now.duration_since(created).unwrap_or(Duration::ZERO))
}

/// Why a leftover created at `created` is old enough, or why it is spared.
fn older_than(scope: &Scope, created: Option<&str>, limit: Duration) -> Result<String, String> {
    match created.and_then(|c| age(scope, c)) {
        None => Err(format!(
            "creation time unknown ({})",
            created.unwrap_or("none")
        )),
        Some(age) if age >= limit => Ok(format!("created {} ago", short(age))),
        Some(age) => Err(format!(
            "created {} ago, younger than {}",
            short(age),
            short(limit)
        )),
    }
}

/// Why a run whose deadline mark reads `deadline` is over, or why it may still run.
fn past_deadline(scope: &Scope, deadline: &str) -> Result<String, String> {
    match run_marks::parse_stamp(deadline) {
        None => Err(format!("its run's deadline is unreadable ({deadline})")),
        Some(at) => match scope.now.duration_since(at) {
            Ok(ago) => Ok(format!(
                "its run's deadline {deadline} passed {} ago",
                short(ago)
            )),
            Err(_) => Err(format!("its run's deadline {deadline} has not passed")),
        },
    }
}

/// Why a leftover is dead by the scope's limit, or why it is spared: its own deadline
/// (when it carries one and the limit is the default) or its age.
fn dead_by_limit(
    scope: &Scope,
    deadline: Option<&str>,
    created: Option<&str>,
) -> Result<String, String> {
    match (scope.limit, deadline) {
        (Limit::OwnDeadline { .. }, Some(deadline)) => past_deadline(scope, deadline),
        (Limit::OwnDeadline { unmarked }, None) => older_than(scope, created, unmarked),
        (Limit::OlderThan(limit), _) => older_than(scope, created, limit),
    }
}

/// The server's run renews its lease: it is alive, whatever the limit says (unless the
/// sweep is narrowed to that run, which its caller says has ended: a tool killed with its
/// job leaves a lease that outlives it by up to three heartbeats). Nova takes no metadata
/// while a task runs on the server (its boot, its stop, saving its image, which can take
/// hours), so the lease may lapse then: a server Nova is at work on is spared too while
/// its run's deadline has not passed. Past it, the run is over whatever Nova does, and a
/// task stuck for good does not keep the server forever.
fn alive(scope: &Scope, server: &Server) -> Option<String> {
    if scope.run.is_some() {
        return None;
    }
    let task = server.task_state.as_deref().filter(|t| *t != "deleting");
    let deadline = server.metadata.get(DEADLINE_KEY);
    if let (Some(task), Some(Err(_))) = (task, deadline.map(|d| past_deadline(scope, d))) {
        return Some(format!(
            "Nova is at work on it (task_state {task}) before its run's deadline: its run can renew no lease meanwhile"
        ));
    }
    let until = server.metadata.get(ALIVE_UNTIL_KEY)?;
    let at = run_marks::parse_stamp(until)?;
    (at > scope.now).then(|| format!("its run is alive (lease renewed until {until})"))
}

/// Why a server of ours is dead, or why it is spared.
fn server_verdict(scope: &Scope, server: &Server) -> Result<String, String> {
    if let Some(alive) = alive(scope, server) {
        return Err(alive);
    }
    dead_by_limit(
        scope,
        server.metadata.get(DEADLINE_KEY).map(String::as_str),
        Some(&server.created),
    )
}

fn short(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn spare(selection: &mut Selection, kind: Kind, id: &str, name: &str, reason: String) {
    selection.spared.push(Spared {
        kind,
        id: id.to_string(),
        name: name.to_string(),
        reason,
    });
}

pub fn select(scope: &Scope, found: &Found) -> Selection {
    let mut selection = Selection::default();
    let mut swept_servers: Vec<(&Server, String)> = Vec::new();
    // Runs with a server that stays: their key pairs and images stay too.
    let mut kept_runs: BTreeMap<&str, String> = BTreeMap::new();
    for server in found.servers.iter().filter(|s| is_ours(scope, s)) {
        match server_verdict(scope, server) {
            Ok(why) => swept_servers.push((server, why)),
            Err(reason) => {
                kept_runs.insert(
                    run_of(server),
                    format!("its run's server {} stays", server.id),
                );
                spare(
                    &mut selection,
                    Kind::Server,
                    &server.id,
                    &server.name,
                    reason,
                );
            }
        }
    }
    select_floating_ips(scope, found, &swept_servers, &mut selection);

    for (server, why) in &swept_servers {
        selection.items.push(Item {
            kind: Kind::Server,
            id: server.id.clone(),
            name: server.name.clone(),
            action: Action::Delete,
            reason: format!(
                "run {} of target {}, {why} ({})",
                run_of(server),
                server
                    .metadata
                    .get(TARGET_PROPERTY)
                    .map(String::as_str)
                    .unwrap_or("?"),
                server.status
            ),
        });
    }
    select_keypairs(scope, found, &swept_servers, &kept_runs, &mut selection);
    select_images(scope, found, &kept_runs, &mut selection);
    selection.items.sort_by_key(|i| i.kind);
    selection
}

/// Floating IPs on a swept server's port: released when the run's packer allocated them
/// from a pool (the server says so), detached otherwise: a reserved address, the user's
/// configured one or one attached by hand is never given back to the pool.
fn select_floating_ips(
    scope: &Scope,
    found: &Found,
    swept_servers: &[(&Server, String)],
    selection: &mut Selection,
) {
    let swept_ports: BTreeMap<&str, &Server> = swept_servers
        .iter()
        .flat_map(|(s, _)| {
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
        let configured = scope.user_floating_ips.contains(&fip.id)
            || scope.user_floating_ips.contains(&fip.address);
        let from_pool =
            server.metadata.get(FLOATING_IP_KEY).map(String::as_str) == Some(FLOATING_IP_FROM_POOL);
        let (action, what) = match (configured, from_pool) {
            (true, _) => (Action::Detach, "the configured floating IP, left attached"),
            (false, true) => (Action::Release, "allocated from a pool by packer"),
            (false, false) => (
                Action::Detach,
                "not allocated by the run (it takes no address from a pool), left attached",
            ),
        };
        selection.items.push(Item {
            kind: Kind::FloatingIp,
            id: fip.id.clone(),
            name: fip.address.clone(),
            action,
            reason: format!("{what} on server {} of run {}", server.id, run_of(server)),
        });
    }
}

/// Key pairs: the tool's own (named with their marks) when their run is over, and packer's
/// own (`packer_*`, left by runs from before the tool made its own) only on a swept server.
/// Nova key pairs belong to the user, not the project: any other key pair, however named
/// and however old, is someone else's.
fn select_keypairs(
    scope: &Scope,
    found: &Found,
    swept_servers: &[(&Server, String)],
    kept_runs: &BTreeMap<&str, String>,
    selection: &mut Selection,
) {
    let swept: BTreeSet<&str> = swept_servers.iter().map(|(s, _)| s.id.as_str()).collect();
    let used_by_kept: BTreeMap<&str, &Server> = found
        .servers
        .iter()
        .filter(|s| !swept.contains(s.id.as_str()))
        .filter_map(|s| s.key_name.as_deref().map(|k| (k, s)))
        .collect();
    let used_by_swept: BTreeMap<&str, &Server> = swept_servers
        .iter()
        .filter_map(|(s, _)| s.key_name.as_deref().map(|k| (k, *s)))
        .collect();
    for keypair in &found.keypairs {
        let name = keypair.name.as_str();
        let marks = KeypairMarks::parse(name).filter(|m| {
            m.definition == scope.definition
                && in_scope(scope, Some(&m.target))
                && of_run(scope, &m.run_id)
        });
        if marks.is_none() && !name.starts_with(PACKER_KEYPAIR_PREFIX) {
            continue;
        }
        let verdict = if let Some(server) = used_by_kept.get(name) {
            Err(format!("used by server {}, which stays", server.id))
        } else if let Some(server) = used_by_swept.get(name) {
            Ok(format!("the key pair of server {}", server.id))
        } else if let Some(marks) = &marks {
            match kept_runs.get(marks.run_id.as_str()) {
                Some(why) => Err(why.clone()),
                None => dead_by_limit(
                    scope,
                    Some(&run_marks::stamp(marks.deadline)),
                    keypair.created_at.as_deref(),
                )
                .map(|why| format!("run {} of target {}, {why}", marks.run_id, marks.target)),
            }
        } else {
            // Packer's, on no server of ours: not known to be ours.
            continue;
        };
        match verdict {
            Ok(reason) => selection.items.push(Item {
                kind: Kind::Keypair,
                id: name.to_string(),
                name: name.to_string(),
                action: Action::Delete,
                reason,
            }),
            Err(reason) if marks.is_some() => spare(selection, Kind::Keypair, name, name, reason),
            Err(_) => {}
        }
    }
}

/// Images of this definition, owned by this project, never finished, whose run is over.
fn select_images(
    scope: &Scope,
    found: &Found,
    kept_runs: &BTreeMap<&str, String>,
    selection: &mut Selection,
) {
    let prefix = format!("{}-", scope.definition);
    for image in &found.images {
        let ours = image.property(IMAGE_PROPERTY) == Some(scope.definition.as_str())
            && image.name.starts_with(&prefix)
            && scope.project_id.is_some()
            && image.owner.as_deref() == scope.project_id.as_deref()
            && in_scope(scope, image.property(TARGET_PROPERTY))
            && UNFINISHED.contains(&image.status.as_str())
            && !image.protected
            && scope.run.as_deref().is_none_or(|run| {
                image
                    .property(RUN_ID_KEY)
                    .is_some_and(|id| of_run(scope, id))
                    || image
                        .property("uworker_run_url")
                        .is_some_and(|url| url.ends_with(&format!("/runs/{run}")))
            });
        if !ours {
            continue;
        }
        let name = image.name.clone();
        let verdict = match image.property(RUN_ID_KEY).and_then(|r| kept_runs.get(r)) {
            Some(why) => Err(why.clone()),
            None => dead_by_limit(scope, image.property(DEADLINE_KEY), Some(&image.created_at)),
        };
        match verdict {
            Ok(why) => selection.items.push(Item {
                kind: Kind::Image,
                id: image.id.clone(),
                name,
                action: Action::Delete,
                reason: format!("still {}, {why}", image.status),
            }),
            Err(reason) => spare(selection, Kind::Image, &image.id, &name, reason),
        }
    }
}

fn run_of(server: &Server) -> &str {
    server
        .metadata
        .get(RUN_ID_KEY)
        .map(String::as_str)
        .unwrap_or("?")
}

/// Key pairs of ours that no server uses: when the limit is an age, their creation time
/// must be looked up (a key pair list does not carry it).
pub fn unused_keypairs_of(scope: &Scope, servers: &[Server], keypairs: &[Keypair]) -> Vec<String> {
    let used: BTreeSet<&str> = servers
        .iter()
        .filter_map(|s| s.key_name.as_deref())
        .collect();
    keypairs
        .iter()
        .map(|k| k.name.as_str())
        .filter(|n| !used.contains(n))
        .filter(|n| KeypairMarks::parse(n).is_some_and(|m| m.definition == scope.definition))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            limit: Limit::OwnDeadline {
                unmarked: Duration::from_secs(4 * HOUR + 300),
            },
            now: noon(),
        }
    }

    /// `hours` hours before noon, as Nova writes it.
    fn at(hours: u64) -> String {
        humantime::format_rfc3339_seconds(noon() - Duration::from_secs(hours * HOUR)).to_string()
    }

    fn server(id: &str, hours: u64, key: Option<&str>, meta: &[(&str, &str)]) -> Server {
        Server {
            id: id.into(),
            name: format!("packer_{id}"),
            status: "ACTIVE".into(),
            created: at(hours),
            project_id: Some("p1".into()),
            key_name: key.map(str::to_string),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            task_state: None,
        }
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
            address: address.into(),
            port_id: port.map(str::to_string),
        }
    }

    fn image(id: &str, name: &str, status: &str, hours: u64, extra: &[(&str, &str)]) -> Image {
        let marks = [("uworker_image", "uworker"), ("uworker_target", "smog")];
        Image {
            id: id.into(),
            name: name.into(),
            status: status.into(),
            created_at: at(hours),
            owner: Some("p1".into()),
            protected: false,
            properties: marks
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
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
        foreign.project_id = Some("p2".into());
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
    fn an_unmarked_dead_runs_server_its_key_and_packers_floating_ip_go_when_old_enough() {
        let mut old = server_of("old", 5, Some("packer_old"), "smog");
        old.metadata
            .insert(FLOATING_IP_KEY.into(), FLOATING_IP_FROM_POOL.into());
        let found = Found {
            servers: vec![
                old,
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
            ]
        );
        // Packer's key pairs on no server of ours are not known to be ours: untouched,
        // not even listed as spared.
        let spared: Vec<(&str, &str)> = selection
            .spared
            .iter()
            .map(|s| (s.id.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(spared, [("young", "created 1h ago, younger than 4h 5m")]);
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
            limit: Limit::OlderThan(Duration::ZERO),
            ..scope()
        };
        assert_eq!(
            ids(&select(&zero, &found)),
            [(Kind::Server, "now", Action::Delete)]
        );
        // Exactly at the limit counts as old enough; a clock ahead of ours is age zero.
        let exact = Scope {
            limit: Limit::OlderThan(Duration::from_secs(5 * HOUR)),
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
                image("other-project", "uworker-smog-7", "saving", 5, &[]),
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
        found.images[6].owner = Some("p2".into());
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
        let unused = unused_keypairs_of(&scope(), &found.servers, &keypairs);
        assert!(unused.is_empty(), "packer's are not ours: {unused:?}");
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
            11,
            "unnarrowed: all of them but packer's key pair on no server"
        );
    }

    /// A server of run `run` marked as today's tool marks it: deadline and lease at
    /// `deadline`/`alive_until` hours from noon (negative: before).
    /// `hours` hours after noon (before it when negative).
    fn from_noon(hours: i64) -> SystemTime {
        let offset = Duration::from_secs(hours.unsigned_abs() * HOUR);
        if hours >= 0 {
            noon() + offset
        } else {
            noon() - offset
        }
    }

    fn marked(id: &str, run: &str, deadline: i64, alive_until: Option<i64>) -> Server {
        let at = |hours: i64| run_marks::stamp(from_noon(hours));
        let mut meta = vec![
            ("uworker_image", "uworker".to_string()),
            (RUN_ID_KEY, run.to_string()),
            ("uworker_target", "smog".to_string()),
            (DEADLINE_KEY, at(deadline)),
        ];
        if let Some(hours) = alive_until {
            meta.push((ALIVE_UNTIL_KEY, at(hours)));
        }
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let key = KeypairMarks {
            definition: "uworker".into(),
            target: "smog".into(),
            run_id: run.into(),
            deadline: noon(),
        };
        server(id, 9, Some(&key.name()), &meta)
    }

    fn spared_reason<'a>(selection: &'a Selection, id: &str) -> &'a str {
        selection
            .spared
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.reason.as_str())
            .unwrap_or_else(|| panic!("{id} not spared: {selection:?}"))
    }

    #[test]
    fn a_run_is_judged_by_its_own_deadline_not_by_the_callers_limit() {
        // Both created 9 hours ago, far beyond the caller's 4h 5m: the long run's deadline
        // is still ahead, the short run's has passed.
        let found = Found {
            servers: vec![
                marked("long", "7-1", 2, None),
                marked("short", "8-1", -1, None),
            ],
            ..Found::default()
        };
        let selection = select(&scope(), &found);
        assert_eq!(ids(&selection), [(Kind::Server, "short", Action::Delete)]);
        assert_eq!(
            spared_reason(&selection, "long"),
            "its run's deadline 2026-01-01T14:00:00Z has not passed"
        );
        assert_eq!(
            selection.items[0].reason,
            "run 8-1 of target smog, its run's deadline 2026-01-01T11:00:00Z passed 1h ago (ACTIVE)"
        );
        // An unreadable deadline is never taken for a passed one.
        let mut garbled = marked("garbled", "9-1", -1, None);
        garbled.metadata.insert(DEADLINE_KEY.into(), "soon".into());
        let found = Found {
            servers: vec![garbled],
            ..Found::default()
        };
        let selection = select(&scope(), &found);
        assert!(selection.items.is_empty(), "{selection:?}");
        assert_eq!(
            spared_reason(&selection, "garbled"),
            "its run's deadline is unreadable (soon)"
        );
    }

    #[test]
    fn a_live_lease_spares_a_run_past_its_deadline_and_any_age_limit() {
        let found = Found {
            servers: vec![
                marked("beating", "7-1", -1, Some(1)),
                marked("stopped", "8-1", -1, Some(-1)),
            ],
            ..Found::default()
        };
        for limit in [scope().limit, Limit::OlderThan(Duration::ZERO)] {
            let s = Scope { limit, ..scope() };
            let selection = select(&s, &found);
            assert_eq!(ids(&selection), [(Kind::Server, "stopped", Action::Delete)]);
            assert_eq!(
                spared_reason(&selection, "beating"),
                "its run is alive (lease renewed until 2026-01-01T13:00:00Z)"
            );
        }
        // A lease that runs out this very second protects nothing any more.
        let found_at_end = Found {
            servers: vec![marked("ending", "9-1", -1, Some(0))],
            ..Found::default()
        };
        assert_eq!(
            ids(&select(&scope(), &found_at_end)),
            [(Kind::Server, "ending", Action::Delete)]
        );
        // Narrowed to the run (the sweep after its job failed or was cancelled), the
        // caller says it has ended: a killed tool's lease does not outlive its job.
        let ended = Scope {
            run: Some("7".into()),
            limit: Limit::OlderThan(Duration::ZERO),
            ..scope()
        };
        assert_eq!(
            ids(&select(&ended, &found)),
            [(Kind::Server, "beating", Action::Delete)]
        );
    }

    #[test]
    fn a_server_nova_is_at_work_on_is_spared_until_its_runs_deadline() {
        let in_task = |id: &str, task: Option<&str>, deadline: i64| Server {
            task_state: task.map(str::to_string),
            // Its lease ran out while Nova took none: only the task keeps it.
            ..marked(id, "7-1", deadline, Some(-1))
        };
        let found = Found {
            servers: vec![
                in_task("uploading", Some("image_uploading"), 1),
                in_task("stuck", Some("image_uploading"), -1),
                in_task("deleting", Some("deleting"), 1),
                in_task("idle", None, 1),
            ],
            ..Found::default()
        };
        let by_age = Scope {
            limit: Limit::OlderThan(Duration::ZERO),
            ..scope()
        };
        let selection = select(&by_age, &found);
        assert_eq!(
            ids(&selection),
            [
                (Kind::Server, "stuck", Action::Delete),
                (Kind::Server, "deleting", Action::Delete),
                (Kind::Server, "idle", Action::Delete)
            ]
        );
        assert_eq!(
            spared_reason(&selection, "uploading"),
            "Nova is at work on it (task_state image_uploading) before its run's deadline: its run can renew no lease meanwhile"
        );
        // The sweep after the run's job ended: nothing of it is waited for.
        let ended = Scope {
            run: Some("7".into()),
            ..by_age
        };
        assert_eq!(ids(&select(&ended, &found)).len(), 4);
    }

    #[test]
    fn an_explicit_age_limit_judges_marked_leftovers_by_age() {
        let found = Found {
            servers: vec![marked("long", "7-1", 2, None)],
            ..Found::default()
        };
        let s = Scope {
            limit: Limit::OlderThan(Duration::from_secs(8 * HOUR)),
            ..scope()
        };
        assert_eq!(
            ids(&select(&s, &found)),
            [(Kind::Server, "long", Action::Delete)]
        );
    }

    #[test]
    fn only_a_floating_ip_the_run_took_from_a_pool_is_released() {
        let mut pool = marked("pool", "7-1", -1, None);
        pool.metadata
            .insert(FLOATING_IP_KEY.into(), FLOATING_IP_FROM_POOL.into());
        let found = Found {
            servers: vec![pool, marked("fixed", "8-1", -1, None)],
            ports: BTreeMap::from([
                ("pool".into(), vec!["port-pool".into()]),
                ("fixed".into(), vec!["port-fixed".into()]),
            ]),
            floating_ips: vec![
                fip("fip-allocated", "10.0.0.5", Some("port-pool")),
                fip("fip-configured", "10.0.0.9", Some("port-pool")),
                fip("fip-reserved", "10.0.0.6", Some("port-fixed")),
            ],
            ..Found::default()
        };
        let selection = select(&scope(), &found);
        let fips: Vec<_> = ids(&selection)
            .into_iter()
            .filter(|(kind, ..)| *kind == Kind::FloatingIp)
            .collect();
        assert_eq!(
            fips,
            [
                (Kind::FloatingIp, "fip-allocated", Action::Release),
                (Kind::FloatingIp, "fip-configured", Action::Detach),
                (Kind::FloatingIp, "fip-reserved", Action::Detach),
            ]
        );
        assert_eq!(
            selection.items[2].reason,
            "not allocated by the run (it takes no address from a pool), left attached on server fixed of run 8-1"
        );
    }

    #[test]
    fn the_tools_key_pairs_go_when_their_run_is_over_and_no_other_key_pair_ever() {
        let key = |definition: &str, run: &str, target: &str, hours_ahead: i64| {
            KeypairMarks {
                definition: definition.into(),
                target: target.into(),
                run_id: run.into(),
                deadline: from_noon(hours_ahead),
            }
            .name()
        };
        let dead = key("uworker", "1-1", "smog", -1);
        let live = key("uworker", "2-1", "smog", 1);
        let kept_run = key("uworker", "3-1", "smog", -1);
        let other_definition = key("uworker2", "4-1", "smog", -1);
        let other_target = key("uworker", "5-1", "other", -1);
        let found = Found {
            // Run 3-1 still has a live server (its own key pair aside).
            servers: vec![marked("s3", "3-1", -1, Some(1))],
            keypairs: [
                &dead,
                &live,
                &kept_run,
                &other_definition,
                &other_target,
                "packer_0199",
                "deploy",
            ]
            .iter()
            .map(|n| keypair(n, Some(99)))
            .collect(),
            ..Found::default()
        };
        let narrowed = Scope {
            targets: Some(BTreeSet::from(["smog".to_string()])),
            ..scope()
        };
        let selection = select(&narrowed, &found);
        assert_eq!(
            ids(&selection),
            [(Kind::Keypair, dead.as_str(), Action::Delete)]
        );
        assert_eq!(
            spared_reason(&selection, &live),
            "its run's deadline 2026-01-01T13:00:00Z has not passed"
        );
        assert_eq!(
            spared_reason(&selection, &kept_run),
            "its run's server s3 stays"
        );
        // With an age limit, a key pair's own creation time counts (looked up by `show`);
        // an unknown one never passes.
        let by_age = Scope {
            limit: Limit::OlderThan(Duration::from_secs(HOUR)),
            ..narrowed.clone()
        };
        let mut unknown = found.clone();
        unknown.keypairs = vec![keypair(&live, None)];
        assert!(select(&by_age, &unknown).items.is_empty());
        unknown.keypairs = vec![keypair(&live, Some(2))];
        assert_eq!(select(&by_age, &unknown).items.len(), 1);
        let unused = unused_keypairs_of(&narrowed, &found.servers, &found.keypairs);
        assert_eq!(
            unused,
            [dead.clone(), live.clone(), kept_run.clone(), other_target]
        );
    }

    #[test]
    fn an_images_run_and_deadline_decide_like_its_servers() {
        let marked_image = |id: &str, run: &str, deadline: &str| {
            image(
                id,
                &format!("uworker-smog-{id}"),
                "saving",
                9,
                &[(RUN_ID_KEY, run), (DEADLINE_KEY, deadline)],
            )
        };
        let found = Found {
            servers: vec![marked("s3", "3-1", -1, Some(1))],
            images: vec![
                marked_image("over", "1-1", "2026-01-01T11:00:00Z"),
                marked_image("ahead", "2-1", "2026-01-01T13:00:00Z"),
                marked_image("saving", "3-1", "2026-01-01T11:00:00Z"),
            ],
            ..Found::default()
        };
        let selection = select(&scope(), &found);
        assert_eq!(ids(&selection), [(Kind::Image, "over", Action::Delete)]);
        assert_eq!(
            spared_reason(&selection, "saving"),
            "its run's server s3 stays"
        );
        assert_eq!(
            spared_reason(&selection, "ahead"),
            "its run's deadline 2026-01-01T13:00:00Z has not passed"
        );
    }
}

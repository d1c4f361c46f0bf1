//! `sweep`: find what dead runs of this definition left in the cloud (servers marked with
//! its metadata, their key pairs and the floating IPs packer took from a pool for them,
//! the tool's key pairs, images stuck unfinished) and remove what belongs to a run that is
//! over (src/sweep.rs says when). `build` runs it for its own target before it starts.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde::Serialize;

use super::Session;
use crate::env::Env;
use crate::error_chain::Chain;
use crate::exit::{Code, Coded as _};
use crate::openstack::client::{Cloud, OpenStackError};
use crate::openstack::compute::{self, is_gone, Nova};
use crate::openstack::glance::{self, Glance};
use crate::openstack::network::Neutron;
use crate::request::{self, Output};
use crate::run_marks::IMAGE_PROPERTY;
use crate::sweep::{self, Action, Found, Item, Kind, Limit, Scope, Selection, Spared};
use crate::vars;

/// How long `build` may run by default (its --timeout), and how long packer may clean up
/// after that deadline: a run's leftovers are older than both together.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(4 * 3600);
pub const BUILD_GRACE: Duration = Duration::from_secs(300);

/// How long a run may live, cleanup included: what its deadline mark says, and the age
/// beyond which a leftover without marks (from a tool before them) counts as dead.
pub fn run_lifetime(timeout: Option<Duration>) -> Duration {
    timeout.unwrap_or(BUILD_DEADLINE) + BUILD_GRACE
}

/// `--older-than` when given, else each run's own deadline.
fn limit(older_than: Option<Duration>, timeout: Option<Duration>) -> Limit {
    match older_than {
        Some(age) => Limit::OlderThan(age),
        None => Limit::OwnDeadline {
            unmarked: run_lifetime(timeout),
        },
    }
}

pub fn run(request: &request::Sweep, env: &Env) -> Result<Code> {
    let session = Session::load(&request.load, env)?;
    let selected = session.targets(request.target.as_deref())?;
    let limit = limit(request.older_than, request.timeout);
    let places = session.clouds_of(&selected);
    let several = places.len() > 1;
    let mut report = Report::new(request.dry_run, limit);
    // Every cloud and region the targets name; one that cannot be listed is reported and
    // the others are still swept.
    for at in places {
        let (place, targets) = (at.place, at.targets);
        let cloud = match at.cloud {
            Ok(Some(cloud)) => cloud,
            Ok(None) => {
                return Err(super::CommandError::NoCloudCredentials {
                    command: "sweep",
                    needs: "Compute, Networking and Glance",
                }
                .into())
            }
            Err(error) if several => {
                report.unswept(place.label(), error);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        // All targets (None) sweeps what any target of this definition left; over several
        // places, each sweeps its own targets' leftovers (places may share a Glance).
        let names = match (&request.target, several) {
            (None, false) => None,
            _ => Some(targets.iter().map(|t| t.name.clone()).collect()),
        };
        let mut scope = scope(&session, cloud, names, limit);
        scope.run = request.run.clone();
        match sweep_cloud(cloud, &scope, request.dry_run) {
            Ok(swept) => report.add(swept, place.label()),
            Err(error) if several => report.unswept(place.label(), error),
            Err(error) => return Err(error.into()),
        }
    }
    match request.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => {
            for line in report.lines() {
                println!("{}", session.redactor.redact(&line));
            }
        }
    }
    Ok(report.code())
}

/// `build`'s sweep of its own target, before packer starts: each earlier run is judged by
/// its own deadline, never by this run's `--timeout`. It never fails the build: a sweep
/// that cannot finish says so and the build goes on.
pub fn before_build(session: &Session, cloud: &Cloud, target: &str, timeout: Option<Duration>) {
    let targets = Some(BTreeSet::from([target.to_string()]));
    let scope = scope(session, cloud, targets, limit(None, timeout));
    match sweep_cloud(cloud, &scope, false) {
        Ok(report) => {
            for item in &report.items {
                session.info(&format!("build: sweep: {}", item.line()));
            }
            if report.code() != Code::Ok {
                session.info("build: warning: the sweep of earlier runs' leftovers did not finish; building anyway");
            }
        }
        Err(error) => session.info(&format!(
            "build: warning: cannot sweep earlier runs' leftovers ({}); building anyway",
            Chain(&error)
        )),
    }
}

fn scope(
    session: &Session,
    cloud: &Cloud,
    targets: Option<BTreeSet<String>>,
    limit: Limit,
) -> Scope {
    // The floating IPs the user configured: detached from a dead server, never released.
    let mut user_floating_ips: BTreeSet<String> = session
        .definition
        .targets
        .values()
        .filter_map(|t| t.floating_ip.clone())
        .collect();
    user_floating_ips.extend(session.inputs.get(vars::FLOATING_IP).map(str::to_string));
    Scope {
        definition: session.definition.name.clone(),
        targets,
        run: None,
        project_id: cloud.project_id().ok().map(str::to_string),
        user_floating_ips,
        limit,
        now: SystemTime::now(),
    }
}

/// What one sweep found and did.
#[derive(Debug, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// `older than <age>`, or `past each run's deadline` (`older than <age>` without one).
    pub limit: String,
    pub items: Vec<Done>,
    pub spared: Vec<Spared>,
    pub removed: usize,
    pub failed: usize,
    /// The clouds or regions that could not be listed, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unswept: Vec<String>,
    #[serde(skip)]
    external_failure: bool,
}

#[derive(Debug, Serialize)]
pub struct Done {
    #[serde(flatten)]
    pub item: Item,
    /// `would <action>`, `done`, `gone` (someone else removed it first) or `failed: ...`.
    pub result: String,
    /// The cloud and region a target names (`cloud c, region r`); None: the environment's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

impl Done {
    fn line(&self) -> String {
        let i = &self.item;
        let verb = action_word(i.action);
        let what = kind_word(i.kind);
        let name = if i.name != i.id {
            format!(" {}", i.name)
        } else {
            String::new()
        };
        let place = self
            .place
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        format!(
            "{verb} {what} {}{name}{place}: {} [{}]",
            i.id, i.reason, self.result
        )
    }
}

impl Report {
    fn new(dry_run: bool, limit: Limit) -> Report {
        Report {
            dry_run,
            limit: limit_text(limit),
            items: Vec::new(),
            spared: Vec::new(),
            removed: 0,
            failed: 0,
            unswept: Vec::new(),
            external_failure: false,
        }
    }

    /// One place's sweep into the whole's.
    fn add(&mut self, other: Report, place: Option<String>) {
        self.items.extend(other.items.into_iter().map(|done| Done {
            place: place.clone(),
            ..done
        }));
        self.spared.extend(other.spared);
        self.removed += other.removed;
        self.failed += other.failed;
        self.unswept.extend(other.unswept);
        self.external_failure |= other.external_failure;
    }

    /// A place that could not be listed: a failure, the other places still swept.
    fn unswept(&mut self, place: Option<String>, error: OpenStackError) {
        let place = place.unwrap_or_else(|| "the environment's cloud".into());
        self.external_failure |= error.code() == Code::External;
        self.unswept.push(format!("{place}: {}", Chain(&error)));
        self.failed += 1;
    }

    fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.items.iter().map(Done::line).collect();
        for unswept in &self.unswept {
            lines.push(format!("not swept: {unswept}"));
        }
        for s in &self.spared {
            lines.push(format!(
                "spare {} {}: {}",
                kind_word(s.kind),
                s.id,
                s.reason
            ));
        }
        lines.push(format!(
            "sweep: {} {}, {} failed, {} spared (limit: {})",
            if self.dry_run {
                self.items.len()
            } else {
                self.removed
            },
            if self.dry_run {
                "would be removed (dry run)"
            } else {
                "removed"
            },
            self.failed,
            self.spared.len(),
            self.limit
        ));
        lines
    }

    fn code(&self) -> Code {
        match (self.failed, self.external_failure) {
            (0, _) => Code::Ok,
            (_, true) => Code::External,
            (_, false) => Code::Failed,
        }
    }
}

/// Lists, selects and (unless `dry_run`) removes. Listing failures end it (exit 3 when
/// the cloud kept failing); a removal failure is reported and the rest goes on.
pub fn sweep_cloud(cloud: &Cloud, scope: &Scope, dry_run: bool) -> Result<Report, OpenStackError> {
    let selection = sweep::select(scope, &find(cloud, scope)?);
    let Selection { items, spared } = selection;
    let nova = Nova::new(cloud)?;
    let glance = Glance::new(cloud)?;
    let mut report = Report {
        spared,
        ..Report::new(dry_run, scope.limit)
    };
    for item in items {
        let result = if dry_run {
            Ok(())
        } else {
            match (item.kind, item.action) {
                // Neutron only when a floating IP is to go: a cloud without a network
                // endpoint has none to sweep.
                (Kind::FloatingIp, Action::Detach) => {
                    Neutron::new(cloud).and_then(|n| n.detach_floating_ip(&item.id))
                }
                (Kind::FloatingIp, _) => {
                    Neutron::new(cloud).and_then(|n| n.release_floating_ip(&item.id))
                }
                (Kind::Server, _) => nova.delete_server(&item.id),
                (Kind::Keypair, _) => nova.delete_keypair(&item.id),
                (Kind::Image, _) => glance.delete(&item.id),
            }
        };
        let result = match result {
            Ok(()) if dry_run => format!("would {}", action_word(item.action)),
            Ok(()) => {
                report.removed += 1;
                "done".to_string()
            }
            Err(e) if is_gone(&e) => {
                report.removed += 1;
                "gone".to_string()
            }
            Err(e) => {
                report.failed += 1;
                report.external_failure |= e.code() == Code::External;
                format!("failed: {}", Chain(&e))
            }
        };
        report.items.push(Done {
            item,
            result,
            place: None,
        });
    }
    Ok(report)
}

fn limit_text(limit: Limit) -> String {
    let age = |d: Duration| humantime::format_duration(d).to_string();
    match limit {
        Limit::OlderThan(d) => format!("older than {}", age(d)),
        Limit::OwnDeadline { unmarked } => format!(
            "past each run's deadline; without one, older than {}",
            age(unmarked)
        ),
    }
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::FloatingIp => "floating IP",
        Kind::Server => "server",
        Kind::Keypair => "key pair",
        Kind::Image => "image",
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Delete => "delete",
        Action::Release => "release",
        Action::Detach => "detach",
    }
}

/// Everything the selection looks at, listed from the cloud.
fn find(cloud: &Cloud, scope: &Scope) -> Result<Found, OpenStackError> {
    let nova = Nova::new(cloud)?;
    let servers: Vec<sweep::Server> = nova.servers()?.into_iter().map(server_view).collect();
    let mut found = Found::default();
    for server in servers.iter().filter(|s| sweep::is_ours(scope, s)) {
        match nova.server_ports(&server.id) {
            Ok(ports) => {
                found.ports.insert(server.id.clone(), ports);
            }
            // Deleted since the list: nothing attached any more.
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let mut keypairs: Vec<sweep::Keypair> =
        nova.keypairs()?.into_iter().map(keypair_view).collect();
    // Only an age limit needs our unused key pairs' ages (the list does not carry them).
    let unused: BTreeSet<String> = match scope.limit {
        Limit::OlderThan(_) => sweep::unused_keypairs_of(scope, &servers, &keypairs)
            .into_iter()
            .collect(),
        Limit::OwnDeadline { .. } => BTreeSet::new(),
    };
    for keypair in keypairs.iter_mut().filter(|k| unused.contains(&k.name)) {
        match nova.keypair(&keypair.name) {
            Ok(shown) => keypair.created_at = shown.created_at,
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    found.keypairs = keypairs;
    if !found.ports.is_empty() {
        found.floating_ips = Neutron::new(cloud)?
            .floating_ips()?
            .into_iter()
            .map(|ip| sweep::FloatingIp {
                id: ip.id,
                address: ip.floating_ip_address,
                port_id: ip.port_id,
            })
            .collect();
    }
    found.servers = servers;
    if scope.project_id.is_some() {
        // Asked by owner and checked by owner, as prune's and plan's lookups are.
        found.images = Glance::new(cloud)?
            .list_owned(&[(IMAGE_PROPERTY, scope.definition.as_str())])?
            .into_iter()
            .map(image_view)
            .collect();
    }
    Ok(found)
}

fn server_view(server: compute::Server) -> sweep::Server {
    sweep::Server {
        id: server.id,
        name: server.name,
        status: server.status,
        created: server.created,
        project_id: server.tenant_id,
        key_name: server.key_name,
        metadata: server.metadata,
        task_state: server.task_state,
    }
}

fn keypair_view(keypair: compute::Keypair) -> sweep::Keypair {
    sweep::Keypair {
        name: keypair.name,
        created_at: keypair.created_at,
    }
}

/// Glance's image with its text properties (the marks are text).
fn image_view(image: glance::Image) -> sweep::Image {
    let properties = image
        .properties
        .iter()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
        .collect();
    sweep::Image {
        id: image.id,
        name: image.name.unwrap_or_default(),
        status: image.status,
        created_at: image.created_at,
        owner: image.owner,
        protected: image.protected,
        properties,
    }
}

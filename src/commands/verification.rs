//! The verification of a built image in the target's cloud (docs/verify.md): one server
//! booted from it through Nova (the target's flavor, networks, security groups, zone and
//! floating IP; its own key pair; the run's marks and lease, so `sweep` finds it should
//! the tool die), the checks over SSH, and the server, its floating IP and key pair gone
//! on every way out: pass, fail, deadline, Ctrl-C/SIGTERM, an error on the way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};

use super::run_cloud::{Lease, RunKeypair};
use super::Session;
use crate::definition::Target;
use crate::error_chain::Chain;
use crate::interrupt;
use crate::openstack::client::Cloud;
use crate::openstack::compute::{is_gone, NewServer, Nova};
use crate::openstack::network::Neutron;
use crate::record::{CheckOutcome, Verification};
use crate::run_marks::{
    self, KeypairMarks, ALIVE_UNTIL_KEY, DEADLINE_KEY, FLOATING_IP_FROM_POOL, FLOATING_IP_KEY,
    IMAGE_PROPERTY, LEASE_PERIODS, RUN_ID_KEY, TARGET_PROPERTY,
};
use crate::verify::ssh::{End, Host};
use crate::verify::{self, How, Identity};
use crate::workdir::Workdir;

/// How long deleting the server and its key pair may take after the deadline.
const CLEANUP_GRACE: Duration = Duration::from_secs(120);
/// Between two looks at a booting server, and two SSH connection attempts.
const POLL: Duration = Duration::from_secs(2);
/// What the log and the record keep of a failed check's output.
const TAIL_LINES: usize = 40;
const TAIL_BYTES: usize = 4096;

/// What the verification needs of the build.
pub struct Build<'a> {
    pub image_id: &'a str,
    pub run_id: &'a str,
    /// The build server's identity, as the build's identity step printed it.
    pub identity: Option<&'a Identity>,
    /// The floating IP (ID) the build used, when it was given by address or ID.
    pub floating_ip_id: Option<&'a str>,
    pub heartbeat: Duration,
}

/// Boots the image once and checks it. An error means the verification could not be
/// made (the cloud refused the server, ...); a failed check is a `Failed` verification.
pub fn run(
    session: &Session,
    target: &Target,
    cloud: &Cloud,
    build: Build,
) -> Result<Verification> {
    let settings = &session.definition.verify;
    let started = Instant::now();
    let deadline = started + settings.timeout;
    // A signal only raises the flag now: each wait below looks at it and returns, and the
    // guards delete what was made.
    let _supervised = interrupt::Supervised::begin();
    let info = |line: &str| session.info(line);
    session.info(&format!(
        "verify: booting image {} once in the target's cloud (timeout {})",
        build.image_id,
        humantime::format_duration(settings.timeout)
    ));
    let marks_deadline = SystemTime::now() + settings.timeout + CLEANUP_GRACE;
    let keypair = RunKeypair::import(
        cloud,
        &KeypairMarks {
            definition: session.definition.name.clone(),
            target: target.name.clone(),
            run_id: build.run_id.to_string(),
            deadline: marks_deadline,
        },
        &info,
    )?;
    let workdir = Workdir::create().context("creating a private work directory")?;
    let key_file = workdir.write_secret(
        "verify-key",
        secrecy::ExposeSecret::expose_secret(&keypair.private_key).as_bytes(),
    )?;
    let pool = target.floating_ip.is_none() && target.floating_ip_network.is_some();
    let mut metadata = BTreeMap::from([
        (IMAGE_PROPERTY.to_string(), session.definition.name.clone()),
        (TARGET_PROPERTY.to_string(), target.name.clone()),
        (RUN_ID_KEY.to_string(), build.run_id.to_string()),
        (DEADLINE_KEY.to_string(), run_marks::stamp(marks_deadline)),
        (
            ALIVE_UNTIL_KEY.to_string(),
            run_marks::stamp(SystemTime::now() + build.heartbeat * LEASE_PERIODS),
        ),
    ]);
    if pool {
        metadata.insert(
            FLOATING_IP_KEY.to_string(),
            FLOATING_IP_FROM_POOL.to_string(),
        );
    }
    let nova = Nova::new(cloud)?;
    let flavor_id = nova.flavor_id(&target.flavor).with_context(|| {
        format!(
            "finding the flavor `{}` for the verification",
            target.flavor
        )
    })?;
    let name = format!(
        "{}-{}-verify-{}",
        session.definition.name,
        target.name,
        build.image_id.get(..8).unwrap_or(build.image_id)
    );
    let user_data = verify::user_data(settings);
    let lease = Lease::start(
        cloud.reconnect(),
        session.definition.name.clone(),
        build.run_id.to_string(),
        build.heartbeat,
        {
            let redactor = session.redactor.clone();
            let quiet = session.quiet;
            move |line| {
                if !quiet {
                    eprintln!("{}", redactor.redact(line));
                }
            }
        },
    );
    let mut server = ServerGuard {
        cloud,
        session,
        name: name.clone(),
        run_id: build.run_id.to_string(),
        id: None,
        floating: None,
    };
    let created = nova.create_server(&NewServer {
        name: &name,
        image_id: build.image_id,
        flavor_id: &flavor_id,
        key_name: &keypair.name,
        user_data: &user_data,
        metadata: &metadata,
        networks: &target.networks,
        security_groups: &target.security_groups,
        availability_zone: target.availability_zone.as_deref(),
        config_drive: target.config_drive,
    });
    let id = match created {
        Ok(id) => id,
        Err(e) => {
            // A create that failed on its way back may have made the server anyway.
            server.delete_by_name();
            return Err(e).context("asking Nova for the verification's server");
        }
    };
    session.info(&format!("verify: server {id} ({name}) created"));
    server.id = Some(id.clone());

    let mut outcomes: Vec<CheckOutcome> = Vec::new();
    let mut interrupted = false;
    let checks = verify::checks(&session.definition, target, &keypair.public_key);
    let booted = wait_active(&nova, &id, deadline);
    let address = match booted {
        Boot::Active(fixed) => match server.floating_ip(target, build.floating_ip_id, pool) {
            Ok(Some(address)) => Some(address),
            Ok(None) => fixed,
            Err(e) => {
                drop(server);
                return Err(e);
            }
        },
        Boot::Failed(why) => {
            outcomes.push(failed("boot", started, why));
            None
        }
        Boot::Stopped => {
            interrupted = true;
            None
        }
    };
    match address {
        Some(address) => {
            session.info(&format!("verify: server {id} is active at {address}"));
            let host = Host {
                address,
                port: 22,
                user: target.ssh_username.clone(),
                key_file,
                known_hosts: workdir.path().join("known_hosts"),
            };
            let run = Checks {
                session,
                host: &host,
                deadline,
                identity: build.identity,
            };
            for check in &checks {
                let outcome = run.one(check)?;
                let (ok, stop) = (outcome.outcome.ok, outcome.stopped);
                if stop {
                    session.info(&format!("verify: {} interrupted", check.name));
                    interrupted = true;
                    break;
                }
                session.info(&format!(
                    "verify: {} {} ({} ms)",
                    check.name,
                    if ok { "ok" } else { "FAILED" },
                    outcome.outcome.milliseconds
                ));
                if let (false, Some(output)) = (ok, &outcome.outcome.output) {
                    for line in output.lines() {
                        session.info(&format!("verify:   {line}"));
                    }
                }
                outcomes.push(outcome.outcome);
                if !ok {
                    break;
                }
            }
        }
        None if outcomes.is_empty() && !interrupted => outcomes.push(failed(
            "boot",
            started,
            "the server has no IPv4 address to reach it at".into(),
        )),
        None => {}
    }
    drop(lease);
    drop(server);
    keypair.delete();
    drop(workdir);
    interrupted |= interrupt::raised();
    let total = started.elapsed().as_millis() as u64;
    Ok(verify::verdict(outcomes, interrupted, total, Some(id)))
}

fn failed(name: &str, since: Instant, why: String) -> CheckOutcome {
    CheckOutcome {
        name: name.to_string(),
        ok: false,
        milliseconds: since.elapsed().as_millis() as u64,
        output: Some(why),
    }
}

enum Boot {
    /// Active, with its fixed address if it has one.
    Active(Option<String>),
    Failed(String),
    Stopped,
}

fn wait_active(nova: &Nova, id: &str, deadline: Instant) -> Boot {
    loop {
        if interrupt::raised() {
            return Boot::Stopped;
        }
        match nova.server(id) {
            Ok(server) if server.status == "ACTIVE" => {
                return Boot::Active(server.access_ipv4().map(str::to_string))
            }
            Ok(server) if server.status == "ERROR" => {
                let why = server.fault.map(|f| f.message).unwrap_or_default();
                return Boot::Failed(format!("the server went to ERROR: {why}"));
            }
            Ok(_) => {}
            Err(e) => return Boot::Failed(format!("reading the server failed: {}", Chain(&e))),
        }
        if Instant::now() >= deadline {
            return Boot::Failed("the deadline passed before the server was active".into());
        }
        std::thread::sleep(POLL);
    }
}

/// The verification's server: deleted when dropped, its floating IP released (one from
/// the pool) or detached (the target's own) first.
struct ServerGuard<'a> {
    cloud: &'a Cloud,
    session: &'a Session,
    name: String,
    run_id: String,
    id: Option<String>,
    /// The floating IP's ID, and whether it came from the pool (then it is released).
    floating: Option<(String, bool)>,
}

impl ServerGuard<'_> {
    /// Gives the server its floating IP, when the target has one: the address to reach it at.
    fn floating_ip(
        &mut self,
        target: &Target,
        build_floating_ip: Option<&str>,
        pool: bool,
    ) -> Result<Option<String>> {
        let fixed = target.floating_ip.as_deref().or(build_floating_ip);
        if fixed.is_none() && !pool {
            return Ok(None);
        }
        let id = self.id.clone().expect("a server");
        let neutron = Neutron::new(self.cloud)?;
        let port = Nova::new(self.cloud)?
            .server_ports(&id)?
            .into_iter()
            .next()
            .with_context(|| format!("server {id} has no port to attach a floating IP to"))?;
        let address = match (fixed, &target.floating_ip_network) {
            (Some(fip), _) => {
                neutron
                    .attach_floating_ip(fip, &port)
                    .with_context(|| format!("attaching floating IP {fip} to server {id}"))?;
                self.floating = Some((fip.to_string(), false));
                neutron.floating_ip(fip)?.floating_ip_address
            }
            (None, Some(network)) => {
                let network_id = neutron.network_id(network)?;
                let fip = neutron
                    .allocate_floating_ip(&network_id, &port)
                    .with_context(|| format!("allocating a floating IP from `{network}`"))?;
                self.floating = Some((fip.id.clone(), true));
                fip.floating_ip_address
            }
            (None, None) => return Ok(None),
        };
        self.session
            .info(&format!("verify: floating IP {address} attached to {id}"));
        Ok(Some(address))
    }

    /// After a failed create: the servers of this name and run (made anyway) go.
    fn delete_by_name(&mut self) {
        let found = Nova::new(self.cloud).and_then(|nova| nova.servers());
        if let Ok(servers) = found {
            for server in servers {
                let mark = server.metadata.get(RUN_ID_KEY).map(String::as_str);
                if server.name == self.name && mark == Some(self.run_id.as_str()) {
                    self.id = Some(server.id);
                    self.delete();
                }
            }
        }
    }

    fn delete(&mut self) {
        let warn = |what: &str, e: &(dyn std::error::Error + 'static)| {
            self.session.info(&format!(
                "verify: warning: {what} failed ({}); `uworker-image sweep` removes it once the run's deadline has passed",
                Chain(e)
            ))
        };
        if let Some((fip, from_pool)) = self.floating.take() {
            let result = Neutron::new(self.cloud).and_then(|n| {
                if from_pool {
                    n.release_floating_ip(&fip)
                } else {
                    n.detach_floating_ip(&fip)
                }
            });
            match result {
                Err(e) if !is_gone(&e) => warn(&format!("letting go of floating IP {fip}"), &e),
                _ => {}
            }
        }
        if let Some(id) = self.id.take() {
            match Nova::new(self.cloud).and_then(|nova| nova.delete_server(&id)) {
                Ok(()) => self.session.info(&format!("verify: server {id} deleted")),
                Err(e) if is_gone(&e) => {}
                Err(e) => warn(&format!("deleting server {id}"), &e),
            }
        }
    }
}

impl Drop for ServerGuard<'_> {
    fn drop(&mut self) {
        self.delete();
    }
}

struct Checks<'a> {
    session: &'a Session,
    host: &'a Host,
    deadline: Instant,
    identity: Option<&'a Identity>,
}

struct Ran {
    outcome: CheckOutcome,
    /// The stop flag rose during the check.
    stopped: bool,
}

/// Runs a script given on stdin as root, its arguments quoted; the copy goes after.
fn as_root(interpreter: &str, args: &[String]) -> String {
    let args: Vec<String> = args.iter().map(|a| crate::shell::quote(a)).collect();
    let run = if interpreter.is_empty() {
        "chmod 700 \"$f\" && sudo -n \"$f\"".to_string()
    } else {
        format!("sudo -n {interpreter} \"$f\"")
    };
    format!(
        "f=$(mktemp) && cat >\"$f\" && {run} {}; rc=$?; rm -f \"$f\"; exit $rc",
        args.join(" ")
    )
}

impl Checks<'_> {
    fn one(&self, check: &verify::Check) -> Result<Ran> {
        let started = Instant::now();
        let stop = || interrupt::raised();
        let (ok, output, stopped) = match &check.how {
            How::Connect => self.connect()?,
            How::Builtin(args) => {
                let ran = self.host.run(
                    &as_root("bash", args),
                    verify::CHECK_SCRIPT.as_bytes(),
                    self.deadline,
                    &stop,
                )?;
                judge(ran.end, ran.output)
            }
            How::Identity => {
                let args = ["identity".to_string()];
                let ran = self.host.run(
                    &as_root("bash", &args),
                    verify::CHECK_SCRIPT.as_bytes(),
                    self.deadline,
                    &stop,
                )?;
                match judge(ran.end, ran.output.clone()) {
                    (true, output, _) => {
                        let clone = verify::parse_identity(&output);
                        match verify::compare_identity(self.identity, &clone) {
                            Ok(said) => (true, said, false),
                            Err(said) => (false, said, false),
                        }
                    }
                    other => other,
                }
            }
            How::Script(path) => {
                let full = self.session.definition.dir.join(path);
                let script = crate::input_file::read_text(&full, crate::input_file::CONFIG_CAP)
                    .with_context(|| format!("reading the verification check {path}"))?;
                let ran =
                    self.host
                        .run(&as_root("", &[]), script.as_bytes(), self.deadline, &stop)?;
                judge(ran.end, ran.output)
            }
        };
        let output = self.session.redactor.redact(&output);
        Ok(Ran {
            outcome: CheckOutcome {
                name: check.name.clone(),
                ok,
                milliseconds: started.elapsed().as_millis() as u64,
                output: (!ok).then(|| verify::tail(&output, TAIL_LINES, TAIL_BYTES)),
            },
            stopped,
        })
    }

    /// SSH answers with the key pair's key: tried until the deadline while the server
    /// boots (sshd not up yet, cloud-init not done writing the key).
    fn connect(&self) -> Result<(bool, String, bool)> {
        let stop = || interrupt::raised();
        loop {
            let ran = self.host.run("true", b"", self.deadline, &stop)?;
            match ran.end {
                End::Exited(0) => {
                    return Ok((true, "SSH answered with the key pair's key".into(), false))
                }
                End::Stopped => return Ok((false, ran.output, true)),
                End::TimedOut => {
                    return Ok((false, format!("the deadline passed: {}", ran.output), false))
                }
                End::Exited(_) if Instant::now() + POLL >= self.deadline => {
                    return Ok((
                        false,
                        format!("the deadline passed; ssh said: {}", ran.output),
                        false,
                    ))
                }
                End::Exited(_) => std::thread::sleep(POLL),
            }
            if interrupt::raised() {
                return Ok((false, String::new(), true));
            }
        }
    }
}

/// (ok, output, stopped) of a call.
fn judge(end: End, output: String) -> (bool, String, bool) {
    match end {
        End::Exited(0) => (true, output, false),
        End::Exited(code) => (false, format!("{output}\n(exit code {code})"), false),
        End::TimedOut => (
            false,
            format!("{output}\n(the verification's deadline passed)"),
            false,
        ),
        End::Stopped => (false, output, true),
    }
}

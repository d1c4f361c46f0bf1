//! `build`: plan; unless an image with the fingerprint exists (or with --force),
//! pre-flight checks, the target's openstack builder with retries and a deadline, then
//! the image checked active and marked in Glance (a `candidate`), verified in the cloud
//! (`verification`: then `verified` or `failed`), and a result record.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use super::packer_run::{failure_verdict, run_packer, PackerRun, RunDefaults};
use super::run_cloud::{Lease, RunKeypair};
use super::session::check_base_owner;
use super::stage::{downloaded_sbom, stage, write_record, write_sbom, RunFacts, Sbom};
use super::{plan, CommandError, Session};
use crate::definition::{SourceImage, Target};
use crate::env::Env;
use crate::error_chain::Chain;
use crate::exit::Code;
use crate::jobapi;
use crate::lifecycle::{Status, STATUS_PROPERTY, VERIFICATION_DISABLED, VERIFICATION_PROPERTY};
use crate::openstack::client::Cloud;
use crate::openstack::glance::{Glance, Image};
use crate::openstack::network;
use crate::packer::attempts::Outcome;
use crate::record::{
    Action, Fingerprint, FingerprintImage, Provenance, Record, Verification, VerificationStatus,
};
use crate::render::Builders;
use crate::request::{self, Output};
use crate::run_marks::{KeypairMarks, FINGERPRINT_PROPERTY, IMAGE_PROPERTY, TARGET_PROPERTY};
use crate::vars;
use crate::verify::{self, IdentityCapture};

/// Saving an image takes 10-20 minutes, sometimes hours; the plugin itself waits forever.
const DEFAULT_TIMEOUT: Duration = super::sweep::BUILD_DEADLINE;

pub fn run(request: &request::Build, env: &Env) -> Result<Code> {
    let session = Session::load_pinned(&request.load, env)?;
    let target = session.target(request.target.as_deref())?;
    if !target.is_built() {
        return super::copy_build::run(&session, target, request, env);
    }
    session.check_worker_config(false)?;
    let cloud = session.require_cloud_for(target, "build", "Compute, Networking and Glance")?;
    let (mut record, provenance, run_id) = planned(&session, target, request, env)?;
    if record.action == Action::Skip {
        return finish(&session, request, &record, Code::Ok, env, None);
    }

    preflight(&session, target, cloud, &record.packer_version, request)?;
    // What dead runs of this target left (each past its own deadline) goes first.
    super::sweep::before_build(&session, cloud, &target.name, request.limits.timeout);
    let floating_ip_id = floating_ip_id(&session, target, cloud)?;
    let built_target = pinned_base_image(target, &record.manifest.base_image.resolved_id);
    let defaults = RunDefaults {
        timeout: DEFAULT_TIMEOUT,
        attempts: 3,
        // Deleting the temporary server and key pair takes the cloud a while.
        deadline_grace: super::sweep::BUILD_GRACE,
        cloud: true,
    };
    // The run's deadline counts from here, for packer and for the marks that tell `sweep`
    // when the run is over (its deadline, packer's cleanup included).
    let started = (Instant::now(), SystemTime::now());
    let deadline =
        started.1 + request.limits.timeout.unwrap_or(defaults.timeout) + defaults.deadline_grace;
    let info = |line: &str| session.info(line);
    let keypair = RunKeypair::import(
        cloud,
        &KeypairMarks {
            definition: session.definition.name.clone(),
            target: target.name.clone(),
            run_id: run_id.clone(),
            deadline,
        },
        &info,
    )?;
    let staged = stage(
        &session,
        Builders::Target(&built_target),
        RunFacts {
            fingerprint: Some(record.fingerprint.to_string()),
            provenance,
            floating_ip_id: floating_ip_id.clone(),
            keypair_name: Some(keypair.name.clone()),
            private_key: Some(keypair.private_key.clone()),
            deadline: Some(deadline),
            ..RunFacts::default()
        },
    )?;
    let verifies = session.definition.verify.enabled;
    if verifies {
        add_identity_step(&staged.template)?;
    }
    let redactor = session.redactor.clone();
    let quiet = session.quiet;
    let lease = Lease::start(
        cloud.reconnect(),
        session.definition.name.clone(),
        run_id.clone(),
        request.limits.heartbeat,
        move |line| {
            if !quiet {
                eprintln!("{}", redactor.redact(line));
            }
        },
    );
    let mut identity = IdentityCapture::default();
    let stderr = std::io::stderr();
    let outcome = run_packer(
        &session,
        &staged,
        PackerRun {
            packer: &session.packer_for(target)?,
            only: &target.name,
            started: started.0,
        },
        &request.limits,
        &defaults,
        env,
        Watched {
            out: stderr.lock(),
            line: Vec::new(),
            capture: &mut identity,
        },
    )?;
    drop(lease);
    let sbom = downloaded_sbom(&staged);
    drop(staged);
    keypair.delete();

    let mut kept = None;
    let code = match &outcome {
        Outcome::Built {
            artifact_id,
            attempts,
        } => {
            record.attempts = *attempts;
            kept = kept_sbom(sbom, &mut record);
            let image = mark_image(
                cloud,
                artifact_id,
                &session.definition.name,
                target,
                &record.fingerprint,
                // Never current until its verification passed (src/lifecycle.rs); with
                // `[verify] enabled = false` the definition vouches for it instead.
                Some(if verifies {
                    Status::Candidate
                } else {
                    Status::Verified
                }),
                kept.as_ref().map(|s| s.file.sha256.as_str()),
            )?;
            if !verifies {
                Glance::new(cloud)?
                    .set_properties(&image.id, &[(VERIFICATION_PROPERTY, VERIFICATION_DISABLED)])?;
            }
            if let (Some(sbom), Some(out)) = (&kept, &request.record.file) {
                let path = write_sbom(out, sbom)?;
                session.info(&format!("build: wrote the SBOM {}", path.display()));
            }
            record.built = Some(true);
            record.image_id = Some(image.id.clone());
            record.image_name = image.name.clone();
            record.reason = format!("built {} in {attempts} attempt(s)", image.id);
            record.image_age_seconds = None;
            record.fingerprint_images = fingerprint_images(&session, cloud, &record, &image);
            if verifies {
                let verification = super::verification::run(
                    &session,
                    target,
                    cloud,
                    super::verification::Build {
                        image_id: &image.id,
                        run_id: &run_id,
                        identity: identity.found.as_ref(),
                        floating_ip_id: floating_ip_id.as_deref(),
                        heartbeat: request.limits.heartbeat,
                    },
                );
                let verification = match verification {
                    Ok(verification) => verification,
                    Err(error) => {
                        // The image could not be verified: it stays a candidate.
                        eprintln!(
                            "{}",
                            session
                                .redactor
                                .redact(&format!("error: verifying image {}: {error:#}", image.id))
                        );
                        record.reason = format!(
                            "built {}, but its verification could not run; it stays a candidate",
                            image.id
                        );
                        return finish(
                            &session,
                            request,
                            &record,
                            Code::External,
                            env,
                            kept.as_ref(),
                        );
                    }
                };
                let code = settle(&session, cloud, &image.id, &verification, &mut record)?;
                record.verification = Some(verification);
                code
            } else {
                Code::Ok
            }
        }
        other => {
            let timeout = request.limits.timeout.unwrap_or(DEFAULT_TIMEOUT);
            let (code, verdict) = failure_verdict(other, "build", timeout);
            record.reason = verdict;
            record.attempts = match other {
                Outcome::Failed { attempts, .. } | Outcome::TimedOut { attempts } => *attempts,
                _ => 0,
            };
            code
        }
    };
    finish(&session, request, &record, code, env, kept.as_ref())
}

/// The SBOM of the built image in the record; one that did not come back is a warning
/// (the image is built by then).
fn kept_sbom(sbom: Option<Result<Sbom>>, record: &mut Record) -> Option<Sbom> {
    match sbom? {
        Ok(sbom) => {
            record.sbom = Some(sbom.file.clone());
            Some(sbom)
        }
        Err(error) => {
            record.warnings.push(format!(
                "the image has no SBOM: the SBOM step's file is unusable ({error:#})"
            ));
            None
        }
    }
}

/// The plan (against `--previous`) made this run's build record, said on stderr, with
/// the run's provenance and ID.
pub(super) fn planned(
    session: &Session,
    target: &Target,
    request: &request::Build,
    env: &Env,
) -> Result<(Record, Provenance, String)> {
    let previous = request
        .previous
        .as_deref()
        .map(plan::read_previous)
        .transpose()?;
    let plan = plan::compute(session, target, request.force, previous.as_ref())?;
    let mut provenance = Provenance::from_env(env);
    let run_id = run_id(&provenance, env);
    provenance.run_id = Some(run_id.clone());
    let record = plan.into_build(&provenance);
    session.info(&format!("build: {} ({})", record.action, record.reason));
    Ok((record, provenance, run_id))
}

/// The project's active images of the record's fingerprint, newest first, for the
/// release body. The image is built and marked by now: a listing that fails costs the
/// release its list of older images, never the record.
pub(super) fn fingerprint_images(
    session: &Session,
    cloud: &Cloud,
    record: &Record,
    built: &Image,
) -> Vec<FingerprintImage> {
    let listed = Glance::new(cloud).and_then(|glance| {
        glance.list_owned(&[
            (FINGERPRINT_PROPERTY, record.fingerprint.as_str()),
            ("status", "active"),
        ])
    });
    let mut images = match listed {
        Ok(images) => images,
        Err(e) => {
            session.info(&format!(
                "build: warning: listing the images of this fingerprint failed ({}); the release names only {}",
                Chain(&e),
                built.id
            ));
            vec![built.clone()]
        }
    };
    // RFC 3339 times of one zone sort as text.
    images.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    images
        .into_iter()
        .map(|image| FingerprintImage {
            id: image.id,
            name: image.name,
            created_at: image.created_at,
        })
        .collect()
}

/// The run ID the temporary server carries (`uworker_run_id`), so `sweep` can tell a
/// run's leftovers: GitHub's run and attempt, or a local run's start time and process.
fn run_id(provenance: &Provenance, env: &Env) -> String {
    match (&provenance.run_id, env.get("GITHUB_RUN_ATTEMPT")) {
        (Some(run), Some(attempt)) => format!("{run}-{attempt}"),
        (Some(run), None) => run.clone(),
        (None, _) => {
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            format!("local-{started}-{}", std::process::id())
        }
    }
}

/// The target with its base image named by the ID the fingerprint holds: packer would
/// otherwise resolve `source_image_name` again, and may pick a newer image than the one
/// fingerprinted (or refuse a name several images share, which the resolution allows).
fn pinned_base_image(target: &Target, resolved_id: &Option<String>) -> Target {
    let mut pinned = target.clone();
    if let (SourceImage::Name(_), Some(id)) = (&target.source_image, resolved_id) {
        pinned.source_image = SourceImage::Id(id.clone());
    }
    pinned
}

/// Fail in seconds what would otherwise fail after twenty minutes.
fn preflight(
    session: &Session,
    target: &Target,
    cloud: &Cloud,
    packer_version: &str,
    request: &request::Build,
) -> Result<()> {
    session.packer()?.ensure_openstack_plugin(packer_version)?;
    if session.definition.verify.enabled
        && crate::packer::search_path(std::path::Path::new("ssh")).is_none()
    {
        bail!(CommandError::NoSshClient {
            definition: session.definition.path().display().to_string(),
        });
    }
    if let SourceImage::Id(id) = &target.source_image {
        let glance = Glance::new(cloud)?;
        let image = glance
            .get(id)
            .map_err(|error| CommandError::SourceImageUnreadable {
                origin: session.target_origin(target),
                id: id.clone(),
                error: Box::new(error),
            })?;
        if image.status != "active" {
            bail!(CommandError::SourceImageInactive {
                origin: session.target_origin(target),
                id: id.clone(),
                status: image.status,
            });
        }
        check_base_owner(session, target, format!("image {id} is"), &image.owner)?;
    }
    if request.check_worker_credentials {
        let worker = &session.inputs.worker;
        let get = |k: &str| worker.get(k).unwrap_or_default();
        jobapi::check_credentials(
            get("UWORKER_JOB_API_ROOT"),
            get("UWORKER_JOB_API_USERNAME"),
            get("UWORKER_JOB_API_PASSWORD"),
        )?;
        session.info("build: the job service accepted the worker's credentials");
    }
    Ok(())
}

/// Packer's openstack builder takes a floating IP by its ID. The seed's variable holds
/// its address: the ID is looked up for the run (the fingerprint keeps the address). A
/// target's own `floating_ip` is in the template as written, so it must be the ID.
fn floating_ip_id(session: &Session, target: &Target, cloud: &Cloud) -> Result<Option<String>> {
    let is_address = |v: &str| v.parse::<std::net::IpAddr>().is_ok();
    if let Some(literal) = target.floating_ip.as_deref().filter(|v| is_address(v)) {
        let id = network::Neutron::new(cloud)?.floating_ip_id(literal)?;
        bail!(CommandError::FloatingIpAddress {
            origin: session.target_origin(target),
            id,
            address: literal.to_string(),
        });
    }
    if target.floating_ip.is_some() || target.floating_ip_network.is_some() {
        return Ok(None);
    }
    match session.inputs.get(vars::FLOATING_IP) {
        Some(address) if is_address(address) => {
            let id = network::Neutron::new(cloud)?.floating_ip_id(address)?;
            session.info(&format!("build: floating IP {address} is {id}"));
            Ok(Some(id))
        }
        _ => Ok(None),
    }
}

/// The built (or copied) image must be active; it gets the fingerprint and definition
/// properties (in case the builder did not set them), its lifecycle `status` (a build's
/// is `candidate` until verified; a copy takes its source's, none for an image of an
/// older tool), the SBOM's digest, and a tag with the short fingerprint.
pub(super) fn mark_image(
    cloud: &Cloud,
    id: &str,
    definition: &str,
    target: &Target,
    fingerprint: &Fingerprint,
    status: Option<Status>,
    sbom_sha256: Option<&str>,
) -> Result<crate::openstack::glance::Image> {
    let glance = Glance::new(cloud)?;
    let image = glance
        .get(id)
        .with_context(|| format!("reading the built image {id}"))?;
    if image.status != "active" {
        bail!(
            "packer reported image {id}, but Glance says it is {}",
            image.status
        );
    }
    let mut wanted = vec![
        (FINGERPRINT_PROPERTY, fingerprint.as_str()),
        (IMAGE_PROPERTY, definition),
        (TARGET_PROPERTY, target.name.as_str()),
    ];
    wanted.extend(status.map(|status| (STATUS_PROPERTY, status.as_str())));
    wanted.extend(sbom_sha256.map(|sha256| (crate::sbom::SHA256_PROPERTY, sha256)));
    let missing: Vec<(&str, &str)> = wanted
        .iter()
        .copied()
        .filter(|(k, v)| image.property(k) != Some(*v))
        .collect();
    let image = if missing.is_empty() {
        image
    } else {
        glance.set_properties(id, &missing)?
    };
    glance.add_tag(id, &format!("uworker-{}", fingerprint.short()))?;
    Ok(image)
}

/// Writes the record (--out), prints it, reports it inside GitHub Actions (unless
/// --no-report), and returns the code: the build's, unless only the report failed.
pub(super) fn finish(
    session: &Session,
    request: &request::Build,
    record: &Record,
    code: Code,
    env: &Env,
    sbom: Option<&Sbom>,
) -> Result<Code> {
    let json = serde_json::to_string_pretty(record)?;
    if let Some(path) = &request.record.file {
        write_record(path, &json)?;
    }
    match request.output {
        Output::Json => println!("{json}"),
        Output::Text => {
            let image = record.image_id.as_deref().unwrap_or("none");
            println!("{}", session.redactor.redact(&format!(
                "target:      {}\nfingerprint: {}\naction:      {}\nbuilt:       {}\nimage:       {image}\nresult:      {}",
                record.target, record.fingerprint, record.action, record.built(), record.reason
            )));
        }
    }
    if request.record.report && crate::ci::in_actions(env) {
        let reported = super::report::after_run(
            record,
            request.record.validation,
            env,
            &session.redactor,
            sbom.map(|s| s.text.as_str()),
        );
        return match (code, reported) {
            (Code::Ok, reported) => reported,
            (failed, Err(error)) => {
                eprintln!(
                    "{}",
                    session
                        .redactor
                        .redact(&format!("error: reporting: {error:#}"))
                );
                Ok(failed)
            }
            (failed, Ok(_)) => Ok(failed),
        };
    }
    Ok(code)
}

/// The image's status after its verification, and the run's code: `verified` (with
/// `uworker_verified_at`) and 0; `failed` and 1, the record saying which check; after a
/// signal it stays a `candidate` and the run exits 130.
fn settle(
    session: &Session,
    cloud: &Cloud,
    image_id: &str,
    verification: &Verification,
    record: &mut Record,
) -> Result<Code> {
    let seconds = verification.total_milliseconds as f64 / 1000.0;
    let (status, code) = match verification.status {
        VerificationStatus::Passed => {
            record.reason = format!("{}, verified in {seconds:.1} s", record.reason);
            (Some(Status::Verified), Code::Ok)
        }
        VerificationStatus::Failed => {
            let check = verification.failed_check.as_deref().unwrap_or("unknown");
            record.reason = format!(
                "{}, but verification failed: {check}; the image is marked failed and never current",
                record.reason
            );
            (Some(Status::Failed), Code::Failed)
        }
        VerificationStatus::Interrupted => {
            record.reason = format!(
                "{}, verification interrupted; the image stays a candidate",
                record.reason
            );
            (None, Code::Interrupted)
        }
    };
    session.info(&format!("verify: {}", record.reason));
    if let Some(status) = status {
        let now = crate::run_marks::stamp(SystemTime::now());
        let mut properties = vec![(STATUS_PROPERTY, status.as_str())];
        if status == Status::Verified {
            properties.push((verify::VERIFIED_AT_PROPERTY, now.as_str()));
        }
        Glance::new(cloud)?
            .set_properties(image_id, &properties)
            .with_context(|| format!("marking image {image_id} {status}"))?;
    }
    Ok(code)
}

/// Puts the step that prints the build server's identity first (after the upload
/// directory's): the verification compares a clone's with it. Only in the run's copy of
/// the template: it does not shape the image, so the fingerprint does not count it.
fn add_identity_step(template: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let mut value: serde_json::Value = serde_json::from_str(&text)?;
    if let Some(steps) = value["provisioners"].as_array_mut() {
        let at = steps.len().min(1);
        steps.insert(
            at,
            serde_json::json!({
                "type": "shell",
                "remote_folder": format!("{{{{user `{}`}}}}", vars::UPLOAD_DIR),
                "inline": verify::identity_step_lines(),
            }),
        );
    }
    std::fs::write(template, crate::render::to_text(&value))
        .with_context(|| format!("writing {}", template.display()))?;
    Ok(())
}

/// Packer's output on its way to stderr, each line shown to the identity capture.
struct Watched<'a, W: std::io::Write> {
    out: W,
    line: Vec<u8>,
    capture: &'a mut IdentityCapture,
}

impl<W: std::io::Write> std::io::Write for Watched<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(bytes)?;
        for &b in &bytes[..n] {
            if b == b'\n' {
                self.capture.line(&String::from_utf8_lossy(&self.line));
                self.line.clear();
            } else if self.line.len() < 4096 {
                self.line.push(b);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

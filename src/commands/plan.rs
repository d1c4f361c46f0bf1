//! `plan`: load, render, check, fingerprint, decide. The main job; no side effects.

use anyhow::Result;

use super::{write_record, Session};
use crate::cli::{Global, Output, PlanArgs};
use crate::definition::Target;
use crate::env::Env;
use crate::exit::Code;
use crate::fingerprint;
use crate::fingerprint::Manifest;
use crate::openstack::client::Cloud;
use crate::openstack::glance::Glance;
use crate::packer::Packer;
use crate::plan::{self, Lookup};
use crate::record::Record;

pub fn run(global: &Global, args: &PlanArgs, env: &Env) -> Result<Code> {
    let session = Session::load(global, env)?;
    let target = session.definition.select_target(global.target.as_deref())?;
    let previous = args
        .previous
        .as_deref()
        .map(fingerprint::read_previous)
        .transpose()?;
    let packer = session.packer(global)?;
    let cloud = session.connect()?;
    let plan = compute(
        &session,
        target,
        &packer,
        cloud.as_ref(),
        args.force,
        previous.as_ref(),
    )?;
    let json = serde_json::to_string(&plan)?;
    if let Some(path) = &args.out {
        write_record(path, &json)?;
    }
    match global.output {
        Output::Json => println!("{json}"),
        Output::Text => {
            let label = args.previous.as_ref().map(|p| p.display().to_string());
            print!(
                "{}",
                session
                    .redactor
                    .redact(&plan::to_text(&plan, label.as_deref()))
            );
        }
    }
    if !args.no_report && crate::ci::in_actions(env) {
        return super::report::after_run(&plan, env, &session.redactor);
    }
    Ok(Code::Ok)
}

/// Fingerprint the target (its base image name resolved when a cloud is at hand) and
/// decide: `plan` prints this, `build` acts on it.
pub(super) fn compute(
    session: &Session,
    target: &Target,
    packer: &Packer,
    cloud: Option<&Cloud>,
    force: bool,
    previous: Option<&Manifest>,
) -> Result<Record> {
    let base = session.resolve_base_image(target, cloud)?;
    let manifest = session.manifest(target, packer, base.as_ref())?;
    let mut warnings: Vec<String> = target.shared_image_warning().into_iter().collect();
    let missing = session.missing_secrets();
    if !missing.is_empty() {
        warnings.push(format!(
            "worker config incomplete ({} unset): `validate` and `build` need them",
            missing.join(", ")
        ));
    }
    // Hashed once: the lookup and the plan use the same string.
    let fingerprint = manifest.fingerprint();
    let lookup = match cloud {
        None => Lookup::Unavailable(
            "no OpenStack credentials in the environment (OS_AUTH_URL with OS_USERNAME/OS_PASSWORD or OS_APPLICATION_CREDENTIAL_ID/SECRET, or OS_CLOUD)".into(),
        ),
        Some(cloud) => match Glance::new(cloud)?.find_fingerprint(fingerprint.as_str())? {
            Some(image) => Lookup::Found {
                age: image_age(&image.created_at, std::time::SystemTime::now()),
                image_id: image.id,
            },
            None => Lookup::Missing,
        },
    };
    Ok(plan::decide(
        manifest,
        fingerprint,
        base,
        lookup,
        plan::Policy {
            force,
            max_age: session.max_age(target),
        },
        previous,
        warnings,
    ))
}

/// How long before `now` Glance says the image was created (`created_at`, RFC 3339);
/// None when the time cannot be read. A clock behind Glance's reads as age zero.
fn image_age(created_at: &str, now: std::time::SystemTime) -> Option<std::time::Duration> {
    let created = humantime::parse_rfc3339_weak(created_at.trim_end_matches('Z')).ok()?;
    Some(now.duration_since(created).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn an_images_age_comes_from_glances_created_at() {
        let now = humantime::parse_rfc3339("2026-11-30T12:00:00Z").unwrap();
        assert_eq!(
            image_age("2026-10-30T12:00:00Z", now),
            Some(Duration::from_secs(31 * 86_400))
        );
        assert_eq!(
            image_age("2026-11-30T11:59:58.123456Z", now).map(|d| d.as_secs()),
            Some(1)
        );
        assert_eq!(image_age("2026-12-01T00:00:00Z", now), Some(Duration::ZERO));
        assert_eq!(image_age("yesterday", now), None);
        assert!(image_age("2026-11-30T12:00:00Z", SystemTime::UNIX_EPOCH).is_some());
    }
}

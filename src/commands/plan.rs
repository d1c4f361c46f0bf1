//! `plan`: load, render, check, fingerprint, decide. The main job; no side effects.

use std::path::Path;

use anyhow::Result;

use super::session::Fingerprinted;
use super::stage::write_record;
use super::{Session, CREDENTIAL_SOURCES};
use crate::definition::Target;
use crate::env::Env;
use crate::exit::Code;
use crate::fingerprint::{FingerprintError, Manifest};
use crate::lifecycle;
use crate::openstack::glance::Glance;
use crate::plan::{self, Lookup};
use crate::record::Record;
use crate::request::{self, Output};

pub fn run(request: &request::Plan, env: &Env) -> Result<Code> {
    let session = Session::load_pinned(&request.load, env)?;
    let target = session.target(request.target.as_deref())?;
    let previous = request.previous.as_deref().map(read_previous).transpose()?;
    let plan = compute(&session, target, request.force, previous.as_ref())?;
    let json = serde_json::to_string(&plan)?;
    if let Some(path) = &request.record.file {
        write_record(path, &json)?;
    }
    match request.output {
        Output::Json => println!("{json}"),
        Output::Text => {
            let label = request.previous.as_ref().map(|p| p.display().to_string());
            print!(
                "{}",
                session
                    .redactor
                    .redact(&plan::to_text(&plan, label.as_deref()))
            );
        }
    }
    if request.record.report && crate::ci::in_actions(env) {
        return super::report::after_run(
            &plan,
            request.record.validation,
            env,
            &session.redactor,
            None,
        );
    }
    Ok(Code::Ok)
}

/// `--previous`: an earlier run's manifest, alone or in its record (of any schema: only
/// the manifest is compared, see `record`).
pub(super) fn read_previous(path: &Path) -> Result<Manifest, FingerprintError> {
    let text =
        crate::input_file::read_text(path, crate::input_file::RECORD_CAP).map_err(|error| {
            FingerprintError::Unreadable {
                path: path.to_path_buf(),
                error,
            }
        })?;
    crate::record::read_manifest(&text).map_err(|error| FingerprintError::Previous {
        path: path.to_path_buf(),
        error,
    })
}

/// Fingerprint the target (its base image name resolved when a cloud is at hand) and
/// decide: `plan` prints this, `build` acts on it.
pub(super) fn compute(
    session: &Session,
    target: &Target,
    force: bool,
    previous: Option<&Manifest>,
) -> Result<Record> {
    // A copy's fingerprint is its source's, looked up in the copy's own region.
    let Fingerprinted {
        base_image,
        manifest,
        fingerprint,
    } = session.fingerprint(target)?;
    let mut warnings: Vec<String> = target.shared_image_warning().into_iter().collect();
    let missing = session.missing_secrets();
    if !missing.is_empty() {
        warnings.push(format!(
            "worker config incomplete ({} unset): `validate` and `build` need them",
            missing.join(", ")
        ));
    }
    let lookup = match session.cloud_for(target)? {
        None => Lookup::Unavailable(format!(
            "no OpenStack credentials in the environment (to look, {CREDENTIAL_SOURCES})"
        )),
        Some(cloud) => match Glance::new(cloud)?.find_fingerprint(fingerprint.as_str())? {
            Some(image) => Lookup::Found {
                age: image_age(&image.created_at, std::time::SystemTime::now()),
                serving: lifecycle::serving(
                    image.property(lifecycle::STATUS_PROPERTY),
                    image.property(lifecycle::WITHDRAWN_AT_PROPERTY),
                ),
                image_id: image.id,
            },
            None => Lookup::Missing,
        },
    };
    let mut record = plan::decide(
        manifest,
        fingerprint,
        base_image,
        lookup,
        plan::Policy {
            force,
            max_age: session.max_age(target),
        },
        previous,
        session.pins.clone(),
        warnings,
    );
    if let Some(source) = &target.copy_of {
        record.target = target.name.clone();
        if record.builds() {
            record.reason = format!(
                "{} in this region: build copies target `{source}`'s image here",
                record.reason
            );
        }
    }
    Ok(record)
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

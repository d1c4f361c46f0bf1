//! `build --target COPY` for a `copy_of` target: plan (the source's fingerprint looked up
//! in the copy's region); unless a copy is there already, the source's image found in
//! the source's region (active; verified, when it carries a status), streamed into the
//! copy's Glance and checked (`openstack::image_copy`), then marked as a build marks its
//! image, plus `uworker_copied_from`, and a result record.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use thiserror::Error;

use super::build::{fingerprint_images, finish, mark_image, planned};
use super::Session;
use crate::definition::Target;
use crate::env::Env;
use crate::error_chain::Chain;
use crate::exit::{Code, Coded};
use crate::lifecycle::{Status, STATUS_PROPERTY};
use crate::openstack::glance::{Glance, Image};
use crate::openstack::image_copy::{self, Job, Limits};
use crate::record::{Action, RegionImage};
use crate::request;
use crate::run_marks::{
    self, DEADLINE_KEY, FINGERPRINT_PROPERTY, IMAGE_PROPERTY, RUN_ID_KEY, TARGET_PROPERTY,
};

/// The image property naming what a copy was copied from: `<image ID>@<region>`.
pub const COPIED_FROM_PROPERTY: &str = "uworker_copied_from";

/// A copy takes minutes, or an hour for a large image over a slow link.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// Why there is nothing to copy.
#[derive(Debug, Error)]
pub enum CopySourceError {
    #[error("{origin}: copy_of `{source_target}`: no active image of fingerprint {fingerprint} in {place}: build target `{source_target}` first (a copy job runs after its source's build job)")]
    Missing {
        origin: String,
        source_target: String,
        fingerprint: String,
        place: String,
    },
    #[error("{origin}: copy_of `{source_target}`: image {id} is {status}, and only a verified image is copied: verify it first (or build again)")]
    NotVerified {
        origin: String,
        source_target: String,
        id: String,
        status: String,
    },
}

impl Coded for CopySourceError {
    fn code(&self) -> Code {
        match self {
            CopySourceError::Missing { .. } | CopySourceError::NotVerified { .. } => Code::Failed,
        }
    }
}

/// `build` of a copy target.
pub fn run(
    session: &Session,
    target: &Target,
    request: &request::Build,
    env: &Env,
) -> Result<Code> {
    let source_target = session.source_of(target)?;
    let cloud = session.require_cloud_for(target, "build", "Glance in the copy's region")?;
    let source_cloud =
        session.require_cloud_for(source_target, "build", "Glance in the source's region")?;
    let (mut record, provenance, run_id) = planned(session, target, request, env)?;
    if record.action == Action::Skip {
        return finish(session, request, &record, Code::Ok, env, None);
    }

    let source_place = place_label(source_cloud.region());
    let source = source_image(
        session,
        target,
        source_target,
        source_cloud,
        &record.fingerprint,
    )?;
    let timeout = request.limits.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let (deadline, deadline_at) = (Instant::now() + timeout, SystemTime::now() + timeout);
    let definition = &session.definition.name;
    let mut properties: Vec<(String, String)> = target
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    properties.extend(
        [
            (IMAGE_PROPERTY, definition.as_str()),
            (TARGET_PROPERTY, target.name.as_str()),
            (RUN_ID_KEY, run_id.as_str()),
            (DEADLINE_KEY, &run_marks::stamp(deadline_at)),
            (
                "uworker_git_commit",
                provenance.git_commit.as_deref().unwrap_or(""),
            ),
            (
                "uworker_run_url",
                provenance.run_url.as_deref().unwrap_or(""),
            ),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let job = Job {
        source: source_cloud,
        image: &source,
        destination: cloud,
        name: image_name(definition, &target.name, SystemTime::now()),
        visibility: target.image_visibility.clone(),
        properties,
        tags: target.image_tags.clone(),
    };
    let redactor = session.redactor.clone();
    let quiet = session.quiet;
    let say: image_copy::Say = Arc::new(move |line: &str| {
        if !quiet {
            eprintln!("{}", redactor.redact(line));
        }
    });
    // A signal only raises the flag: the copy stops at its next read and deletes itself.
    let supervised = crate::interrupt::Supervised::begin();
    let copied = image_copy::copy(
        &job,
        &Limits::until(deadline),
        Arc::new(crate::interrupt::raised),
        say,
    );
    drop(supervised);
    let copy = match copied {
        Ok(copy) => copy,
        Err(error) => {
            record.reason = format!("copy failed: {}", Chain(&error));
            session.info(&format!("build: error: {}", Chain(&error)));
            return finish(session, request, &record, error.code(), env, None);
        }
    };
    let copied_from = format!("{}@{source_place}", source.id);
    // The same bytes: the source's status (verified, or none from an older tool) and SBOM.
    let image = mark_image(
        cloud,
        &copy.id,
        definition,
        target,
        &record.fingerprint,
        source.property(STATUS_PROPERTY).and_then(Status::parse),
        source.property(crate::sbom::SHA256_PROPERTY),
    )?;
    let image = Glance::new(cloud)?
        .set_properties(&image.id, &[(COPIED_FROM_PROPERTY, copied_from.as_str())])?;
    record.attempts = 0;
    record.built = Some(true);
    record.image_id = Some(image.id.clone());
    record.image_name = image.name.clone();
    record.reason = format!(
        "copied from {copied_from} into {} as {}: the same bytes (os_hash_value and size checked)",
        place_label(cloud.region()),
        image.id
    );
    record.image_age_seconds = None;
    record.fingerprint_images = fingerprint_images(session, cloud, &record, &image);
    record.region_images = region_images(session, source_target, &source, target, &image, &record);
    finish(session, request, &record, Code::Ok, env, None)
}

/// The fingerprint's image in each region its targets name: the source's (the one
/// copied), this copy, and each other copy of the source that is there by now (the
/// fingerprint's release lists them all). A lookup that fails costs its line, never the
/// record.
fn region_images(
    session: &Session,
    source_target: &Target,
    source: &Image,
    target: &Target,
    copy: &Image,
    record: &crate::record::Record,
) -> Vec<RegionImage> {
    let mut images = Vec::new();
    // The source first, then its copies by name.
    let of_source = std::iter::once(source_target).chain(
        session
            .definition
            .targets
            .values()
            .filter(|t| t.copy_of.as_deref() == Some(&source_target.name)),
    );
    for t in of_source {
        let cloud = match session.cloud_for(t) {
            Ok(Some(cloud)) => cloud,
            _ => continue,
        };
        let found = if t.name == source_target.name {
            Some(source.id.clone())
        } else if t.name == target.name {
            Some(copy.id.clone())
        } else {
            let listed = Glance::new(cloud).and_then(|g| {
                g.list_owned(&[
                    (FINGERPRINT_PROPERTY, record.fingerprint.as_str()),
                    (TARGET_PROPERTY, t.name.as_str()),
                    ("status", "active"),
                ])
            });
            match listed {
                Ok(found) => found.into_iter().next().map(|i| i.id),
                Err(e) => {
                    session.info(&format!(
                        "build: warning: looking for target `{}`'s copy failed ({}); the record does not list it",
                        t.name,
                        Chain(&e)
                    ));
                    None
                }
            }
        };
        images.extend(found.map(|image_id| RegionImage {
            target: t.name.clone(),
            region: cloud.region().map(str::to_string),
            image_id,
        }));
    }
    images
}

/// `region R`, or the cloud's own.
fn place_label(region: Option<&str>) -> String {
    region.unwrap_or("default-region").to_string()
}

/// The source's image of `fingerprint` in the source's region: the newest verified one;
/// else the newest without a status (an older tool's), with a warning; else refused.
fn source_image(
    session: &Session,
    target: &Target,
    source_target: &Target,
    cloud: &crate::openstack::client::Cloud,
    fingerprint: &crate::record::Fingerprint,
) -> Result<Image> {
    let images = Glance::new(cloud)?.list_owned(&[
        (FINGERPRINT_PROPERTY, fingerprint.as_str()),
        ("status", "active"),
    ])?;
    let status = |i: &Image| i.property(STATUS_PROPERTY).map(str::to_string);
    let origin = session.target_origin(target);
    if let Some(verified) = images
        .iter()
        .find(|i| status(i).as_deref() == Some(Status::Verified.as_str()))
    {
        return Ok(verified.clone());
    }
    if let Some(unmarked) = images.iter().find(|i| status(i).is_none()) {
        session.info(&format!(
            "build: warning: image {} of `{}` carries no {STATUS_PROPERTY} (made before images were verified): copied as it is",
            unmarked.id, source_target.name
        ));
        return Ok(unmarked.clone());
    }
    match images.first() {
        Some(image) => Err(CopySourceError::NotVerified {
            origin,
            source_target: source_target.name.clone(),
            id: image.id.clone(),
            status: status(image).unwrap_or_default(),
        }
        .into()),
        None => Err(CopySourceError::Missing {
            origin,
            source_target: source_target.name.clone(),
            fingerprint: fingerprint.to_string(),
            place: place_label(cloud.region()),
        }
        .into()),
    }
}

/// `<definition>-<target>-<YYYYmmdd-HHMMSS>` (UTC), as packer names a build's image, so
/// `prune` and `sweep` see the copy as one of the definition's images.
fn image_name(definition: &str, target: &str, now: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    format!("{definition}-{target}-{}-{}", &digits[..8], &digits[8..14])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_named_as_packer_names_a_build() {
        let now = humantime::parse_rfc3339("2026-12-07T07:05:09Z").unwrap();
        assert_eq!(image_name("uw", "east", now), "uw-east-20261207-070509");
    }
}

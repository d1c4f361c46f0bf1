//! `promote IMAGE`: a verified or withdrawn image of the target (or, with `--adopt`, one
//! from before the lifecycle) becomes current: it is marked verified, then every verified
//! image newer than it is withdrawn, oldest first, so consumers see the old current image
//! until the last change and then this one. A candidate or failed image is refused.

use std::time::SystemTime;

use anyhow::Result;

use super::lifecycle::{check_reason, current_now, target_images, withdraw, Outcome, Shown};
use super::Session;
use crate::env::Env;
use crate::exit::Code;
use crate::lifecycle::{self, Status, PROMOTED_AT_PROPERTY, STATUS_PROPERTY};
use crate::openstack::glance::Glance;
use crate::request;
use crate::run_marks::stamp;

pub fn run(request: &request::Promote, env: &Env) -> Result<Code> {
    let session = Session::load(&request.load, env)?;
    let target = session.target(request.target.as_deref())?;
    check_reason(&session, request.reason.as_deref())?;
    let cloud = session.require_cloud_for(target, "promote", "Glance")?;
    let glance = Glance::new(cloud)?;
    let images = target_images(&session, &glance, target)?;
    let was_current = lifecycle::current(&images).map(Shown::from);
    let promotion = lifecycle::promote(&target.name, &images, &request.image, request.adopt)?;
    let image = promotion.image;
    let why = request
        .reason
        .clone()
        .unwrap_or_else(|| format!("superseded by the promotion of {}", image.id));
    let current = if request.dry_run {
        Some(Shown::from(image))
    } else {
        if promotion.was != Some(Status::Verified) {
            let at = stamp(SystemTime::now());
            glance.set_properties(
                &image.id,
                &[
                    (STATUS_PROPERTY, Status::Verified.as_str()),
                    (PROMOTED_AT_PROPERTY, at.as_str()),
                ],
            )?;
        }
        for newer in &promotion.withdraw {
            withdraw(&glance, &newer.id, Some(&why), env)?;
        }
        current_now(&session, cloud, target)?
    };
    if promotion.is_noop() {
        session.info(&format!(
            "promote: {} is already the current image of target {}: nothing changed",
            image.id, target.name
        ));
    }
    if !request.dry_run && current.as_ref().map(|c| c.id.as_str()) != Some(&image.id) {
        session.info(&format!(
            "promote: warning: the current image is not {} as expected: another run changed \
             the target's images meanwhile",
            image.id
        ));
    }
    Outcome {
        command: "promote",
        target: target.name.clone(),
        dry_run: request.dry_run,
        was_current,
        promoted: Some(Shown::from(image)),
        withdrawn: promotion
            .withdraw
            .iter()
            .copied()
            .map(Shown::from)
            .collect(),
        current,
        reason: request.reason.clone(),
    }
    .print(&session, request.output, env)?;
    Ok(Code::Ok)
}

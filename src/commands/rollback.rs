//! `rollback`: the target's current image (its newest verified) is marked withdrawn, so
//! the previous verified image is current again for whoever asks Glance; refused when
//! there is no previous verified image to return to.

use anyhow::Result;

use super::lifecycle::{check_reason, current_now, target_images, withdraw, Outcome, Shown};
use super::Session;
use crate::env::Env;
use crate::exit::Code;
use crate::lifecycle;
use crate::openstack::glance::Glance;
use crate::request;

pub fn run(request: &request::Rollback, env: &Env) -> Result<Code> {
    let session = Session::load(&request.load, env)?;
    let target = session.target(request.target.as_deref())?;
    check_reason(&session, request.reason.as_deref())?;
    let cloud = session.require_cloud_for(target, "rollback", "Glance")?;
    let glance = Glance::new(cloud)?;
    let images = target_images(&session, &glance, target)?;
    let rollback = lifecycle::rollback(&target.name, &images)?;
    let current = if request.dry_run {
        Some(Shown::from(rollback.to))
    } else {
        withdraw(
            &glance,
            &rollback.withdraw.id,
            request.reason.as_deref(),
            env,
        )?;
        current_now(&session, cloud, target)?
    };
    if !request.dry_run && current.as_ref().map(|c| c.id.as_str()) != Some(&rollback.to.id) {
        session.info(&format!(
            "rollback: warning: the current image is not {} as expected: another run changed \
             the target's images meanwhile",
            rollback.to.id
        ));
    }
    Outcome {
        command: "rollback",
        target: target.name.clone(),
        dry_run: request.dry_run,
        was_current: Some(Shown::from(rollback.withdraw)),
        promoted: None,
        withdrawn: vec![Shown::from(rollback.withdraw)],
        current,
        reason: request.reason.clone(),
    }
    .print(&session, request.output, env)?;
    Ok(Code::Ok)
}

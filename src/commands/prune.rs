//! `prune`: delete old images of this definition in Glance, keeping the newest N per
//! target; never a protected image, never the image of a target's current fingerprint,
//! never a target's current image nor the one a rollback returns to, never an image
//! another project owns (whatever properties it carries).

use std::collections::BTreeMap;

use anyhow::Result;

use super::{CommandError, Session};
use crate::definition::Target;
use crate::env::Env;
use crate::exit::Code;
use crate::lifecycle;
use crate::openstack::client::Cloud;
use crate::openstack::glance::Glance;
use crate::prune;
use crate::request::{self, Output};
use crate::run_marks::{FINGERPRINT_PROPERTY, TARGET_PROPERTY};

pub fn run(request: &request::Prune, env: &Env) -> Result<Code> {
    let session = Session::load(&request.load, env)?;
    let targets = session.targets(request.target.as_deref())?;
    let mut decisions = Vec::new();
    // Each cloud and region the targets name, its images and its targets' alone.
    for at in session.clouds_of(&targets) {
        let cloud = at.cloud?.ok_or(CommandError::NoCloudCredentials {
            command: "prune",
            needs: "Glance",
        })?;
        decisions.extend(prune_in(&session, cloud, &at.targets, request)?);
    }
    match request.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&decisions)?),
        Output::Text => {
            let verb = if request.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            for d in &decisions {
                let what = if d.delete { verb } else { "keep" };
                println!(
                    "{what:<12} {} {} ({}, {}): {}",
                    d.id, d.name, d.target, d.created_at, d.reason
                );
            }
            let n = decisions.iter().filter(|d| d.delete).count();
            println!("{n} image(s) {verb}, {} kept", decisions.len() - n);
        }
    }
    Ok(Code::Ok)
}

/// Prunes `targets`' images in `cloud`'s Glance (their cloud and region).
fn prune_in(
    session: &Session,
    cloud: &Cloud,
    targets: &[&Target],
    request: &request::Prune,
) -> Result<Vec<prune::Decision>> {
    let mut current = BTreeMap::new();
    for target in targets {
        let fingerprinted = session.fingerprint(target)?;
        current.insert(target.name.clone(), fingerprinted.fingerprint.into());
    }
    let glance = Glance::new(cloud)?;
    let images: Vec<prune::Image> = glance
        .definition_images(&session.definition.name, None)?
        .into_iter()
        .filter_map(|i| {
            let target = i.property(TARGET_PROPERTY)?.to_string();
            current.contains_key(&target).then(|| prune::Image {
                target,
                fingerprint: i.property(FINGERPRINT_PROPERTY).map(str::to_string),
                lifecycle: i.property(lifecycle::STATUS_PROPERTY).map(str::to_string),
                id: i.id,
                name: i.name.unwrap_or_default(),
                status: i.status,
                created_at: i.created_at,
                protected: i.protected,
            })
        })
        .collect();
    let decisions = prune::decide(&images, request.keep, &current);
    for d in decisions.iter().filter(|d| d.delete && !request.dry_run) {
        glance.delete(&d.id)?;
    }
    Ok(decisions)
}

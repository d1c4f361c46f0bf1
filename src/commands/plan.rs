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
use crate::plan::{self, Lookup, Plan};

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
        return super::report::after_run(&json, env, &session.redactor);
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
) -> Result<Plan> {
    let base = session.resolve_base_image(target, cloud)?;
    let manifest = session.manifest(target, packer, base.as_deref())?;
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
        Some(cloud) => match Glance::new(cloud)?.find_fingerprint(&fingerprint)? {
            Some(image) => Lookup::Found { image_id: image.id },
            None => Lookup::Missing,
        },
    };
    Ok(plan::decide(
        manifest,
        fingerprint,
        lookup,
        force,
        previous,
        warnings,
    ))
}

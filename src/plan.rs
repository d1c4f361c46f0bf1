//! The decision: build or skip, and why (pure).

use serde::{Deserialize, Serialize};

use crate::fingerprint::{Changes, Manifest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Build,
    Skip,
}

/// What looking for an image with the fingerprint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The lookup could not run; the text says why.
    Unavailable(String),
    Found {
        image_id: String,
    },
    Missing,
}

/// The image a `source_image_name` resolved to, and whose it is: base images are often
/// another project's (public), so the plan and the record say which one was picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImageChoice {
    pub name: String,
    pub id: String,
    pub owner: Option<String>,
    pub visibility: Option<String>,
}

impl BaseImageChoice {
    /// `NAME = ID (owner PROJECT, VISIBILITY)`.
    pub fn describe(&self) -> String {
        format!(
            "{} = {} (owner {}, {})",
            self.name,
            self.id,
            self.owner.as_deref().unwrap_or("unknown"),
            self.visibility.as_deref().unwrap_or("visibility unknown")
        )
    }
}

/// One target's plan, as `plan --output json` prints it (and as `--previous` reads it back).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub action: Action,
    pub target: String,
    pub fingerprint: String,
    pub image_id: Option<String>,
    pub reason: String,
    /// The resolved `source_image_name`; null for an image ID or without a cloud.
    pub base_image: Option<BaseImageChoice>,
    /// Against `--previous`; null when there was nothing to compare with.
    pub changes: Option<Changes>,
    pub warnings: Vec<String>,
    pub manifest: Manifest,
}

/// The plan for `manifest`, whose `fingerprint` (as `Manifest::fingerprint` gives it) the
/// caller has already computed to look it up.
pub fn decide(
    manifest: Manifest,
    fingerprint: String,
    base_image: Option<BaseImageChoice>,
    lookup: Lookup,
    force: bool,
    previous: Option<&Manifest>,
    warnings: Vec<String>,
) -> Plan {
    let changes = previous.map(|p| Changes::between(p, &manifest));
    let (action, image_id, reason) = match (lookup, force) {
        (Lookup::Found { image_id }, true) => (
            Action::Build,
            None,
            format!("--force: rebuilding although image {image_id} has this fingerprint"),
        ),
        (Lookup::Found { image_id }, false) => (
            Action::Skip,
            Some(image_id.clone()),
            format!("image {image_id} already has this fingerprint"),
        ),
        (_, true) => (
            Action::Build,
            None,
            "--force: rebuilding on request".to_string(),
        ),
        (Lookup::Missing, false) => (
            Action::Build,
            None,
            "no image has this fingerprint yet".to_string(),
        ),
        (Lookup::Unavailable(why), false) => (
            Action::Build,
            None,
            format!("{why}: cannot look for an image with this fingerprint, so a build is planned"),
        ),
    };
    Plan {
        action,
        target: manifest.target.clone(),
        fingerprint,
        image_id,
        reason,
        base_image,
        changes,
        warnings,
        manifest,
    }
}

/// The plan for a person to read.
pub fn to_text(plan: &Plan, previous_label: Option<&str>) -> String {
    let action = match plan.action {
        Action::Build => "build",
        Action::Skip => "skip",
    };
    let mut out = format!(
        "target:      {}\nfingerprint: {}\naction:      {action}\nreason:      {}\n",
        plan.target, plan.fingerprint, plan.reason
    );
    if let Some(id) = &plan.image_id {
        out.push_str(&format!("image:       {id}\n"));
    }
    if let Some(base) = &plan.base_image {
        out.push_str(&format!("base image:  {}\n", base.describe()));
    }
    if let (Some(changes), Some(label)) = (&plan.changes, previous_label) {
        if changes.is_empty() {
            out.push_str(&format!("changes:     none against {label}\n"));
        } else {
            out.push_str(&format!("changes against {label}:\n"));
            for (word, names) in [
                ("added", &changes.added),
                ("removed", &changes.removed),
                ("changed", &changes.changed),
            ] {
                for name in names {
                    out.push_str(&format!("  {word:<8} {name}\n"));
                }
            }
        }
    }
    for warning in &plan.warnings {
        out.push_str(&format!("warning:     {warning}\n"));
    }
    out
}

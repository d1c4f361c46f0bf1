//! The result record of `build` (pure): what was decided, what was built, from which
//! inputs. Written with `--out FILE`, printed with `--output json`, read by `report`.

use serde::{Deserialize, Serialize};

use crate::fingerprint::{Changes, Manifest};
use crate::plan::{Action, BaseImageChoice, Plan};

/// Bumped when fields change meaning.
pub const RECORD_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub schema: u32,
    pub action: String,
    /// A new image was made by this run.
    pub built: bool,
    pub target: String,
    pub fingerprint: String,
    /// The image that serves this fingerprint: the new one, or the existing one skipped to.
    pub image_id: Option<String>,
    pub image_name: Option<String>,
    pub reason: String,
    /// The age of the newest image with this fingerprint when the run planned (Glance's
    /// `created_at`): the one skipped to, or the one `max_age` or `--force` rebuilds; null
    /// when there was none, and after a build (older records lack it).
    #[serde(default)]
    pub image_age_seconds: Option<u64>,
    /// Every active image of this project with this fingerprint, newest first: with
    /// `max_age`, one fingerprint gets a new image each time the newest gets too old.
    #[serde(default)]
    pub fingerprint_images: Vec<FingerprintImage>,
    /// The resolved `source_image_name`, with its owner and visibility (older records
    /// lack it).
    #[serde(default)]
    pub base_image: Option<BaseImageChoice>,
    pub changes: Option<Changes>,
    pub packer_version: String,
    pub git_commit: Option<String>,
    pub run_url: Option<String>,
    pub attempts: u32,
    pub manifest: Manifest,
}

/// One image built for a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerprintImage {
    pub id: String,
    pub name: Option<String>,
    /// Glance's `created_at` (RFC 3339).
    pub created_at: String,
}

/// Where and by what the run happened (from the CI environment).
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub git_commit: Option<String>,
    pub run_url: Option<String>,
    pub run_id: Option<String>,
}

impl Record {
    pub fn new(plan: &Plan, provenance: &Provenance) -> Record {
        Record {
            schema: RECORD_SCHEMA,
            action: match plan.action {
                Action::Build => "build".into(),
                Action::Skip => "skip".into(),
            },
            built: false,
            target: plan.target.clone(),
            fingerprint: plan.fingerprint.clone(),
            image_id: plan.image_id.clone(),
            image_name: None,
            reason: plan.reason.clone(),
            image_age_seconds: plan.image_age_seconds,
            fingerprint_images: Vec::new(),
            base_image: plan.base_image.clone(),
            changes: plan.changes.clone(),
            packer_version: plan.manifest.packer_version.clone(),
            git_commit: provenance.git_commit.clone(),
            run_url: provenance.run_url.clone(),
            attempts: 0,
            manifest: plan.manifest.clone(),
        }
    }
}

impl Provenance {
    /// GitHub Actions' variables: the commit, and a link to the run.
    pub fn from_env(env: &crate::env::Env) -> Provenance {
        let run_url = match (
            env.get("GITHUB_SERVER_URL"),
            env.get("GITHUB_REPOSITORY"),
            env.get("GITHUB_RUN_ID"),
        ) {
            (Some(server), Some(repo), Some(run)) => {
                Some(format!("{server}/{repo}/actions/runs/{run}"))
            }
            _ => None,
        };
        Provenance {
            git_commit: env.get("GITHUB_SHA").map(str::to_string),
            run_url,
            run_id: env.get("GITHUB_RUN_ID").map(str::to_string),
        }
    }
}

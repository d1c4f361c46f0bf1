//! The record of a run (pure): what `plan` decided and, in a build record, what `build`
//! made of it. One type for `plan --output json`/`--out`, `build --out`/`--output json`,
//! the release asset `image.json` and what `report --record` reads back;
//! `uworker-image schema` prints its JSON Schema.
//!
//! Compatibility: a record any earlier release wrote must keep reading. A new field gets
//! `#[serde(default)]`; a field that changes meaning bumps `RECORD_SCHEMA`.
//!
//! Reading one back (`read`, `read_manifest`), a record's `schema` is checked for what is
//! read of it. `report` reads the whole record and passes it on (outputs, comment, and
//! the release asset it uploads): a newer record is refused, since its fields may mean
//! what this release cannot tell and those it does not know would be dropped. `plan
//! --previous` and the latest release's baseline read only its manifest, to list what
//! changed: the manifest has its own `schema` (an input the comparison shows), so a record
//! a newer release wrote still serves, and one tool upgraded before another does not
//! stop `plan`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::fingerprint::Fingerprint;
use crate::fingerprint::{Changes, Manifest};

/// The image a `source_image_name` resolved to, and whose it is: base images are often
/// another project's (public), so the plan and the record say which one was picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// Bumped when fields change meaning.
pub const RECORD_SCHEMA: u32 = 1;

/// What the run does (or did) about the fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// No image serves the fingerprint (or it is too old, or `--force`): build one.
    Build,
    /// An image with this fingerprint serves it.
    Skip,
}

impl Action {
    /// As the JSON, the step output and the texts spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Build => "build",
            Action::Skip => "skip",
        }
    }
}

/// By hand, for an error that names the field: "action `deploy` is neither build nor skip".
impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
        let text = String::deserialize(deserializer)?;
        [Action::Build, Action::Skip]
            .into_iter()
            .find(|action| action.as_str() == text)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("action `{text}` is neither build nor skip"))
            })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan or build record. A plan record has no `built`, no image name and no
/// provenance: those are absent or default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Record {
    /// The record format (`RECORD_SCHEMA`); plan records of earlier releases lack it.
    #[serde(default = "first_schema")]
    pub schema: u32,
    pub action: Action,
    /// Build records only: true when this run made a new image, false when it skipped or
    /// failed. Absent in a plan record (nothing built, nothing failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built: Option<bool>,
    /// The target (a `[target.NAME]` of image.toml).
    pub target: String,
    pub fingerprint: Fingerprint,
    /// The image that serves this fingerprint: the new one, or the existing one skipped to.
    pub image_id: Option<String>,
    /// That image's name in Glance, when this run knows it (a build record's new image).
    #[serde(default)]
    pub image_name: Option<String>,
    /// Why this action, or what came of the build, in words.
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
    /// The images of this fingerprint by region: a copy's record names its source's and
    /// its own (older records lack it; empty when the run knows of one region only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub region_images: Vec<RegionImage>,
    /// The resolved `source_image_name`, with its owner and visibility; null for an
    /// image ID or without a cloud (older records lack it).
    #[serde(default)]
    pub base_image: Option<BaseImageChoice>,
    /// Against `--previous`; null when there was nothing to compare with.
    #[serde(default)]
    pub changes: Option<Changes>,
    /// What the plan found worth a look (build records of earlier releases lack them).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The manifest's `packer_version` (plan records of earlier releases lack it).
    #[serde(default)]
    pub packer_version: String,
    /// The commit the run built (GITHUB_SHA); null in a plan record.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// The GitHub Actions run; null in a plan record.
    #[serde(default)]
    pub run_url: Option<String>,
    /// Packer runs this build took; 0 when none ran (and in a plan record).
    #[serde(default)]
    pub attempts: u32,
    /// The remote inputs the plan pinned (a floating git ref, a requirement without `==`,
    /// a URL), each as written and as resolved; empty when nothing floated (and in records
    /// of earlier releases, or of the offline commands, which pin nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<InputPin>,
    /// The built image's verification in the cloud (docs/verify.md); absent when none ran
    /// (a plan, a skip, a failed build, `[verify] enabled = false`, older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// The built image's SBOM (a definition with `sbom = true`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<SbomFile>,
    /// Every input of the image; its SHA-256 is `fingerprint`.
    pub manifest: Manifest,
}

fn first_schema() -> u32 {
    1
}

/// Why a record's text cannot be used. The caller names the file in its own error
/// (`ReportError`), which gives the exit code.
#[derive(Debug, Error)]
pub enum Unusable {
    #[error(transparent)]
    Malformed(#[from] serde_json::Error),
    #[error("written by a newer uworker-image (record schema {schema}, this one reads up to {RECORD_SCHEMA})")]
    Newer { schema: u32 },
}

/// A whole plan or build record, as this or an earlier release wrote it; a newer one is
/// refused (see the module's notes).
pub fn read(text: &str) -> Result<Record, Unusable> {
    let record = Record::from_json(text)?;
    if record.schema > RECORD_SCHEMA {
        return Err(Unusable::Newer {
            schema: record.schema,
        });
    }
    Ok(record)
}

/// The manifest of a record of any schema, or a manifest file of its own (`fingerprint
/// --output json`'s `manifest`): what a comparison with an earlier run needs.
pub fn read_manifest(text: &str) -> Result<Manifest, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let manifest = match value.get("manifest") {
        Some(inner) => inner.clone(),
        None => value,
    };
    serde_json::from_value(manifest)
}

/// What kind of remote input a pin resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PinKind {
    /// A `git+http(s)://` URL: its ref resolved to the full commit.
    Git,
    /// A package requirement without `==`: the version an install takes now, and its
    /// artifact's sha256.
    Requirement,
    /// Any other http(s) URL: the sha256 of its content.
    Url,
}

impl PinKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PinKind::Git => "git",
            PinKind::Requirement => "requirement",
            PinKind::Url => "url",
        }
    }
}

/// One remote input the plan pinned. Every value is without URL credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InputPin {
    /// The variable (`worker_source`).
    pub input: String,
    pub kind: PinKind,
    /// The value as written (credentials left out).
    pub written: String,
    /// The pinned value, what the build installs (credentials left out).
    pub resolved: String,
    /// What floated: the git ref (`HEAD` for none), the version specifier, or `content`.
    pub floating: String,
    /// What it was pinned to: the full commit, `VERSION sha256:HEX`, or `sha256:HEX`.
    pub pinned: String,
    /// What `--previous` had pinned instead, when it differs (null: the same, or unknown).
    #[serde(default)]
    pub previous: Option<String>,
}

impl InputPin {
    /// How a pinned value reads in short: a commit's first 7 digits (`9e0d2b4`), a
    /// requirement's version, a content hash's first 12 digits.
    pub fn short(kind: PinKind, pinned: &str) -> String {
        match kind {
            PinKind::Git => pinned.chars().take(7).collect(),
            PinKind::Requirement => pinned.split(' ').next().unwrap_or(pinned).to_string(),
            PinKind::Url => pinned.chars().take("sha256:".len() + 12).collect(),
        }
    }

    /// `main → 9e0d2b4c…` (plan text): what floated and the start of what it is pinned to.
    pub fn arrow(&self) -> String {
        let pinned = match self.kind {
            PinKind::Git => format!("{}…", self.pinned.chars().take(8).collect::<String>()),
            PinKind::Requirement => match self.pinned.split_once(" sha256:") {
                Some((version, hash)) => format!(
                    "{version} (sha256 {}…)",
                    hash.chars().take(12).collect::<String>()
                ),
                None => self.pinned.clone(),
            },
            PinKind::Url => format!("{}…", InputPin::short(self.kind, &self.pinned)),
        };
        format!("{} → {pinned}", self.floating)
    }

    /// `a1b2c3d → 9e0d2b4`: what `--previous` had and what it is now, in short; None when
    /// it had the same, or nothing known.
    pub fn moved(&self) -> Option<String> {
        let previous = self.previous.as_deref()?;
        Some(format!(
            "{} → {}",
            InputPin::short(self.kind, previous),
            InputPin::short(self.kind, &self.pinned)
        ))
    }
}

/// One image built for a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FingerprintImage {
    pub id: String,
    pub name: Option<String>,
    /// Glance's `created_at` (RFC 3339).
    pub created_at: String,
}

/// How a verification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    /// Every check passed: the image is `verified`.
    Passed,
    /// A check failed (or the server never answered, or the deadline passed): `failed`.
    Failed,
    /// Stopped by a signal before it ended: the image stays a `candidate`.
    Interrupted,
}

/// The built image booted once in the target's cloud and checked (docs/verify.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Verification {
    pub status: VerificationStatus,
    /// The checks in the order they ran, up to the first that failed.
    pub checks: Vec<CheckOutcome>,
    /// The first check that failed; null when none did.
    #[serde(default)]
    pub failed_check: Option<String>,
    /// From the verification's start (its key pair) to the server's deletion.
    pub total_milliseconds: u64,
    /// The verification's server (deleted by now); null when none was made.
    #[serde(default)]
    pub server_id: Option<String>,
}

/// One check of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckOutcome {
    /// Its name (`ssh`, `cloud-init`, `worker-import`, ..., `extra:PATH`).
    pub name: String,
    pub ok: bool,
    pub milliseconds: u64,
    /// A failed check's output (redacted, its last lines); null for a check that passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// The SBOM a build brought back from the build server (CycloneDX JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SbomFile {
    /// Its file name, next to the record (`build --out`); the release asset is
    /// `sbom-<image ID>.cdx.json`.
    pub file: String,
    /// The SHA-256 of its bytes, also the image's Glance property `uworker_sbom_sha256`.
    pub sha256: String,
    /// How many packages of each kind it lists (`deb`, `pypi`, `kernel`, `worker`).
    pub packages: std::collections::BTreeMap<String, u64>,
}

/// The image of a fingerprint in one region: a build's, or a copy's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegionImage {
    /// The target it is the image of (a built one, or a `copy_of` one).
    pub target: String,
    /// Its region; null for the cloud's own.
    pub region: Option<String>,
    pub image_id: String,
}

/// Where and by what the run happened (from the CI environment).
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub git_commit: Option<String>,
    pub run_url: Option<String>,
    pub run_id: Option<String>,
}

impl Record {
    /// The plan record of `manifest`, before anything was built.
    pub fn plan(
        manifest: Manifest,
        fingerprint: Fingerprint,
        action: Action,
        reason: String,
    ) -> Record {
        Record {
            schema: RECORD_SCHEMA,
            action,
            built: None,
            target: manifest.target.clone(),
            fingerprint,
            image_id: None,
            image_name: None,
            reason,
            image_age_seconds: None,
            fingerprint_images: Vec::new(),
            region_images: Vec::new(),
            base_image: None,
            changes: None,
            warnings: Vec::new(),
            packer_version: manifest.packer_version.clone(),
            git_commit: None,
            run_url: None,
            attempts: 0,
            pins: Vec::new(),
            verification: None,
            sbom: None,
            manifest,
        }
    }

    /// The plan record made a build record: nothing built yet, with where the run happens.
    pub fn into_build(self, provenance: &Provenance) -> Record {
        Record {
            built: Some(false),
            git_commit: provenance.git_commit.clone(),
            run_url: provenance.run_url.clone(),
            ..self
        }
    }

    /// A record as `plan --output json` or `build --out` wrote it, in this or an earlier
    /// release.
    pub fn from_json(text: &str) -> Result<Record, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The planned or taken action will make (or has made) a new image.
    pub fn builds(&self) -> bool {
        self.action == Action::Build
    }

    /// A new image was made by this run.
    pub fn built(&self) -> bool {
        self.built == Some(true)
    }

    /// `build` tried and no image came of it (failed, timed out or interrupted).
    pub fn failed_build(&self) -> bool {
        self.builds() && self.built == Some(false)
    }
}

/// The record's JSON Schema (draft 2020-12), as `uworker-image schema` prints it.
pub fn json_schema() -> schemars::Schema {
    schemars::schema_for!(Record)
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

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN_0_1: &str = include_str!("../tests/fixtures/records/plan-0.1.json");
    const BUILD_0_1: &str = include_str!("../tests/fixtures/records/build-0.1.json");
    const BUILD_EARLY: &str = include_str!("../tests/fixtures/records/build-early.json");

    fn keys(json: &str) -> std::collections::BTreeSet<String> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        value.as_object().unwrap().keys().cloned().collect()
    }

    /// One reader, one rule: the whole record of a newer schema is refused (report would
    /// pass on fields it cannot tell), its manifest is read for a comparison.
    #[test]
    fn a_newer_record_is_refused_whole_and_serves_its_manifest() {
        let today = include_str!("../tests/fixtures/records/build-0.1.json");
        let record = read(today).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(today).unwrap();
        value["schema"] = 2.into();
        let newer = value.to_string();
        assert!(
            matches!(read(&newer), Err(Unusable::Newer { schema: 2 })),
            "{:?}",
            read(&newer).map(|r| r.schema)
        );
        assert_eq!(read_manifest(&newer).unwrap(), record.manifest);
        // A manifest on its own reads too; anything else is refused.
        let manifest = serde_json::to_string(&record.manifest).unwrap();
        assert_eq!(read_manifest(&manifest).unwrap(), record.manifest);
        assert!(read_manifest(r#"{"not": "a manifest"}"#).is_err());
        assert!(matches!(read("{}"), Err(Unusable::Malformed(_))));
    }

    #[test]
    fn records_of_earlier_releases_read_into_todays_type() {
        let plan = Record::from_json(PLAN_0_1).unwrap();
        assert_eq!(
            (plan.schema, plan.action, plan.built),
            (1, Action::Build, None)
        );
        assert!(!plan.built() && plan.builds() && !plan.failed_build());
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert_eq!(plan.packer_version, "", "a plan of 0.1 has none");
        assert_eq!(plan.fingerprint.short(), "bab1a43c44bc");

        let built = Record::from_json(BUILD_0_1).unwrap();
        assert_eq!(
            (built.action, built.built, built.attempts),
            (Action::Build, Some(true), 2)
        );
        assert!(built.built() && !built.failed_build());
        assert_eq!(built.fingerprint_images.len(), 2);
        assert_eq!(
            built.base_image.as_ref().map(|b| b.visibility.as_deref()),
            Some(Some("public"))
        );
        assert_eq!(built.changes.as_ref().map(|c| c.changed.len()), Some(2));
        assert_eq!(
            built.manifest.base_image.by,
            crate::fingerprint::BaseImageBy::Name
        );
        assert!(built.warnings.is_empty());

        let early = Record::from_json(BUILD_EARLY).unwrap();
        assert_eq!((early.action, early.built), (Action::Skip, Some(false)));
        assert!(!early.builds() && !early.failed_build());
        assert_eq!(early.image_age_seconds, None);
        assert!(early.fingerprint_images.is_empty() && early.base_image.is_none());
    }

    /// Written again, a record keeps every field name it had (consumers read them with
    /// jq); a build record gains only `warnings`, a plan record never gains `built`.
    #[test]
    fn records_written_again_keep_their_field_names() {
        let build = serde_json::to_string_pretty(&Record::from_json(BUILD_0_1).unwrap()).unwrap();
        let mut expected = keys(BUILD_0_1);
        expected.insert("warnings".into());
        assert_eq!(keys(&build), expected);

        let early = serde_json::to_string(&Record::from_json(BUILD_EARLY).unwrap()).unwrap();
        let mut expected = keys(BUILD_EARLY);
        expected.extend(
            [
                "warnings",
                "image_age_seconds",
                "fingerprint_images",
                "base_image",
            ]
            .map(String::from),
        );
        assert_eq!(keys(&early), expected);

        let plan = serde_json::to_string(&Record::from_json(PLAN_0_1).unwrap()).unwrap();
        let written = keys(&plan);
        for key in keys(PLAN_0_1) {
            assert!(written.contains(&key), "{key} lost: {plan}");
        }
        assert!(!written.contains("built"), "{plan}");
        // The same value comes back.
        assert_eq!(
            Record::from_json(&plan).unwrap(),
            Record::from_json(PLAN_0_1).unwrap()
        );
    }

    /// The manifest 0.1 wrote hashes to the fingerprint 0.1 gave it: the typed manifest
    /// (`base_image.by` an enum) serialises as it did, or every image would rebuild.
    #[test]
    fn a_manifest_of_0_1_hashes_to_its_recorded_fingerprint() {
        let plan = Record::from_json(PLAN_0_1).unwrap();
        assert_eq!(
            plan.manifest.base_image.by,
            crate::fingerprint::BaseImageBy::Name
        );
        assert_eq!(plan.manifest.fingerprint(), plan.fingerprint);
    }

    /// A plan made a build record has built nothing yet (so a build that stops there
    /// failed) and says where it ran; a plan record says neither.
    #[test]
    fn a_build_record_starts_unbuilt_with_the_runs_provenance() {
        let plan = Record::from_json(PLAN_0_1).unwrap();
        assert!(!plan.failed_build() && plan.git_commit.is_none());
        let provenance = Provenance {
            git_commit: Some("1111111111111111111111111111111111111111".into()),
            run_url: Some("https://github.com/o/r/actions/runs/7".into()),
            run_id: Some("7".into()),
        };
        let build = plan.clone().into_build(&provenance);
        assert_eq!(build.built, Some(false));
        assert!(build.failed_build() && !build.built());
        assert_eq!(build.git_commit, provenance.git_commit);
        assert_eq!(build.run_url, provenance.run_url);
        assert_eq!(
            (build.fingerprint, build.manifest, build.reason),
            (plan.fingerprint, plan.manifest, plan.reason)
        );
    }

    #[test]
    fn provenance_is_the_commit_and_a_link_to_the_run_when_actions_gives_all_three() {
        let env = |pairs: &[(&str, &str)]| {
            crate::env::Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        };
        let actions = env(&[
            ("GITHUB_SHA", "abc"),
            ("GITHUB_SERVER_URL", "https://github.example"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "42"),
        ]);
        let provenance = Provenance::from_env(&actions);
        assert_eq!(provenance.git_commit.as_deref(), Some("abc"));
        assert_eq!(
            provenance.run_url.as_deref(),
            Some("https://github.example/o/r/actions/runs/42")
        );
        assert_eq!(provenance.run_id.as_deref(), Some("42"));
        let local = Provenance::from_env(&env(&[("GITHUB_RUN_ID", "42")]));
        assert_eq!((local.git_commit, local.run_url), (None, None));
    }

    #[test]
    fn an_unknown_action_names_the_field_and_the_choices() {
        let text = PLAN_0_1.replace(r#""action":"build""#, r#""action":"deploy""#);
        assert_ne!(text, PLAN_0_1);
        let error = Record::from_json(&text).unwrap_err().to_string();
        assert!(
            error.starts_with("action `deploy` is neither build nor skip"),
            "{error}"
        );
    }

    /// `uworker-image schema` prints this; a change of the type shows here first.
    #[test]
    fn the_json_schema_is_reviewed() {
        let schema = serde_json::to_string_pretty(&json_schema()).unwrap();
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!("record_schema", schema));
    }
}

//! What a run reports (pure): the record read back, the GitHub outputs, the release tag
//! and the hidden markers that find a target's release and pull-request comment again.
//! The Markdown lives in `markdown`; talking to GitHub in `crate::github`.

pub mod markdown;

use thiserror::Error;

use crate::fingerprint::{Changes, Fingerprint, Manifest};
use crate::record::{Record, Unusable, RECORD_SCHEMA};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error(
        "cannot read the record {path} (pass the file `plan --output json` or `build --out` wrote)"
    )]
    Read {
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{path}: not a record of `plan --output json` or `build --out`")]
    Record {
        path: String,
        #[source]
        error: serde_json::Error,
    },
    #[error("GITHUB_TOKEN is not set: publishing a release needs it (`env: GITHUB_TOKEN: ${{ github.token }}`, `permissions: contents: write`)")]
    NoToken,
    #[error("{path}: written by a newer uworker-image (record schema {schema}, this one reads up to {RECORD_SCHEMA}); report it with that release")]
    NewerRecord { path: String, schema: u32 },
}

impl ReportError {
    /// `record::read`'s refusal of the record at `path`, naming the file.
    pub fn unusable(path: &str, cause: Unusable) -> ReportError {
        let path = path.to_string();
        match cause {
            Unusable::Malformed(error) => ReportError::Record { path, error },
            Unusable::Newer { schema } => ReportError::NewerRecord { path, schema },
        }
    }
}

impl crate::exit::Coded for ReportError {
    fn code(&self) -> crate::exit::Code {
        match self {
            ReportError::Read { .. }
            | ReportError::Record { .. }
            | ReportError::NoToken
            | ReportError::NewerRecord { .. } => crate::exit::Code::BadInput,
        }
    }
}

/// The asset a release carries: the build record, with the image's inputs manifest.
pub const RECORD_ASSET: &str = "image.json";

/// The release of a fingerprint: `image-` and its first 12 hex digits.
pub fn release_tag(fingerprint: &Fingerprint) -> String {
    format!("image-{}", fingerprint.short())
}

/// The hidden marker of a target's sticky comment and of its releases' bodies.
pub fn marker(target: &str) -> String {
    format!("<!-- uworker-image:{target} -->")
}

/// The result of the `validate` step, as the workflow passes it (a step's `outcome`:
/// `--validation` spells the values as GitHub does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Validation {
    #[value(name = "success")]
    Passed,
    #[value(name = "failure")]
    Failed,
    Cancelled,
    Skipped,
    /// Not passed to this report.
    #[value(skip)]
    Unknown,
}

/// What the inputs were compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// The manifest of the latest image release of the target (its tag); `pins` are the
    /// record's, each with what that release had pinned where it differs.
    Release {
        tag: String,
        changes: Changes,
        pins: Vec<crate::record::InputPin>,
    },
    /// The record's own comparison (`--previous`).
    Previous(Changes),
    /// No earlier image of this target to compare with.
    None,
    /// The comparison could not be made; the text says why.
    Unavailable(String),
}

impl Baseline {
    /// From the latest release's record, else the record's own `changes`.
    pub fn choose(record: &Record, latest: Option<(String, Manifest)>) -> Baseline {
        match (latest, &record.changes) {
            (Some((tag, manifest)), _) => Baseline::Release {
                tag,
                changes: Changes::between(&manifest, &record.manifest),
                pins: crate::pin::against_previous(record.pins.clone(), Some(&manifest)),
            },
            (None, Some(changes)) => Baseline::Previous(changes.clone()),
            (None, None) => Baseline::None,
        }
    }

    pub fn changes(&self) -> Option<&Changes> {
        match self {
            Baseline::Release { changes, .. } | Baseline::Previous(changes) => Some(changes),
            Baseline::None | Baseline::Unavailable(_) => None,
        }
    }
}

/// What the built image's packages were compared with: the SBOM of the image the target
/// had before (the same fingerprint's older image after a `max_age` rebuild, else the
/// latest release's image).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PackageBaseline {
    /// Nothing to compare: no SBOM in this record (a plan, a skip, no `sbom = true`).
    #[default]
    None,
    /// The SBOM of that image, by its ID.
    Image {
        image: String,
        diff: crate::sbom::Diff,
    },
    /// No SBOM of an earlier image to compare with; why (a note, never a failure).
    Unavailable(String),
}

/// Every changed input name, in the order added, removed, changed.
pub fn changed_names(changes: &Changes) -> Vec<&str> {
    changes
        .added
        .iter()
        .chain(&changes.removed)
        .chain(&changes.changed)
        .map(String::as_str)
        .collect()
}

/// The step outputs: `action` (build|skip), `built` (true|false), `fingerprint`,
/// `image_id` and `image_name` (of the image that serves the fingerprint, new or
/// existing; empty when none), `changed` (changed input names, comma-separated).
pub fn outputs(record: &Record, baseline: &Baseline) -> Vec<(&'static str, String)> {
    vec![
        ("action", record.action.to_string()),
        ("built", record.built().to_string()),
        ("fingerprint", record.fingerprint.to_string()),
        ("image_id", record.image_id.clone().unwrap_or_default()),
        ("image_name", record.image_name.clone().unwrap_or_default()),
        (
            "changed",
            baseline
                .changes()
                .map(|c| changed_names(c).join(","))
                .unwrap_or_default(),
        ),
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error_chain::Chain;

    /// A build record as `build --out` writes it.
    pub fn record_json(action: &str, built: bool, image: Option<&str>) -> String {
        let image_field = |v: Option<&str>| v.map(|s| format!("\"{s}\"")).unwrap_or("null".into());
        format!(
            r#"{{"schema":1,"action":"{action}","built":{built},"target":"north",
            "fingerprint":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "image_id":{id},"image_name":{name},"reason":"built in 1 attempt(s)","changes":null,
            "packer_version":"1.6.6","git_commit":"1111111111111111111111111111111111111111",
            "run_url":"https://github.com/o/r/actions/runs/9","attempts":1,
            "manifest":{manifest}}}"#,
            id = image_field(image),
            name = image_field(image.map(|_| "worker-north-0123456789ab")),
            manifest = manifest_json("scripts/install.sh", "aa"),
        )
    }

    /// The record `report` reads: `record::read`, its refusal naming the file.
    fn read_record(path: &str, text: &str) -> Result<Record, ReportError> {
        crate::record::read(text).map_err(|e| ReportError::unusable(path, e))
    }

    pub fn manifest_json(file: &str, digest: &str) -> String {
        format!(
            r#"{{"schema":1,"image":"worker","target":"north","template_sha256":"ff",
            "files":[{{"path":"{file}","executable":true,"sha256":"{digest}"}}],
            "variables":{{"worker_source":"uworker==1.0"}},"secrets":{{"UWORKER_JOB_API_PASSWORD":null}},
            "base_image":{{"by":"id","value":"base-1","resolved_id":"base-1"}},"packer_version":"1.6.6"}}"#
        )
    }

    #[test]
    fn reads_build_and_plan_records() {
        let built = read_record("r.json", &record_json("build", true, Some("img-1"))).unwrap();
        assert!(built.built() && built.builds() && !built.failed_build());
        let failed = read_record("f", &record_json("build", false, None)).unwrap();
        assert!(failed.failed_build());
        assert_eq!(
            built.image_name.as_deref(),
            Some("worker-north-0123456789ab")
        );
        let plan = format!(
            r#"{{"action":"skip","target":"north","fingerprint":"sha256:ab","image_id":"img-0",
            "reason":"image img-0 already has this fingerprint","changes":null,"warnings":["w"],
            "manifest":{}}}"#,
            manifest_json("a", "b")
        );
        let plan = read_record("p.json", &plan).unwrap();
        assert!(!plan.built() && !plan.builds() && !plan.failed_build());
        assert_eq!(plan.warnings, ["w"]);
        let error = read_record("x.json", r#"{"action":"build"}"#).unwrap_err();
        assert!(
            error.to_string().starts_with("x.json: not a record"),
            "{error}"
        );
        let error = read_record(
            "y.json",
            &record_json("build", false, None).replace("\"build\"", "\"deploy\""),
        )
        .unwrap_err();
        assert!(
            Chain(&error).to_string().contains("action `deploy`"),
            "{error}"
        );
    }

    #[test]
    fn tags_markers_and_outputs() {
        let tag = |text: &str| release_tag(&Fingerprint::from(text.to_string()));
        assert_eq!(tag("sha256:0123456789abcdef0123"), "image-0123456789ab");
        assert_eq!(tag("sha256:ééééééé"), "image-ééééééé");
        assert_eq!(tag("ab\u{1F600}cdefghijklmn"), "image-ab\u{1F600}cdefghijk");
        assert_eq!(marker("north"), "<!-- uworker-image:north -->");
        let record = read_record("r", &record_json("build", true, Some("img-1"))).unwrap();
        let older: Manifest = serde_json::from_str(&manifest_json("scripts/old.sh", "aa")).unwrap();
        let baseline = Baseline::choose(&record, Some(("image-old".into(), older)));
        let outputs = outputs(&record, &baseline);
        let get = |k: &str| {
            outputs
                .iter()
                .find(|(key, _)| *key == k)
                .unwrap()
                .1
                .as_str()
        };
        assert_eq!(get("action"), "build");
        assert_eq!(get("built"), "true");
        assert_eq!(get("image_id"), "img-1");
        assert_eq!(get("image_name"), "worker-north-0123456789ab");
        assert_eq!(
            get("changed"),
            "file scripts/install.sh,file scripts/old.sh"
        );
        assert_eq!(Baseline::choose(&record, None), Baseline::None);
    }

    #[test]
    fn a_record_of_a_newer_schema_is_refused_naming_the_file() {
        let today = record_json("build", true, Some("img"));
        assert!(read_record("image.json", &today).is_ok());
        let newer = today.replacen(r#""schema":1"#, r#""schema":2"#, 1);
        assert_ne!(newer, today);
        let error = read_record("image.json", &newer).unwrap_err();
        assert!(
            matches!(error, ReportError::NewerRecord { schema: 2, .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("image.json: written by a newer"),
            "{error}"
        );
    }
}

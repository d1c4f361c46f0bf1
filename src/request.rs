//! What a command is asked to do, as plain values: the command line (`cli`) converts its
//! flags into these at the boundary, so the commands never see clap's argument structs
//! (a few value enums derive clap's `ValueEnum`, so their spellings are written once).
//! `target` is `--target`: the one target, or for commands over several (prune, matrix,
//! sweep) all of them when None.

use std::path::PathBuf;
use std::time::Duration;

use crate::inputs::InputOptions;
use crate::report::Validation;

/// Output format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// What loading a definition and its inputs takes (every command but `report`).
#[derive(Debug)]
pub struct Load {
    pub dir: PathBuf,
    /// The var-file, `--var`s and the worker config file.
    pub inputs: InputOptions,
    pub openrc: Option<PathBuf>,
    pub packer: Option<PathBuf>,
    /// `--max-age`, over every target's own.
    pub max_age: Option<Duration>,
    pub quiet: bool,
}

/// How long and how often packer may run; None takes the command's default.
#[derive(Debug)]
pub struct RunLimits {
    pub timeout: Option<Duration>,
    pub attempts: Option<u32>,
    pub retry_delay: Duration,
    pub heartbeat: Duration,
}

/// A record the run writes and reports.
#[derive(Debug)]
pub struct RecordOut {
    /// `--out FILE`.
    pub file: Option<PathBuf>,
    /// Inside GitHub Actions, report (release, comment, outputs, summary).
    pub report: bool,
    /// The `validate` step's outcome, for that report.
    pub validation: Validation,
}

#[derive(Debug)]
pub struct Render {
    pub load: Load,
    pub out: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Validate {
    pub load: Load,
    pub output: Output,
    pub verbose: bool,
    pub without_secrets: bool,
    pub shellcheck: bool,
}

#[derive(Debug)]
pub struct Fingerprint {
    pub load: Load,
    pub target: Option<String>,
    pub output: Output,
    pub explain: bool,
}

#[derive(Debug)]
pub struct Plan {
    pub load: Load,
    pub target: Option<String>,
    pub output: Output,
    pub previous: Option<PathBuf>,
    pub force: bool,
    pub record: RecordOut,
}

#[derive(Debug)]
pub struct Test {
    pub load: Load,
    pub limits: RunLimits,
    /// `--sbom FILE`: where the test host's SBOM goes.
    pub sbom: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Build {
    pub load: Load,
    pub target: Option<String>,
    pub output: Output,
    pub limits: RunLimits,
    pub force: bool,
    pub previous: Option<PathBuf>,
    pub check_worker_credentials: bool,
    pub record: RecordOut,
}

#[derive(Debug)]
pub struct Prune {
    pub load: Load,
    pub target: Option<String>,
    pub output: Output,
    pub keep: usize,
    pub dry_run: bool,
}

/// `rollback`: the target's current image withdrawn, the previous verified one current.
#[derive(Debug)]
pub struct Rollback {
    pub load: Load,
    pub target: Option<String>,
    pub output: Output,
    pub reason: Option<String>,
    pub dry_run: bool,
}

/// `promote IMAGE`: that image current, every newer verified one withdrawn.
#[derive(Debug)]
pub struct Promote {
    pub load: Load,
    pub target: Option<String>,
    pub output: Output,
    /// Its ID or name.
    pub image: String,
    /// Accept an image without a status (built before the lifecycle).
    pub adopt: bool,
    pub reason: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug)]
pub struct Report {
    pub record: PathBuf,
    pub validation: Validation,
}

#[derive(Debug)]
pub struct Matrix {
    pub load: Load,
    pub target: Option<String>,
    pub needs_build: bool,
    /// Where the copy targets' matrix goes (their jobs run after the builds).
    pub copies_out: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Sweep {
    pub load: Load,
    pub target: Option<String>,
    pub output: Output,
    pub older_than: Option<Duration>,
    /// The build deadline the default `older_than` derives from.
    pub timeout: Option<Duration>,
    pub run: Option<String>,
    pub dry_run: bool,
}

/// `sbom-diff`: two SBOM files, older first.
#[derive(Debug)]
pub struct SbomDiff {
    /// For `image:ID`: the definition and target whose cloud holds the images.
    pub load: Load,
    pub target: Option<String>,
    pub old: SbomSource,
    pub new: SbomSource,
    pub output: Output,
}

/// Where `sbom-diff` reads an SBOM: a file, or an image's release asset (`image:ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SbomSource {
    File(PathBuf),
    Image(String),
}

impl SbomSource {
    /// `image:ID` names an image; anything else is a file.
    pub fn parse(arg: &std::ffi::OsStr) -> SbomSource {
        match arg.to_str().and_then(|a| a.strip_prefix("image:")) {
            Some(id) if !id.is_empty() => SbomSource::Image(id.to_string()),
            _ => SbomSource::File(PathBuf::from(arg)),
        }
    }
}

/// One invocation.
#[derive(Debug)]
pub enum Request {
    Render(Render),
    Validate(Validate),
    Fingerprint(Fingerprint),
    Plan(Plan),
    Test(Test),
    Build(Build),
    Prune(Prune),
    Rollback(Rollback),
    Promote(Promote),
    Report(Report),
    Matrix(Matrix),
    Sweep(Sweep),
    Schema,
    SbomDiff(SbomDiff),
}

//! The image definition: `provision/image.toml` and the files it names, loaded into a
//! validated model. Reading the file is the only I/O here; everything after is pure.

mod raw;
pub mod tree;

pub use raw::check_ip;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub const FILE_NAME: &str = "image.toml";

/// The worker config keys every definition requires unless it says otherwise.
pub const DEFAULT_REQUIRED_WORKER_KEYS: [&str; 3] = [
    "UWORKER_JOB_API_ROOT",
    "UWORKER_JOB_API_USERNAME",
    "UWORKER_JOB_API_PASSWORD",
];

/// The worker's command mode: both set, or neither (a worker with one of them stops at
/// once; `Session::check_worker_config` refuses it).
pub const COMMAND_MODE_PAIR: [&str; 2] = ["UWORKER_JOB_CMD", "UWORKER_JOB_API_PROJECT"];

/// The command mode's keys: passed on to the image whether the definition lists them or not.
pub const COMMAND_MODE_WORKER_KEYS: [&str; 4] = [
    COMMAND_MODE_PAIR[0],
    COMMAND_MODE_PAIR[1],
    "UWORKER_JOB_TYPE",
    "UWORKER_JOB_TIMEOUT",
];

/// Builder name of the test host (packer's null builder); no target may take it.
pub const TEST_BUILDER: &str = "test";

#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// Directory holding image.toml; step paths are relative to it.
    pub dir: PathBuf,
    pub name: String,
    /// Non-secret user variables with their default values.
    pub variables: BTreeMap<String, String>,
    /// Targets by name, in byte order of their names.
    pub targets: BTreeMap<String, Target>,
    pub steps: Vec<Step>,
    pub worker: WorkerKeys,
    pub test: TestSettings,
    /// Where a local `worker_source` was read from, once wired in (`crate::worker_source`:
    /// a run uploads its private copy instead); None otherwise.
    pub worker_source_dir: Option<PathBuf>,
    /// `[pins]`: how `plan` pins a requirement `worker_source` (crate::pin).
    pub pins: PinSettings,
    /// `[verify]`: how `build` verifies a built image in the cloud.
    pub verify: VerifySettings,
}

/// `[pins]`: the PEP 691 index a requirement is resolved against (None: PyPI's), and the
/// image's Python (`major.minor`; None: `crate::pin::DEFAULT_PYTHON`, Ubuntu 24.04's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinSettings {
    pub index_url: Option<String>,
    pub python: Option<String>,
}

/// A definition as `load` found it: the model, and every file its steps read as the walk
/// that checked the path rules found them (so the fingerprint need not walk again).
#[derive(Debug)]
pub struct Loaded {
    pub definition: Definition,
    /// In byte order of their paths, each once.
    pub files: Vec<tree::Found>,
}

/// Image visibilities that let other projects download the image.
pub const SHARED_VISIBILITIES: [&str; 3] = ["shared", "community", "public"];

#[derive(Debug, Clone, PartialEq)]
pub enum SourceImage {
    Id(String),
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    /// `copy_of`: the built target whose image this one copies into its own cloud and
    /// region (its build settings are the source's, so is its fingerprint); None: packer
    /// builds it.
    pub copy_of: Option<String>,
    pub source_image: SourceImage,
    /// Project IDs whose base images this target accepts; empty: any owner.
    pub trusted_base_owners: Vec<String>,
    /// An image with this target's fingerprint older than this is rebuilt; None: never.
    pub max_age: Option<std::time::Duration>,
    pub flavor: String,
    pub networks: Vec<String>,
    pub security_groups: Vec<String>,
    /// None: the seed's `openstack_free_floating_ip` variable supplies it.
    pub floating_ip: Option<String>,
    pub floating_ip_network: Option<String>,
    pub ssh_username: String,
    pub ssh_timeout: Option<String>,
    /// The clouds.yaml entry the target lives in; None: the environment's cloud.
    pub cloud: Option<String>,
    /// The region every call for this target goes to; None: the cloud's own.
    pub region: Option<String>,
    pub availability_zone: Option<String>,
    pub use_blockstorage_volume: Option<bool>,
    pub volume_size: Option<u32>,
    pub volume_type: Option<String>,
    pub image_visibility: Option<String>,
    /// The definition's consent to a shared, community or public image, which carries the
    /// worker's secrets (refused without it).
    pub allow_shared_image_with_secrets: bool,
    pub image_min_disk: Option<u32>,
    pub image_tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub config_drive: Option<bool>,
    /// Line of the `[target.NAME]` header, for error annotations.
    pub line: usize,
}

impl Target {
    /// Whether packer builds this target (a copy is copied, not built).
    pub fn is_built(&self) -> bool {
        self.copy_of.is_none()
    }

    /// The plan's warning for an image other projects can download (allowed only with
    /// `allow_shared_image_with_secrets = true`).
    pub fn shared_image_warning(&self) -> Option<String> {
        let visibility = self.image_visibility.as_deref()?;
        SHARED_VISIBILITIES.contains(&visibility).then(|| {
            format!(
                "image_visibility `{visibility}`: other projects can download this image and the worker password in it (allow_shared_image_with_secrets = true)"
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    Build,
    Test,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// A shell script, path relative to the definition directory.
    Script(String),
    Inline(Vec<String>),
    /// A file or directory upload; a source ending in `/` uploads the directory's content.
    Upload {
        source: String,
        destination: String,
    },
    /// Upload of a local `worker_source`'s copy: `source` is relative to the copy's
    /// directory (empty: the directory's content; else the package file's name).
    UploadWorkerSource {
        source: String,
        destination: String,
    },
    /// Upload of the worker config the tool generates from the worker secrets.
    WorkerConfig {
        destination: String,
    },
    /// The image's SBOM, written on the host by the tool's own script
    /// (`crate::sbom::HOST_SCRIPT`) and downloaded into the run's work directory.
    Sbom,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    pub environment: BTreeMap<String, String>,
    pub sudo: bool,
    pub only: Option<Only>,
    pub line: usize,
}

impl Step {
    /// Whether this step runs for the given builder (a target name or the test builder).
    pub fn runs_on(&self, builder: &str) -> bool {
        match self.only {
            None => true,
            Some(Only::Test) => builder == TEST_BUILDER,
            Some(Only::Build) => builder != TEST_BUILDER,
        }
    }

    /// The strings of this step that packer interpolates.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts: Vec<&str> = self.environment.values().map(String::as_str).collect();
        match &self.kind {
            StepKind::Inline(lines) => texts.extend(lines.iter().map(String::as_str)),
            StepKind::Upload { destination, .. }
            | StepKind::UploadWorkerSource { destination, .. }
            | StepKind::WorkerConfig { destination } => texts.push(destination),
            StepKind::Script(_) | StepKind::Sbom => {}
        }
        texts
    }

    /// Local paths this step reads, relative to the definition directory.
    pub fn local_sources(&self) -> Option<&str> {
        match &self.kind {
            StepKind::Script(path) => Some(path),
            StepKind::Upload { source, .. } => Some(source),
            StepKind::Inline(_)
            | StepKind::WorkerConfig { .. }
            | StepKind::UploadWorkerSource { .. }
            | StepKind::Sbom => None,
        }
    }

    /// Whether this step uploads the local `worker_source`.
    pub fn uploads_worker_source(&self) -> bool {
        matches!(self.kind, StepKind::UploadWorkerSource { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerKeys {
    pub required: Vec<String>,
    pub optional: Vec<String>,
    /// Further keys passed on to the image when set, without being template variables.
    pub pass_through: Vec<String>,
}

impl Default for WorkerKeys {
    fn default() -> Self {
        WorkerKeys {
            required: DEFAULT_REQUIRED_WORKER_KEYS.map(String::from).to_vec(),
            optional: Vec::new(),
            pass_through: Vec::new(),
        }
    }
}

impl WorkerKeys {
    /// Whether a worker value of `key` goes into the image: the definition lists it
    /// (`required`, `optional`, `pass_through`) or it is one of command mode's. Any other
    /// UWORKER_* variable is the runner's business, not the image's.
    pub fn passes_on(&self, key: &str) -> bool {
        COMMAND_MODE_WORKER_KEYS.contains(&key)
            || self
                .required
                .iter()
                .chain(&self.optional)
                .chain(&self.pass_through)
                .any(|k| k == key)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestSettings {
    pub ssh_username: String,
    pub ssh_timeout: String,
}

/// The verification's default deadline: a boot, cloud-init and the checks.
pub const DEFAULT_VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// `[verify]` of image.toml: whether and how `build` boots the built image once in the
/// target's cloud and checks it (docs/verify.md).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifySettings {
    pub enabled: bool,
    /// The verification's deadline: server, checks and clean-up.
    pub timeout: std::time::Duration,
    /// The definition's own check scripts, relative to its directory (fingerprinted).
    pub checks: Vec<String>,
    /// Let the worker run its real loop against `job_api_root` (a staging job service).
    pub start_worker: bool,
    pub job_api_root: Option<String>,
    /// Line of the `[verify]` table, for error annotations.
    pub line: usize,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            enabled: true,
            timeout: DEFAULT_VERIFY_TIMEOUT,
            checks: Vec::new(),
            start_worker: false,
            job_api_root: None,
            line: 1,
        }
    }
}

#[derive(Debug, Error)]
pub enum DefinitionError {
    #[error("cannot read {path} (pass the definition directory with --dir or UWORKER_IMAGE_DIR)")]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A file a step reads that is not there (or cannot be stat'ed).
    #[error("{path}:{line}: `{source_path}` cannot be read (paths are relative to {})", .dir.display())]
    StepFileMissing {
        path: PathBuf,
        line: usize,
        source_path: String,
        dir: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// A file or tree a step reads that the path rules refuse (a link out, a loop).
    #[error("{path}:{line}: `{source_path}`")]
    StepFileRefused {
        path: PathBuf,
        line: usize,
        source_path: String,
        /// Boxed: a TreeError holds three paths, and every Result of this type carries its size.
        #[source]
        error: Box<tree::TreeError>,
    },
}

impl crate::exit::Coded for DefinitionError {
    fn code(&self) -> crate::exit::Code {
        match self {
            DefinitionError::Read { .. }
            | DefinitionError::Parse { .. }
            | DefinitionError::Invalid { .. }
            | DefinitionError::StepFileMissing { .. }
            | DefinitionError::StepFileRefused { .. } => crate::exit::Code::BadInput,
        }
    }
}

impl DefinitionError {
    /// File and line for a CI annotation, when the error points into the definition.
    pub fn location(&self) -> Option<(&Path, Option<usize>)> {
        match self {
            DefinitionError::Read { .. } => None,
            DefinitionError::Parse { path, line, .. }
            | DefinitionError::Invalid { path, line, .. }
            | DefinitionError::StepFileMissing { path, line, .. }
            | DefinitionError::StepFileRefused { path, line, .. } => Some((path, Some(*line))),
        }
    }
}

impl Definition {
    /// Loads `DIR/image.toml` and checks everything that can be checked without secrets:
    /// keys, step shapes, names, and the path rules of every file the steps read: it
    /// exists, and neither it nor anything under it links out of DIR. Every command
    /// loads the definition this way, so none uploads a file from outside.
    pub fn load(dir: &Path) -> Result<Loaded, DefinitionError> {
        let path = dir.join(FILE_NAME);
        let text = crate::input_file::read_text(&path, crate::input_file::CONFIG_CAP).map_err(
            |error| DefinitionError::Read {
                path: path.clone(),
                error,
            },
        )?;
        let definition = Self::parse(&text, dir, &path)?;
        let files = definition.check_files(&path)?;
        Ok(Loaded { definition, files })
    }

    /// Parses definition text; `dir` is where step paths will be resolved, `path` names
    /// the file in errors.
    pub fn parse(text: &str, dir: &Path, path: &Path) -> Result<Definition, DefinitionError> {
        raw::parse(text, dir, path)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Whether the definition has the tool's SBOM step (`sbom = true`).
    pub fn writes_sbom(&self) -> bool {
        self.steps.iter().any(|s| s.kind == StepKind::Sbom)
    }

    /// Every worker key the definition names: required first, then optional.
    pub fn declared_worker_keys(&self) -> impl Iterator<Item = &str> {
        self.worker
            .required
            .iter()
            .chain(&self.worker.optional)
            .map(String::as_str)
    }

    /// The target a single-target command works on: the named one, or the only one.
    pub fn select_target(&self, name: Option<&str>) -> Result<&Target, DefinitionError> {
        let invalid = |message: String| DefinitionError::Invalid {
            path: self.path(),
            line: 1,
            message,
        };
        let names = || self.targets.keys().cloned().collect::<Vec<_>>().join(", ");
        match name {
            Some(name) => self.targets.get(name).ok_or_else(|| {
                invalid(format!(
                    "no target named `{name}`; the definition has: {}",
                    names()
                ))
            }),
            None if self.targets.len() == 1 => Ok(self.targets.values().next().expect("one")),
            None => Err(invalid(format!(
                "the definition has {} targets ({}): choose one with --target (or UWORKER_IMAGE_TARGET)",
                self.targets.len(),
                names()
            ))),
        }
    }

    /// Checks every step path and walks them all: the files found.
    fn check_files(&self, path: &Path) -> Result<Vec<tree::Found>, DefinitionError> {
        let mut found = std::collections::BTreeMap::new();
        for step in &self.steps {
            let Some(source) = step.local_sources() else {
                continue;
            };
            let full = self.dir.join(source);
            let invalid = |message: String| DefinitionError::Invalid {
                path: path.to_path_buf(),
                line: step.line,
                message,
            };
            let meta =
                std::fs::metadata(&full).map_err(|error| DefinitionError::StepFileMissing {
                    path: path.to_path_buf(),
                    line: step.line,
                    source_path: source.to_string(),
                    dir: self.dir.clone(),
                    error,
                })?;
            if matches!(step.kind, StepKind::Script(_)) && !meta.is_file() {
                return Err(invalid(format!("script `{source}` is not a file")));
            }
            if source.ends_with('/') && !meta.is_dir() {
                return Err(invalid(format!(
                    "`{source}` ends with `/` but is not a directory"
                )));
            }
            // Step by step, so an error names its step's line.
            let files = tree::collect(&self.dir, &[source]).map_err(|error| {
                DefinitionError::StepFileRefused {
                    path: path.to_path_buf(),
                    line: step.line,
                    source_path: source.to_string(),
                    error: Box::new(error),
                }
            })?;
            found.extend(files.into_iter().map(|f| (f.rel.clone(), f)));
        }
        // The verification's own check scripts: the same rules as a step's script.
        for check in &self.verify.checks {
            let full = self.dir.join(check);
            let meta =
                std::fs::metadata(&full).map_err(|error| DefinitionError::StepFileMissing {
                    path: path.to_path_buf(),
                    line: self.verify.line,
                    source_path: check.clone(),
                    dir: self.dir.clone(),
                    error,
                })?;
            if !meta.is_file() {
                return Err(DefinitionError::Invalid {
                    path: path.to_path_buf(),
                    line: self.verify.line,
                    message: format!("[verify] check `{check}` is not a file"),
                });
            }
            let files = tree::collect(&self.dir, &[check.as_str()]).map_err(|error| {
                DefinitionError::StepFileRefused {
                    path: path.to_path_buf(),
                    line: self.verify.line,
                    source_path: check.clone(),
                    error: Box::new(error),
                }
            })?;
            found.extend(files.into_iter().map(|f| (f.rel.clone(), f)));
        }
        // In byte order of the paths, each once, as `tree::collect` gives them.
        Ok(found.into_values().collect())
    }
}

//! The commands: each loads what it needs, runs the pipeline stages in order and prints.

mod build;
mod completions;
mod fingerprint;
mod matrix;
pub(crate) mod plan;
mod prune;
mod render;
pub(crate) mod report;
mod schema;
mod sweep;
mod test;
mod validate;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use std::time::{Duration, Instant};

use crate::cli::{Cli, Command, Global, RunArgs};
use crate::definition::{Definition, SourceImage, Target};
use crate::env::Env;
use crate::exit::Code;
use crate::fingerprint::{files, Manifest, ManifestInputs};
use crate::inputs::{check_url, InputError, InputOptions, Inputs};
use crate::openstack::client::{Backoff, Cloud, OpenStackError};
use crate::openstack::credentials::Credentials;
use crate::openstack::glance::Glance;
use crate::openstack::{clouds, openrc};
use crate::packer::attempts::{Outcome, Retry};
use crate::packer::run::{BuildSpec, Printer, StopSignals};
use crate::packer::Packer;
use crate::plan::BaseImageChoice;
use crate::record::Provenance;
use crate::render::{self as template, Builders, VarKind};
use crate::secrets::Redactor;
use crate::vars;
use crate::workdir::{write_new, Workdir};
use crate::worker_source;

pub fn run(cli: &Cli, env: &Env) -> Result<Code> {
    match &cli.command {
        Command::Render(args) => render::run(&cli.global, args, env),
        Command::Validate(args) => validate::run(&cli.global, args, env),
        Command::Fingerprint(args) => fingerprint::run(&cli.global, args, env),
        Command::Plan(args) => plan::run(&cli.global, args, env),
        Command::Test(args) => test::run(&cli.global, args, env),
        Command::Prune(args) => prune::run(&cli.global, args, env),
        Command::Build(args) => build::run(&cli.global, args, env),
        Command::Report(args) => report::run(args, env),
        Command::Matrix(args) => matrix::run(&cli.global, args, env),
        Command::Sweep(args) => sweep::run(&cli.global, args, env),
        Command::Completions(args) => completions::print_completions(args.shell),
        Command::Man => completions::print_man_page(),
        Command::Schema => schema::run(),
    }
}

/// The loaded definition and inputs of one invocation.
pub struct Session {
    pub definition: Definition,
    pub inputs: Inputs,
    pub redactor: Redactor,
    pub quiet: bool,
    /// Where the tool may cache facts between runs (the packer version).
    pub cache_dir: Option<PathBuf>,
    /// OpenStack credentials from OS_*: none, a usable set, or why the set is unusable.
    credentials: Result<Option<Credentials>, String>,
    /// OS_CLOUD's clouds.yaml entry as OS_* variables, for packer.
    cloud_entry: Vec<(String, String)>,
    /// `--max-age`, over every target's own.
    max_age_override: Option<Duration>,
    /// The --openrc file's OS_* variables (the typed password among them), for packer.
    rc_file: Vec<(String, String)>,
}

impl Session {
    pub fn load(global: &Global, env: &Env) -> Result<Session> {
        let mut definition = Definition::load(&global.dir)?;
        // OS_CLOUD's clouds.yaml entry, as the OS_* variables it stands for, so the
        // credentials, the redactor and validate see one kind of cloud settings.
        // An --openrc file's settings go under the environment's, the password asked on
        // the terminal when the file asks for it; OS_CLOUD then resolves over both.
        let rc = openrc::resolve(
            global.openrc.as_deref(),
            env,
            crate::terminal::read_password,
        )?;
        let clouds = clouds::resolve(&rc.env)?;
        let env = &clouds.env;
        let options = InputOptions {
            var_file: global.var_file.clone(),
            vars: global.vars.clone(),
            worker_config: global.worker_config.clone(),
        };
        let mut inputs = Inputs::gather(&definition, &options, env)?;
        let redactor = Redactor::for_run_with(
            &inputs.worker,
            inputs.values.values().map(String::as_str),
            env,
        );
        wire_worker_source(&mut definition, &mut inputs)?;
        if crate::ci::in_actions(env) {
            crate::ci::mask_secrets(&redactor, env);
        }
        let cache_dir = env
            .get("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|home| Path::new(home).join(".cache")))
            .map(|dir| dir.join("uworker-image"));
        Ok(Session {
            definition,
            inputs,
            redactor,
            quiet: global.quiet,
            cache_dir,
            credentials: Credentials::from_env(env),
            cloud_entry: clouds.from_entry,
            max_age_override: global.max_age,
            rc_file: rc.from_file,
        })
    }

    /// How old an image of `target`'s fingerprint may be: `--max-age`, else the
    /// definition's `max_age`.
    pub fn max_age(&self, target: &Target) -> Option<Duration> {
        self.max_age_override.or(target.max_age)
    }

    /// A progress line on stderr (redacted), unless --quiet.
    pub fn info(&self, line: &str) {
        if !self.quiet {
            eprintln!("{}", self.redactor.redact(line));
        }
    }

    /// Required worker keys that have no value.
    pub fn missing_secrets(&self) -> Vec<&str> {
        self.inputs
            .worker
            .missing(self.definition.worker.required.iter().map(String::as_str))
    }

    /// Required worker values present (unless waived, as for fork pull requests) and
    /// shaped right. Values are never echoed: every worker value is a secret.
    pub fn check_worker_config(&self, without_secrets: bool) -> Result<()> {
        let missing = self.missing_secrets();
        if !missing.is_empty() && !without_secrets {
            bail!(InputError::Invalid {
                origin: "worker config".into(),
                key: missing.join(", "),
                message: "not set: export them, or put `export NAME=value` lines in the --worker-config file (fork pull requests: --without-secrets)".into(),
            });
        }
        let worker = &self.inputs.worker;
        // Command mode needs both; one alone would start a worker that stops at once.
        let command_mode = ["UWORKER_JOB_CMD", "UWORKER_JOB_API_PROJECT"];
        let unset = worker.missing(command_mode);
        if unset.len() == 1 {
            bail!(InputError::Invalid {
                origin: "worker config".into(),
                key: unset[0].into(),
                message: format!(
                    "not set, but {} is: command mode needs both (set neither for docker execution mode)",
                    command_mode.iter().find(|k| **k != unset[0]).expect("two keys")
                ),
            });
        }
        if let Some(root) = worker.get("UWORKER_JOB_API_ROOT") {
            check_url(root).map_err(|message| InputError::Invalid {
                origin: worker
                    .origin("UWORKER_JOB_API_ROOT")
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                key: "UWORKER_JOB_API_ROOT".into(),
                message,
            })?;
        }
        Ok(())
    }

    /// A Keystone session when credentials are present (one token per run).
    pub fn connect(&self) -> Result<Option<Cloud>> {
        match &self.credentials {
            Ok(None) => Ok(None),
            Ok(Some(credentials)) => Ok(Some(Cloud::connect(credentials, Backoff::default())?)),
            Err(why) => Err(OpenStackError::Config(why.clone()).into()),
        }
    }

    /// The image a `source_image_name` resolves to (newest active image of that name,
    /// whoever owns it), so a new base image changes the fingerprint; refused when the
    /// target lists `trusted_base_owners` and its owner is not among them. None for IDs or
    /// without a cloud.
    pub fn resolve_base_image(
        &self,
        target: &Target,
        cloud: Option<&Cloud>,
    ) -> Result<Option<BaseImageChoice>> {
        let (SourceImage::Name(name), Some(cloud)) = (&target.source_image, cloud) else {
            return Ok(None);
        };
        let origin = || {
            format!(
                "{} [target.{}]",
                self.definition.path().display(),
                target.name
            )
        };
        let Some(image) = Glance::new(cloud)?.resolve_name(name)? else {
            bail!(InputError::Invalid {
                origin: origin(),
                key: "source_image_name".into(),
                message: format!("no active image named `{name}` in Glance"),
            });
        };
        let choice = BaseImageChoice {
            name: name.clone(),
            id: image.id,
            owner: image.owner,
            visibility: image.visibility,
        };
        check_base_owner(target, &choice.owner).map_err(|why| InputError::Invalid {
            origin: origin(),
            key: "trusted_base_owners".into(),
            message: format!("`{name}` resolves to image {}, {why}", choice.id),
        })?;
        Ok(Some(choice))
    }

    /// The manifest of one target: files hashed while packer reports its version.
    pub fn manifest(
        &self,
        target: &Target,
        packer: &Packer,
        base_image: Option<&BaseImageChoice>,
    ) -> Result<Manifest> {
        let version_probe = packer.version_cached(self.cache_dir.as_deref())?;
        let found = crate::fingerprint::collect_files(&self.definition, target)?;
        let hashed = files::hash_all(&found)?;
        let packer_version = version_probe.wait()?;
        Ok(Manifest::build(
            &ManifestInputs {
                definition: &self.definition,
                target,
                values: &self.inputs.values,
                worker: &self.inputs.worker,
                fingerprint_key: self.inputs.fingerprint_key.as_ref(),
                packer_version: &packer_version,
                resolved_base_image: base_image.map(|b| b.id.as_str()),
            },
            hashed,
        ))
    }
}

/// Whether a base image of `owner` is acceptable to `target`: any owner when the target
/// lists no `trusted_base_owners`.
pub fn check_base_owner(target: &Target, owner: &Option<String>) -> Result<(), String> {
    let trusted = &target.trusted_base_owners;
    match owner {
        _ if trusted.is_empty() => Ok(()),
        Some(owner) if trusted.contains(owner) => Ok(()),
        Some(owner) => Err(format!(
            "owned by project {owner}, which is not in trusted_base_owners ({}): add it there if you trust it, or name another image",
            trusted.join(", ")
        )),
        None => Err(
            "of an owner Glance does not tell, so not one of trusted_base_owners".into(),
        ),
    }
}

/// A local `worker_source` becomes an upload step whose content is fingerprinted.
fn wire_worker_source(definition: &mut Definition, inputs: &mut Inputs) -> Result<()> {
    let Some(value) = inputs.values.get(worker_source::VARIABLE) else {
        return Ok(());
    };
    let source =
        worker_source::classify(&definition.dir, value).map_err(|message| InputError::Invalid {
            origin: inputs.origins[worker_source::VARIABLE].clone(),
            key: worker_source::VARIABLE.into(),
            message,
        })?;
    worker_source::wire(definition, &mut inputs.values, &source);
    if let Some(path) = source.inside_path() {
        definition
            .walk_added(path)
            .map_err(|e| InputError::Invalid {
                origin: inputs.origins[worker_source::VARIABLE].clone(),
                key: worker_source::VARIABLE.into(),
                message: e.to_string(),
            })?;
    }
    Ok(())
}

/// Run-time facts for the var-file that are not inputs of the image.
#[derive(Debug, Default)]
pub struct RunFacts {
    pub worker_config_path: Option<PathBuf>,
    pub manifest_file: Option<PathBuf>,
    pub fingerprint: Option<String>,
    pub provenance: Provenance,
    /// The ID of the floating IP the seed's variable gives by address (packer takes IDs).
    pub floating_ip_id: Option<String>,
}

/// Values of every template variable for a run. Holds secrets: write it 0600 only.
pub fn var_file_json(session: &Session, facts: &RunFacts) -> Result<String> {
    let definition_dir = session
        .definition
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", session.definition.dir.display()))?;
    let path_text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let mut values = serde_json::Map::new();
    for var in template::template_variables(&session.definition) {
        let value = match (var.kind, var.name.as_str()) {
            // Worker keys map to lower-case variables; their values are secrets.
            (VarKind::Secret, name) => session
                .inputs
                .worker
                .get(&name.to_ascii_uppercase())
                .map(str::to_string),
            (_, vars::DEFINITION_DIR) => Some(definition_dir.display().to_string()),
            (_, vars::WORKER_SOURCE_DIR) => session
                .definition
                .worker_source_dir
                .as_ref()
                .map(|d| d.display().to_string()),
            (_, vars::WORKER_CONFIG_PATH) => path_text(&facts.worker_config_path),
            (_, vars::MANIFEST_FILE) => path_text(&facts.manifest_file),
            (_, vars::IMAGE_FINGERPRINT) => facts.fingerprint.clone(),
            (_, vars::GIT_COMMIT) => facts.provenance.git_commit.clone(),
            (_, vars::RUN_URL) => facts.provenance.run_url.clone(),
            (_, vars::RUN_ID) => facts.provenance.run_id.clone(),
            (_, vars::FLOATING_IP) if facts.floating_ip_id.is_some() => {
                facts.floating_ip_id.clone()
            }
            (_, vars::TEST_HOST) => session.inputs.test_host().map(|h| h.host),
            (_, vars::TEST_PORT) => session.inputs.test_host().map(|h| h.port.to_string()),
            // The whole value, URL credentials included (the template's default has none).
            (VarKind::Input, name) if session.inputs.get(name).is_none() => {
                session.definition.variables.get(name).cloned()
            }
            (_, name) => session.inputs.get(name).map(str::to_string),
        };
        values.insert(
            var.name,
            serde_json::Value::String(value.unwrap_or(var.default)),
        );
    }
    Ok(serde_json::to_string_pretty(&serde_json::Value::Object(
        values,
    ))?)
}

/// The files packer needs for a run over all builders: template, var-file and worker config.
pub struct Staged {
    pub workdir: Workdir,
    pub template: PathBuf,
    pub var_file: PathBuf,
}

/// Renders `builders` into a private work dir with the var-file; `run` adds the
/// fingerprint and provenance a build stamps on the image.
pub fn stage(session: &Session, builders: Builders, run: RunFacts) -> Result<Staged> {
    let workdir = Workdir::create().context("creating a private work directory")?;
    let text = template::to_text(&template::template(&session.definition, builders));
    let template_path = workdir.write_public("template.json", text.as_bytes())?;
    let worker_config_path = write_worker_config(session, workdir.path())?;
    let facts = RunFacts {
        worker_config_path,
        manifest_file: Some(workdir.path().join("packer-manifest.json")),
        ..run
    };
    let var_file =
        workdir.write_secret("variables.json", var_file_json(session, &facts)?.as_bytes())?;
    Ok(Staged {
        workdir,
        template: template_path,
        var_file,
    })
}

/// Writes the generated worker config (0600) into `dir`; None when there are no values.
pub fn write_worker_config(session: &Session, dir: &Path) -> Result<Option<PathBuf>> {
    use secrecy::ExposeSecret;
    if session.inputs.worker.is_empty() {
        return Ok(None);
    }
    let path = dir.join("uworker.conf");
    let content = session.inputs.worker.config_file();
    crate::workdir::write_new(&path, content.expose_secret().as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

/// How long packer may clean up after SIGINT/SIGTERM reached the tool.
pub const SIGNAL_GRACE: Duration = Duration::from_millis(9_000);

/// A command's defaults for running packer.
pub struct RunDefaults {
    pub timeout: Duration,
    pub attempts: u32,
    /// How long packer may clean up after the deadline (a cloud server takes a while).
    pub deadline_grace: Duration,
    /// The run talks to the cloud: packer gets the OS_* credentials (not for `test`).
    pub cloud: bool,
}

/// Runs packer on a staged template for one builder, printing its output redacted on
/// stderr; Ctrl-C, SIGTERM and the deadline interrupt it cleanly.
pub fn run_packer(
    session: &Session,
    packer: &Packer,
    staged: &Staged,
    only: &str,
    args: &RunArgs,
    defaults: &RunDefaults,
    env: &Env,
) -> Result<Outcome> {
    let spec = BuildSpec {
        template: staged.template.clone(),
        var_file: staged.var_file.clone(),
        only: only.to_string(),
        cwd: staged.workdir.path().to_path_buf(),
        deadline: Instant::now() + args.timeout.unwrap_or(defaults.timeout),
        heartbeat: args.heartbeat,
        deadline_grace: defaults.deadline_grace,
        // The runner SIGKILLs the step 10 s after its first SIGINT: packer's cleanup
        // (floating IP, server, key pair) gets as much of that as leaves the tool time to
        // end its group and exit first. (Its SIGTERM at 7.5 s changes nothing.)
        signal_grace: SIGNAL_GRACE,
        ci_groups: env.get("GITHUB_ACTIONS") == Some("true"),
        cloud: defaults.cloud,
    };
    let retry = Retry {
        attempts: args.attempts.unwrap_or(defaults.attempts),
        first_delay: args.retry_delay,
    };
    let manifest_file = staged.workdir.path().join("packer-manifest.json");
    let stop = StopSignals::install().context("installing signal handlers")?;
    let stderr = std::io::stderr();
    let mut printer = Printer::new(stderr.lock(), &session.redactor, spec.ci_groups);
    Ok(packer.build_with_retries(&spec, &manifest_file, &retry, &mut printer, &stop)?)
}

/// The exit code and a one-line verdict for an outcome that is not a success.
pub fn failure_verdict(outcome: &Outcome, what: &str, timeout: Duration) -> (Code, String) {
    match outcome {
        Outcome::Built { .. } => (Code::Ok, format!("{what}: ok")),
        Outcome::Failed {
            reason,
            transient,
            attempts,
        } => (
            if *transient {
                Code::External
            } else {
                Code::Failed
            },
            format!("{what}: FAILED after {attempts} attempt(s): {reason}"),
        ),
        Outcome::TimedOut { attempts } => (
            Code::Failed,
            format!(
                "{what}: FAILED: the deadline ({}) passed during attempt {attempts}",
                humantime::format_duration(timeout)
            ),
        ),
        Outcome::Interrupted => (Code::Interrupted, format!("{what}: interrupted")),
    }
}

/// A plan or build record (`--out FILE`), replacing an earlier one. It holds no secret
/// values (the manifest names secrets, never their values), so it is world-readable.
pub fn write_record(path: &Path, json: &str) -> Result<()> {
    let _ = std::fs::remove_file(path);
    write_new(path, format!("{json}\n").as_bytes(), 0o644)
        .with_context(|| format!("writing the record to {}", path.display()))?;
    Ok(())
}

impl Session {
    /// Packer (from --packer or PATH), with the cloud settings the tool itself uses.
    pub fn packer(&self, global: &Global) -> Result<Packer> {
        let packer = Packer::find(global.packer.as_deref())?;
        // The RC file's variables and the typed password reach packer through its
        // environment only, as the clouds.yaml entry's do.
        let set: Vec<(String, String)> = self
            .rc_file
            .iter()
            .chain(&self.cloud_entry)
            .cloned()
            .collect();
        let remove = if self.cloud_entry.is_empty() {
            vec![]
        } else {
            vec!["OS_CLOUD"]
        };
        Ok(if set.is_empty() {
            packer
        } else {
            packer.with_env(set, remove)
        })
    }
}

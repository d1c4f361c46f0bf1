//! The command line: flags (each also read from an environment variable) and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand};

mod causes;

use crate::commands;
use crate::env::Env;
use crate::exit::{self, Code};
use crate::inputs::InputOptions;
use crate::report::Validation;
use crate::request::{self, Output, Request};

#[derive(Debug, Parser)]
#[command(
    name = "uworker-image",
    version,
    about = "Build OpenStack worker images with Packer, CI-native: fingerprint the inputs, skip unchanged builds, report to GitHub.",
    after_help = exit::table()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The image definition directory (holding image.toml).
    #[arg(
        long,
        global = true,
        env = "UWORKER_IMAGE_DIR",
        default_value = "provision"
    )]
    pub dir: PathBuf,
    /// The target (a [target.NAME] of image.toml); needed when there are several.
    #[arg(long, global = true, env = "UWORKER_IMAGE_TARGET")]
    pub target: Option<String>,
    /// Output format on stdout.
    #[arg(long, global = true, env = "UWORKER_IMAGE_OUTPUT", value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// The seed's variables.json (openstack_free_floating_ip, uworker_config_file, test_host, test_ssh_key, test_ssh_username).
    #[arg(
        long,
        global = true,
        env = "UWORKER_IMAGE_VAR_FILE",
        value_name = "FILE"
    )]
    pub var_file: Option<PathBuf>,
    /// Set a variable (overrides the var-file); repeatable.
    #[arg(long = "var", global = true, value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// The worker config file of `export UWORKER_...=value` lines (as in the seed).
    #[arg(
        long,
        global = true,
        env = "UWORKER_IMAGE_WORKER_CONFIG",
        value_name = "FILE"
    )]
    pub worker_config: Option<PathBuf>,
    /// Rebuild when the image of the fingerprint is older than this (e.g. 30d), for its
    /// packages' security updates; overrides image.toml's `max_age`.
    #[arg(long, global = true, env = "UWORKER_IMAGE_MAX_AGE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_age: Option<std::time::Duration>,
    /// An OpenStack RC file from the dashboard (v3 or v2), read without running it: its
    /// OS_* values go under the environment's; when it asks for the password and
    /// OS_PASSWORD is not set, the password is asked on the terminal.
    #[arg(long, global = true, env = "UWORKER_IMAGE_OPENRC", value_name = "FILE")]
    pub openrc: Option<PathBuf>,
    /// The packer executable.
    #[arg(long, global = true, env = "UWORKER_IMAGE_PACKER", value_name = "PATH")]
    pub packer: Option<PathBuf>,
    /// More detail on stderr.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the Packer template that would run (secrets never inlined).
    Render(RenderArgs),
    /// Check the definition, the inputs and secrets, then `packer validate` and shellcheck.
    Validate(ValidateArgs),
    /// Print the fingerprint of a target's inputs.
    Fingerprint(FingerprintArgs),
    /// Say whether `build` would build, and why. The default main job.
    Plan(PlanArgs),
    /// Run the provisioning steps on a running test host (packer's null builder over SSH).
    Test(TestArgs),
    /// Plan, then build the target's image with packer unless one with this fingerprint exists.
    Build(BuildArgs),
    /// Delete old images of this definition in Glance, keeping the newest N per target
    /// (never the current image nor the one a rollback returns to).
    Prune(PruneArgs),
    /// Make the target's previous verified image current again: its current image (the
    /// newest verified) is marked withdrawn.
    Rollback(RollbackArgs),
    /// Make a verified or withdrawn image the target's current one: it is marked verified
    /// and every newer verified image withdrawn.
    Promote(PromoteArgs),
    /// Report a plan or build record to GitHub: a release (push to the default branch,
    /// dispatch) or a sticky pull-request comment, step outputs and the job summary.
    Report(ReportArgs),
    /// Print the targets as JSON for a GitHub Actions `strategy.matrix`: {"include":[{"target":...}]}.
    Matrix(MatrixArgs),
    /// Remove what dead runs of this definition left in the cloud: servers, their key
    /// pairs and floating IPs, packer's unused key pairs, images stuck unfinished.
    Sweep(SweepArgs),
    /// Print a shell completion script: bash, zsh or fish.
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `uworker-image man > uworker-image.1`.
    Man,
    /// Print the JSON Schema of the record that `plan --output json` and `build --out`
    /// write and `report --record` reads.
    Schema,
    /// Print what changed between two image SBOMs (CycloneDX JSON): packages added,
    /// removed, and changed from one version to another.
    SbomDiff(SbomDiffArgs),
}

#[derive(Debug, Args)]
pub struct SbomDiffArgs {
    /// The older image's SBOM: a file, or `image:ID` (its release asset, through the
    /// image's Glance properties; needs the cloud and GITHUB_TOKEN, GITHUB_REPOSITORY).
    pub old: PathBuf,
    /// The newer image's SBOM: a file, or `image:ID`.
    pub new: PathBuf,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Only what was created at least this long ago (e.g. 6h, 0s), whatever its run's
    /// deadline. Default: what each run's own deadline has passed. A run whose tool still
    /// renews its lease is never touched either way.
    #[arg(long, env = "UWORKER_IMAGE_SWEEP_OLDER_THAN", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// For leftovers without a deadline mark (made by releases before it): the build
    /// deadline (as `build --timeout`; default 4h) that, plus 5 minutes, they must be older than.
    #[arg(long, env = "UWORKER_IMAGE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Only what this GitHub run left (its run ID, `${{ github.run_id }}`; any attempt):
    /// the sweep after a failed or cancelled build. Say it only of a run that has ended:
    /// its lease no longer spares it.
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Only targets with no image of their fingerprint (the lookup `plan` does); without
    /// OpenStack credentials it cannot look, says so, and includes every target.
    #[arg(long, env = "UWORKER_IMAGE_NEEDS_BUILD")]
    pub needs_build: bool,
    /// Also write the `copy_of` targets' matrix ({"target":...,"copy_of":...}) to this
    /// file: the jobs that run after the builds, since a copy needs its source's image.
    /// Stdout lists the targets packer builds.
    #[arg(long, value_name = "FILE")]
    pub copies_out: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Build even when an image with this fingerprint exists (e.g. after a password rotation).
    #[arg(long, env = "UWORKER_IMAGE_FORCE")]
    pub force: bool,
    /// Write the result record (JSON) to FILE, for `report --record`.
    #[arg(long, env = "UWORKER_IMAGE_RECORD", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Before building, log in to the job service with the worker's credentials
    /// (GET <UWORKER_JOB_API_ROOT>/token).
    #[arg(long, env = "UWORKER_IMAGE_CHECK_WORKER_CREDENTIALS")]
    pub check_worker_credentials: bool,
    /// A manifest or record of an earlier run: the record lists what changed.
    #[arg(long, env = "UWORKER_IMAGE_PREVIOUS", value_name = "FILE")]
    pub previous: Option<PathBuf>,
    /// Inside GitHub Actions, do not report (release, comment, outputs, summary).
    #[arg(long, env = "UWORKER_IMAGE_NO_REPORT")]
    pub no_report: bool,
    #[command(flatten)]
    pub validation: ValidationArg,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The record: `plan --output json` or `build --output json` / `build --out FILE`.
    #[arg(long, env = "UWORKER_IMAGE_RECORD", value_name = "FILE")]
    pub record: PathBuf,
    #[command(flatten)]
    pub validation: ValidationArg,
}

/// The `validate` step's outcome, for the report of `report`, and of `plan` and `build`
/// inside Actions.
#[derive(Debug, Args)]
pub struct ValidationArg {
    /// The `validate` step's outcome (`steps.<id>.outcome`), for the report.
    #[arg(
        long,
        env = "UWORKER_IMAGE_VALIDATION",
        value_name = "OUTCOME",
        value_enum
    )]
    pub validation: Option<Validation>,
}

impl ValidationArg {
    fn outcome(self) -> Validation {
        self.validation.unwrap_or(Validation::Unknown)
    }
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// How many active images to keep per target.
    #[arg(long, env = "UWORKER_IMAGE_KEEP", default_value_t = 3)]
    pub keep: usize,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Why (kept in Glance as `uworker_withdrawn_reason` on the withdrawn image, at most
    /// 255 characters).
    #[arg(long, env = "UWORKER_IMAGE_REASON", value_name = "TEXT")]
    pub reason: Option<String>,
    /// Say what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The image: its ID or name (of this definition and target, in this project).
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Also promote an image without a `uworker_status` (built before the image
    /// lifecycle, never verified).
    #[arg(long)]
    pub adopt: bool,
    /// Why (kept in Glance as `uworker_withdrawn_reason` on the images it withdraws, at
    /// most 255 characters).
    #[arg(long, env = "UWORKER_IMAGE_REASON", value_name = "TEXT")]
    pub reason: Option<String>,
    /// Say what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// How long and how often packer may run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Deadline for the whole run, retries included (e.g. 90m, 4h).
    #[arg(long, env = "UWORKER_IMAGE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Attempts when a failure is transient (SSH timeout, cloud 5xx, No valid host).
    #[arg(long, env = "UWORKER_IMAGE_ATTEMPTS")]
    pub attempts: Option<u32>,
    /// Wait before the second attempt; doubled before each later one.
    #[arg(long, env = "UWORKER_IMAGE_RETRY_DELAY", value_parser = humantime::parse_duration, default_value = "30s")]
    pub retry_delay: std::time::Duration,
    /// Print a heartbeat line when packer has been quiet this long. `build` also renews
    /// its run's lease on the cloud server this often (a lease lasts three periods).
    #[arg(long, env = "UWORKER_IMAGE_HEARTBEAT", value_parser = humantime::parse_duration, default_value = "60s")]
    pub heartbeat: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Write the test host's SBOM (CycloneDX JSON) to FILE, when the definition has an
    /// `sbom = true` step.
    #[arg(long, value_name = "FILE")]
    pub sbom: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Write template.json, variables.json (0600) and the worker config (0600) into DIR
    /// instead of printing the template.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Do not require the worker secrets (fork pull requests have none).
    #[arg(long, env = "UWORKER_IMAGE_WITHOUT_SECRETS")]
    pub without_secrets: bool,
    /// Skip shellcheck even when it is installed.
    #[arg(long)]
    pub no_shellcheck: bool,
}

#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// List every input with its digest before the fingerprint.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A manifest or record of an earlier run (`fingerprint --output json`, `plan --output json`): list what changed.
    #[arg(long, env = "UWORKER_IMAGE_PREVIOUS", value_name = "FILE")]
    pub previous: Option<PathBuf>,
    /// Plan a build even when an image with this fingerprint exists.
    #[arg(long, env = "UWORKER_IMAGE_FORCE")]
    pub force: bool,
    /// Write the plan record (JSON, as `--output json` prints it) to FILE, for `report`.
    #[arg(long, env = "UWORKER_IMAGE_RECORD", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Inside GitHub Actions, do not report (release, comment, outputs, summary).
    #[arg(long, env = "UWORKER_IMAGE_NO_REPORT")]
    pub no_report: bool,
    #[command(flatten)]
    pub validation: ValidationArg,
}

impl Cli {
    /// What the command line asks for: the flags as the request the commands take, or
    /// text this module makes itself.
    pub fn into_asked(self) -> Asked {
        let Cli { global, command } = self;
        let load = request::Load {
            dir: global.dir,
            inputs: InputOptions {
                var_file: global.var_file,
                vars: global.vars,
                worker_config: global.worker_config,
            },
            openrc: global.openrc,
            packer: global.packer,
            max_age: global.max_age,
            quiet: global.quiet,
        };
        let (target, output, verbose) = (global.target, global.output, global.verbose);
        Asked::Command(Box::new(match command {
            Command::Render(args) => Request::Render(request::Render {
                load,
                out: args.out,
            }),
            Command::Validate(args) => Request::Validate(request::Validate {
                load,
                output,
                verbose,
                without_secrets: args.without_secrets,
                shellcheck: !args.no_shellcheck,
            }),
            Command::Fingerprint(args) => Request::Fingerprint(request::Fingerprint {
                load,
                target,
                output,
                explain: args.explain,
            }),
            Command::Plan(args) => Request::Plan(request::Plan {
                load,
                target,
                output,
                previous: args.previous,
                force: args.force,
                record: request::RecordOut {
                    file: args.out,
                    report: !args.no_report,
                    validation: args.validation.outcome(),
                },
            }),
            Command::Test(args) => Request::Test(request::Test {
                load,
                limits: args.run.into(),
                sbom: args.sbom,
            }),
            Command::Build(args) => Request::Build(request::Build {
                load,
                target,
                output,
                limits: args.run.into(),
                force: args.force,
                previous: args.previous,
                check_worker_credentials: args.check_worker_credentials,
                record: request::RecordOut {
                    file: args.out,
                    report: !args.no_report,
                    validation: args.validation.outcome(),
                },
            }),
            Command::Prune(args) => Request::Prune(request::Prune {
                load,
                target,
                output,
                keep: args.keep,
                dry_run: args.dry_run,
            }),
            Command::Rollback(args) => Request::Rollback(request::Rollback {
                load,
                target,
                output,
                reason: args.reason,
                dry_run: args.dry_run,
            }),
            Command::Promote(args) => Request::Promote(request::Promote {
                load,
                target,
                output,
                image: args.image,
                adopt: args.adopt,
                reason: args.reason,
                dry_run: args.dry_run,
            }),
            Command::Report(args) => Request::Report(request::Report {
                record: args.record,
                validation: args.validation.outcome(),
            }),
            Command::Matrix(args) => Request::Matrix(request::Matrix {
                load,
                target,
                needs_build: args.needs_build,
                copies_out: args.copies_out,
            }),
            Command::Sweep(args) => Request::Sweep(request::Sweep {
                load,
                target,
                output,
                older_than: args.older_than,
                timeout: args.timeout,
                run: args.run,
                dry_run: args.dry_run,
            }),
            Command::Schema => Request::Schema,
            Command::SbomDiff(args) => Request::SbomDiff(request::SbomDiff {
                load,
                target,
                old: request::SbomSource::parse(args.old.as_os_str()),
                new: request::SbomSource::parse(args.new.as_os_str()),
                output,
            }),
            Command::Completions(args) => return Asked::Text(Ok(completion_script(args.shell))),
            Command::Man => return Asked::Text(man_page()),
        }))
    }
}

impl From<RunArgs> for request::RunLimits {
    fn from(args: RunArgs) -> request::RunLimits {
        request::RunLimits {
            timeout: args.timeout,
            attempts: args.attempts,
            retry_delay: args.retry_delay,
            heartbeat: args.heartbeat,
        }
    }
}

pub fn main() -> ExitCode {
    // First of all: a cancel from here on removes the work directories and stops packer.
    if let Err(e) = crate::interrupt::install() {
        eprintln!("error: installing the SIGINT/SIGTERM handler: {e}");
        return Code::Failed.into();
    }
    // Work directories of earlier runs that were killed hold secrets.
    for dir in crate::workdir::remove_stale(&std::env::temp_dir()) {
        eprintln!(
            "uworker-image: removed {}, left by a run that was killed",
            dir.display()
        );
    }
    unset_empty_flag_variables();
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => Code::BadInput.into(),
            };
        }
    };
    let env = Env::from_process();
    // Packer runs in a work directory: a relative path means one from here.
    cli.global.packer = cli.global.packer.map(|p| absolute_if_a_path(&p));
    let outcome = match cli.into_asked() {
        Asked::Command(request) => commands::run(*request, &env),
        Asked::Text(text) => text.and_then(|text| commands::print(&text)),
    };
    match outcome {
        Ok(code) => code.into(),
        Err(error) => {
            // Each error keeps its cause in `#[source]`: the chain, once, `: `-joined.
            eprintln!("error: {error:#}");
            if crate::ci::in_actions(&env) {
                if let Some((path, line, message)) = causes::definition_line(&error) {
                    crate::ci::annotate(path, line, &message, &env);
                }
            }
            causes::classify(&error).into()
        }
    }
}

/// What the command line asks for: a command to run, or text this module makes itself.
pub enum Asked {
    Command(Box<Request>),
    /// `completions SHELL` and `man`: generated from the same clap definition as the
    /// parser, so they list every command and flag there is.
    Text(anyhow::Result<Vec<u8>>),
}

fn man_page() -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    Ok(page)
}

fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    // Into memory first: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name.clone(), &mut script);
    if shell == clap_complete::Shell::Bash {
        script = fix_bash_states(&String::from_utf8_lossy(&script), &name).into_bytes();
    }
    script
}

/// clap_complete's bash script spells a hyphenated program's state one way where it
/// sets it (`uworker__image__subcmd__plan`) and another in the `case` arms that use it
/// (`uworker__subcmd__image__subcmd__plan`), so nothing after a command completes
/// (clap-rs/clap#6421, open). Spell the arms as the loop does.
fn fix_bash_states(script: &str, name: &str) -> String {
    if !name.contains('-') {
        return script.to_string();
    }
    script.replace(&name.replace('-', "__subcmd__"), &name.replace('-', "__"))
}

/// A relative path with a directory part (`./packer`, `bin/packer`) made absolute
/// against the invocation's directory; a bare name stays one, for a PATH lookup.
fn absolute_if_a_path(path: &std::path::Path) -> PathBuf {
    if path.is_absolute() || path.components().count() < 2 {
        return path.to_path_buf();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// CI leaves unset inputs, variables and secrets empty (`UWORKER_IMAGE_TARGET: ${{
/// inputs.target }}`); clap would take an empty value as given and refuse it. Empty
/// means unset, as it does for everything else the tool reads (`Env::get`).
fn unset_empty_flag_variables() {
    for (key, value) in std::env::vars_os() {
        if value.is_empty()
            && key
                .to_str()
                .is_some_and(|k| k.starts_with(crate::vars::TOOL_ENV_PREFIX))
        {
            std::env::remove_var(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: &[&str]) -> Request {
        let cli = Cli::try_parse_from(std::iter::once("uworker-image").chain(args.iter().copied()))
            .unwrap();
        let Asked::Command(request) = cli.into_asked() else {
            panic!("not a command: {args:?}");
        };
        *request
    }

    /// The flags that say "not" become what the commands ask: shellcheck, report.
    #[test]
    fn flags_become_the_request_the_command_takes() {
        let Request::Validate(validate) = request(&["-v", "--output", "json", "validate"]) else {
            panic!("not validate");
        };
        assert!(validate.shellcheck && validate.verbose && !validate.without_secrets);
        assert_eq!(validate.output, Output::Json);
        let Request::Validate(validate) = request(&["validate", "--no-shellcheck"]) else {
            panic!("not validate");
        };
        assert!(!validate.shellcheck && !validate.verbose);

        let Request::Build(build) = request(&[
            "--target",
            "t",
            "--dir",
            "d",
            "--var",
            "a=b",
            "build",
            "--out",
            "r.json",
            "--no-report",
            "--attempts",
            "5",
            "--timeout",
            "2h",
        ]) else {
            panic!("not build");
        };
        assert_eq!(build.target.as_deref(), Some("t"));
        assert_eq!(build.load.dir, PathBuf::from("d"));
        assert_eq!(build.load.inputs.vars, ["a=b"]);
        assert_eq!(build.record.file, Some(PathBuf::from("r.json")));
        assert!(!build.record.report && !build.force);
        assert_eq!(build.limits.attempts, Some(5));
        assert_eq!(
            build.limits.timeout,
            Some(std::time::Duration::from_secs(7200))
        );

        let Request::Plan(plan) = request(&["plan", "--force"]) else {
            panic!("not plan");
        };
        assert!(plan.record.report && plan.force && plan.target.is_none());
        assert_eq!(plan.record.validation, Validation::Unknown);
        let Request::Plan(plan) = request(&["plan", "--validation", "cancelled"]) else {
            panic!("not plan");
        };
        assert_eq!(plan.record.validation, Validation::Cancelled);
        let Request::Rollback(rollback) = request(&[
            "--target",
            "t",
            "rollback",
            "--reason",
            "boot loops",
            "--dry-run",
        ]) else {
            panic!("not rollback");
        };
        assert_eq!(rollback.target.as_deref(), Some("t"));
        assert_eq!(rollback.reason.as_deref(), Some("boot loops"));
        assert!(rollback.dry_run);
        let Request::Promote(promote) = request(&["promote", "img-1", "--adopt"]) else {
            panic!("not promote");
        };
        assert_eq!(promote.image, "img-1");
        assert!(promote.adopt && !promote.dry_run && promote.reason.is_none());
        let Request::Report(report) =
            request(&["report", "--record", "r", "--validation", "failure"])
        else {
            panic!("not report");
        };
        assert_eq!(report.validation, Validation::Failed);
    }
}

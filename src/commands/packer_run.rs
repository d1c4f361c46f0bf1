//! Running packer for a command: one builder of a staged template, its output redacted
//! on stderr, retried and bounded by the deadline, stopped cleanly by a signal.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::stage::Staged;
use super::Session;
use crate::env::Env;
use crate::exit::Code;
use crate::interrupt;
use crate::packer::attempts::{Outcome, Retry};
use crate::packer::run::{BuildSpec, Printer};
use crate::packer::Packer;
use crate::request::RunLimits;

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

/// One packer run: the packer to run (with its cloud's settings), the builder, and when
/// the run started (its deadline counts from then).
pub struct PackerRun<'a> {
    pub packer: &'a Packer,
    pub only: &'a str,
    pub started: Instant,
}

/// Runs packer on a staged template for one builder, its output (redacted) going to
/// `out` (stderr, or what the caller reads as it passes); Ctrl-C, SIGTERM and the
/// deadline interrupt it cleanly.
pub fn run_packer<W: std::io::Write>(
    session: &Session,
    staged: &Staged,
    run: PackerRun,
    limits: &RunLimits,
    defaults: &RunDefaults,
    env: &Env,
    out: W,
) -> Result<Outcome> {
    let PackerRun {
        packer,
        only,
        started,
    } = run;
    let spec = BuildSpec {
        template: staged.template.clone(),
        var_file: staged.var_file.clone(),
        only: only.to_string(),
        cwd: staged.workdir.path().to_path_buf(),
        deadline: started + limits.timeout.unwrap_or(defaults.timeout),
        heartbeat: limits.heartbeat,
        deadline_grace: defaults.deadline_grace,
        // The runner SIGKILLs the step 10 s after its first SIGINT: packer's cleanup
        // (floating IP, server, key pair) gets as much of that as leaves the tool time to
        // end its group and exit first. (Its SIGTERM at 7.5 s changes nothing.)
        signal_grace: SIGNAL_GRACE,
        ci_groups: env.get("GITHUB_ACTIONS") == Some("true"),
        cloud: defaults.cloud,
    };
    let retry = Retry {
        attempts: limits.attempts.unwrap_or(defaults.attempts),
        first_delay: limits.retry_delay,
    };
    let manifest_file = staged.workdir.path().join("packer-manifest.json");
    // While packer runs, a signal only raises the flag (the handler is installed at the
    // start of every command): the run interrupts packer and waits for its cleanup.
    let _supervised = interrupt::Supervised::begin();
    let mut printer = Printer::new(out, &session.redactor, spec.ci_groups);
    Ok(packer.build_with_retries(
        &spec,
        &manifest_file,
        &retry,
        &mut printer,
        &interrupt::raised,
    )?)
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

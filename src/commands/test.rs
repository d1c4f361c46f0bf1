//! `test`: the definition's steps on a running test host through packer's null builder,
//! as the seed's `build_uworker_image.sh test` did.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{find_packer, stage, Session};
use crate::cli::{Global, TestArgs};
use crate::definition::TEST_BUILDER;
use crate::env::Env;
use crate::exit::Code;
use crate::inputs::InputError;
use crate::packer::attempts::{Outcome, Retry};
use crate::packer::run::{BuildSpec, Printer, StopSignals};
use crate::render::Builders;
use crate::vars;

/// A test host answers quickly or not at all; an hour bounds a hung provisioning step.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn run(global: &Global, args: &TestArgs, env: &Env) -> Result<Code> {
    let session = Session::load(global, env)?;
    let Some(host) = session.inputs.test_host() else {
        bail!(InputError::Invalid {
            origin: "test".into(),
            key: vars::TEST_HOST.into(),
            message: "not set: put \"test_host\": \"HOST[:PORT]\" in the --var-file, or pass --var test_host=HOST[:PORT]".into(),
        });
    };
    match session.inputs.get(vars::TEST_SSH_KEY) {
        None => bail!(InputError::Invalid {
            origin: "test".into(),
            key: vars::TEST_SSH_KEY.into(),
            message: "not set: the SSH private key for the test host (--var-file or --var test_ssh_key=PATH)".into(),
        }),
        Some(key) => {
            std::fs::metadata(key).map_err(|e| InputError::Invalid {
                origin: session.inputs.origins.get(vars::TEST_SSH_KEY).cloned().unwrap_or_default(),
                key: vars::TEST_SSH_KEY.into(),
                message: format!("cannot read {key}: {e}"),
            })?;
        }
    }
    session.check_worker_config(false)?;

    let packer = find_packer(global)?;
    let staged = stage(&session, Builders::Test)?;
    let manifest_file = staged.workdir.path().join("packer-manifest.json");
    let timeout = args.run.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let spec = BuildSpec {
        template: staged.template.clone(),
        var_file: staged.var_file.clone(),
        only: TEST_BUILDER.to_string(),
        cwd: staged.workdir.path().to_path_buf(),
        deadline: Instant::now() + timeout,
        heartbeat: args.run.heartbeat,
        deadline_grace: Duration::from_secs(30),
        signal_grace: Duration::from_secs(7),
        ci_groups: env.get("GITHUB_ACTIONS") == Some("true"),
    };
    let retry = Retry {
        attempts: args.run.attempts.unwrap_or(1),
        first_delay: args.run.retry_delay,
    };
    session.info(&format!(
        "test: provisioning {}:{} as {} (timeout {})",
        host.host,
        host.port,
        session
            .inputs
            .get(vars::TEST_SSH_USERNAME)
            .unwrap_or(&session.definition.test.ssh_username),
        humantime::format_duration(timeout)
    ));
    let stop = StopSignals::install().context("installing signal handlers")?;
    let stderr = std::io::stderr();
    let mut printer = Printer::new(stderr.lock(), &session.redactor, spec.ci_groups);
    let outcome = packer.build_with_retries(&spec, &manifest_file, &retry, &mut printer, &stop)?;
    drop(printer);
    drop(staged);

    let say = |line: String| println!("{}", session.redactor.redact(&line));
    Ok(match outcome {
        Outcome::Built { attempts, .. } => {
            say(format!(
                "test: ok, every step ran on {}:{} (attempts: {attempts})",
                host.host, host.port
            ));
            Code::Ok
        }
        Outcome::Failed {
            reason,
            transient,
            attempts,
        } => {
            say(format!(
                "test: FAILED after {attempts} attempt(s): {reason}"
            ));
            if transient {
                Code::External
            } else {
                Code::Failed
            }
        }
        Outcome::TimedOut { attempts } => {
            say(format!(
                "test: FAILED: the deadline ({}) passed during attempt {attempts}",
                humantime::format_duration(timeout)
            ));
            Code::Failed
        }
        Outcome::Interrupted => {
            say("test: interrupted".to_string());
            Code::Interrupted
        }
    })
}

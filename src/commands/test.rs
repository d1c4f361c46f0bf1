//! `test`: the definition's steps on a running test host through packer's null builder,
//! as the seed's `build_uworker_image.sh test` did.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use super::{failure_verdict, run_packer, stage, RunDefaults, RunFacts, Session};
use crate::cli::{Global, TestArgs};
use crate::definition::TEST_BUILDER;
use crate::env::Env;
use crate::exit::Code;
use crate::inputs::InputError;
use crate::packer::attempts::Outcome;
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
            // Packer reads it: a FIFO or a device there would hang the run.
            crate::input_file::check_regular(Path::new(key), crate::input_file::CONFIG_CAP).map_err(|e| InputError::Invalid {
                origin: session.inputs.origins.get(vars::TEST_SSH_KEY).cloned().unwrap_or_default(),
                key: vars::TEST_SSH_KEY.into(),
                message: format!("cannot read {key}: {e}"),
            })?;
        }
    }
    session.check_worker_config(false)?;

    let packer = session.packer(global)?;
    let staged = stage(&session, Builders::Test, RunFacts::default())?;
    let defaults = RunDefaults {
        timeout: DEFAULT_TIMEOUT,
        attempts: 1,
        deadline_grace: Duration::from_secs(30),
        // The null builder needs no cloud credentials: packer does not get them.
        cloud: false,
    };
    let timeout = args.run.timeout.unwrap_or(defaults.timeout);
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
    let outcome = run_packer(
        &session,
        &packer,
        &staged,
        TEST_BUILDER,
        &args.run,
        &defaults,
        env,
    )?;
    drop(staged);
    let (code, verdict) = match &outcome {
        Outcome::Built { attempts, .. } => (
            Code::Ok,
            format!(
                "test: ok, every step ran on {}:{} (attempts: {attempts})",
                host.host, host.port
            ),
        ),
        other => failure_verdict(other, "test", timeout),
    };
    println!("{}", session.redactor.redact(&verdict));
    Ok(code)
}

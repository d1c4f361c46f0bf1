//! `test`: the definition's steps on a running test host through packer's null builder,
//! as the seed's `build_uworker_image.sh test` did.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::packer_run::{failure_verdict, run_packer, PackerRun, RunDefaults};
use super::stage::{downloaded_sbom, stage, write_sbom, RunFacts};
use super::{CommandError, Session};
use crate::definition::TEST_BUILDER;
use crate::env::Env;
use crate::exit::Code;
use crate::packer::attempts::Outcome;
use crate::render::Builders;
use crate::request;
use crate::vars;

/// A test host answers quickly or not at all; an hour bounds a hung provisioning step.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn run(request: &request::Test, env: &Env) -> Result<Code> {
    let session = Session::load(&request.load, env)?;
    let host = session.inputs.test_host().ok_or(CommandError::NoTestHost)?;
    let key = session
        .inputs
        .get(vars::TEST_SSH_KEY)
        .ok_or(CommandError::NoTestSshKey)?;
    // Packer reads it: a FIFO or a device there would hang the run.
    crate::input_file::check_regular(Path::new(key), crate::input_file::CONFIG_CAP).map_err(
        |error| CommandError::TestSshKeyUnreadable {
            origin: session
                .inputs
                .origins
                .get(vars::TEST_SSH_KEY)
                .cloned()
                .unwrap_or_default(),
            path: key.to_string(),
            error,
        },
    )?;
    session.check_worker_config(false)?;
    session.packer()?;
    let staged = stage(&session, Builders::Test, RunFacts::default())?;
    let defaults = RunDefaults {
        timeout: DEFAULT_TIMEOUT,
        attempts: 1,
        deadline_grace: Duration::from_secs(30),
        // The null builder needs no cloud credentials: packer does not get them.
        cloud: false,
    };
    let timeout = request.limits.timeout.unwrap_or(defaults.timeout);
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
        &staged,
        PackerRun {
            packer: session.packer()?,
            only: TEST_BUILDER,
            started: Instant::now(),
        },
        &request.limits,
        &defaults,
        env,
        std::io::stderr().lock(),
    )?;
    let sbom = downloaded_sbom(&staged);
    drop(staged);
    let (code, verdict) = match &outcome {
        Outcome::Built { attempts, .. } => {
            if let Some(sbom) = sbom {
                keep_sbom(&session, sbom?, request.sbom.as_deref())?;
            }
            (
                Code::Ok,
                format!(
                    "test: ok, every step ran on {}:{} (attempts: {attempts})",
                    host.host, host.port
                ),
            )
        }
        other => failure_verdict(other, "test", timeout),
    };
    println!("{}", session.redactor.redact(&verdict));
    Ok(code)
}

/// The test host's SBOM: its packages by kind, and the file `--sbom FILE` asks for.
fn keep_sbom(session: &Session, sbom: super::stage::Sbom, out: Option<&Path>) -> Result<()> {
    let counts: Vec<String> = sbom
        .file
        .packages
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect();
    let place = match out {
        Some(out) => {
            let file = super::stage::Sbom {
                file: crate::record::SbomFile {
                    file: out
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| crate::sbom::FILE_NAME.to_string()),
                    ..sbom.file
                },
                ..sbom
            };
            format!("written to {}", write_sbom(out, &file)?.display())
        }
        None => "not kept (--sbom FILE keeps it)".to_string(),
    };
    session.info(&format!("test: SBOM: {} ({place})", counts.join(", ")));
    Ok(())
}

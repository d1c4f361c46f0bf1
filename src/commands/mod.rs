//! The commands: each takes its request, loads what it needs into a `Session`, runs the
//! pipeline stages in order and prints. Shared parts: `session` (definition, inputs,
//! cloud, packer, fingerprint), `stage` (the files a run writes), `packer_run`.

mod build;
mod copy_build;
mod error;
mod fingerprint;
mod lifecycle;
mod matrix;
mod packer_run;
mod places;
pub(crate) mod plan;
mod promote;
mod prune;
mod render;
pub(crate) mod report;
mod rollback;
mod run_cloud;
mod sbom_diff;
mod schema;
mod session;
mod stage;
mod sweep;
mod test;
mod validate;
mod verification;

use std::io::Write;

use anyhow::{Context as _, Result};

pub use copy_build::CopySourceError;
pub use error::{CommandError, CREDENTIAL_SOURCES};
use session::Session;

use crate::env::Env;
use crate::exit::Code;
use crate::request::Request;

pub fn run(request: Request, env: &Env) -> Result<Code> {
    match request {
        Request::Render(request) => render::run(&request, env),
        Request::Validate(request) => validate::run(&request, env),
        Request::Fingerprint(request) => fingerprint::run(&request, env),
        Request::Plan(request) => plan::run(&request, env),
        Request::Test(request) => test::run(&request, env),
        Request::Prune(request) => prune::run(&request, env),
        Request::Rollback(request) => rollback::run(&request, env),
        Request::Promote(request) => promote::run(&request, env),
        Request::Build(request) => build::run(&request, env),
        Request::Report(request) => report::run(&request, env),
        Request::Matrix(request) => matrix::run(&request, env),
        Request::Sweep(request) => sweep::run(&request, env),
        Request::Schema => schema::run(),
        Request::SbomDiff(request) => sbom_diff::run(&request, env),
    }
}

/// Writes to stdout; a reader that stopped early (`| head`) is not an error.
pub fn print(bytes: &[u8]) -> Result<Code> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(Code::Ok),
    }
}

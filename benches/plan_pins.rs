//! `plan`'s added time for pinning, against the test suite's loopback servers.
//!
//!     cargo bench --bench plan_pins [-- --runs 15]
//!
//! Runs `uworker-image plan` (the built binary, the packer stand-in, no cloud) on one
//! definition with three `worker_source` values and prints each one's median and spread
//! over --runs, and the median added to the first:
//!
//! - pinned as written (a full commit: nothing asked, the baseline);
//! - a git branch, pinned with the real `git ls-remote` against the git server on loopback
//!   (tests/services/common/git_server.rs: `git http-backend` behind HTTP);
//! - a requirement, pinned against the PEP 691 index on loopback
//!   (tests/services/common/package_index.rs).
//!
//! Needs git (as the service tier does).

#[path = "../tests/services/common/git_server.rs"]
#[allow(dead_code)]
mod git_server;
#[path = "../tests/services/common/loopback.rs"]
#[allow(dead_code)]
mod loopback;
#[path = "../tests/services/common/package_index.rs"]
#[allow(dead_code)]
mod package_index;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

fn definition(worker_source: &str) -> String {
    format!(
        "name = \"bench\"\n[target.bench]\nsource_image = \"00000000-0000-0000-0000-000000000000\"\n\
         flavor = \"m1.small\"\n[variables]\nworker_source = \"{worker_source}\"\n\
         [[provision]]\ninline = [\"echo {{{{user `worker_source`}}}}\"]\n[worker]\nrequired = []\n"
    )
}

/// One `plan --output json` of the definition in `dir`; its time.
fn plan(dir: &Path, cache: &Path, index_url: &str) -> Result<Duration> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uworker-image"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env(
            "UWORKER_IMAGE_PACKER",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/packer-1.6.6"),
        )
        .env("XDG_CACHE_HOME", cache)
        .env("UWORKER_IMAGE_INDEX_URL", index_url)
        .args(["--quiet", "--output", "json", "--dir"])
        .arg(dir)
        .arg("plan");
    let started = Instant::now();
    let output = cmd.output().context("running uworker-image")?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "plan failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(took)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<()> {
    let mut runs = 15usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    let server = git_server::GitServer::start(None);
    let repository = server.repository_url();
    let commit = server.head();
    let index = package_index::PackageIndex::start();
    index.publish(
        "uworker",
        "uworker-1.0-py3-none-any.whl",
        b"1.0",
        None,
        false,
    );
    index.publish("uworker", "uworker-1.1.tar.gz", b"1.1", None, false);
    let cases = [
        (
            "pinned as written (baseline)",
            format!("git+{repository}@{commit}#subdirectory=src"),
        ),
        (
            "git branch, git ls-remote on loopback",
            format!("git+{repository}@main#subdirectory=src"),
        ),
        (
            "requirement, PEP 691 index on loopback",
            "uworker>=1.0".to_string(),
        ),
    ];
    let cache = tempfile::tempdir()?;
    println!("plan, median of {runs} runs (after one warm-up each):");
    let mut baseline = None;
    for (name, value) in cases {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("image.toml"), definition(&value))?;
        plan(dir.path(), cache.path(), &index.simple_url())?;
        let mut times = (0..runs)
            .map(|_| plan(dir.path(), cache.path(), &index.simple_url()))
            .collect::<Result<Vec<_>>>()?;
        let med = median(&mut times);
        let (low, high) = (times[0], times[times.len() - 1]);
        let added = match baseline {
            None => {
                baseline = Some(med);
                String::new()
            }
            Some(base) => format!(", added {}", ms(med.checked_sub(base).unwrap_or_default())),
        };
        println!(
            "  {name:<40} {} (min {}, max {}){added}",
            ms(med),
            ms(low),
            ms(high)
        );
    }
    Ok(())
}

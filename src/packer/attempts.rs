//! Builds that survive a flaky cloud: attempts with backoff for transient failures, one
//! shared deadline, and the artifact taken from the manifest post-processor, checked
//! against packer's artifact lines. Zero artifacts is a failure even when packer exits 0.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::classify::{classify, Failure};
use super::run::{BuildSpec, Printer, RunEnd};
use super::{Packer, PackerError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Built {
        artifact_id: String,
        attempts: u32,
    },
    /// A permanent failure, or a transient one with no attempts left.
    Failed {
        reason: String,
        transient: bool,
        attempts: u32,
    },
    TimedOut {
        attempts: u32,
    },
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each later one.
    pub first_delay: Duration,
}

#[derive(Deserialize)]
struct PackerManifest {
    #[serde(default)]
    builds: Vec<ManifestBuild>,
    #[serde(default)]
    last_run_uuid: String,
}

#[derive(Deserialize)]
struct ManifestBuild {
    name: String,
    #[serde(default)]
    artifact_id: String,
    #[serde(default)]
    packer_run_uuid: String,
}

/// The artifact ID of `build` in the last run recorded by the manifest post-processor.
pub fn manifest_artifact(path: &Path, build: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let manifest: PackerManifest = serde_json::from_str(&text).ok()?;
    manifest
        .builds
        .into_iter()
        .rev()
        .find(|b| b.name == build && b.packer_run_uuid == manifest.last_run_uuid)
        .map(|b| b.artifact_id)
}

/// The artifact of a run that exited 0, or why there is none.
fn artifact(
    manifest_file: &Path,
    build: &str,
    artifact_count: u32,
    artifact_ids: &[String],
) -> Result<String, String> {
    if artifact_count == 0 {
        return Err(format!(
            "packer exited 0 but built no artifact for `{build}` (does -only={build} match a builder?)"
        ));
    }
    let from_lines = artifact_ids.first().filter(|id| !id.is_empty());
    match (manifest_artifact(manifest_file, build), from_lines) {
        (Some(m), Some(l)) if m != *l => Err(format!(
            "the manifest says artifact {m} but packer's output says {l}: not trusting either"
        )),
        (Some(m), _) => Ok(m),
        (None, Some(l)) => Ok(l.clone()),
        (None, None) => Err(format!("packer reported no artifact ID for `{build}`")),
    }
}

impl Packer {
    /// Runs `spec` until it builds, fails for good, runs out of attempts or time, or is
    /// interrupted. `manifest_file` is where the template's manifest post-processor writes.
    pub fn build_with_retries<W: Write>(
        &self,
        spec: &BuildSpec,
        manifest_file: &Path,
        retry: &Retry,
        printer: &mut Printer<'_, W>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Outcome, PackerError> {
        let attempts = retry.attempts.max(1);
        let mut delay = retry.first_delay;
        for attempt in 1..=attempts {
            printer.raw(&format!(
                "uworker-image: packer build -only={}, attempt {attempt} of {attempts}",
                spec.only
            ));
            let failure = match self.build(spec, printer, stop)? {
                RunEnd::Interrupted => return Ok(Outcome::Interrupted),
                RunEnd::TimedOut => return Ok(Outcome::TimedOut { attempts: attempt }),
                RunEnd::Exited {
                    code: Some(0),
                    artifact_ids,
                    artifact_count,
                    ..
                } => {
                    return Ok(
                        match artifact(manifest_file, &spec.only, artifact_count, &artifact_ids) {
                            Ok(artifact_id) => Outcome::Built {
                                artifact_id,
                                attempts: attempt,
                            },
                            Err(reason) => Outcome::Failed {
                                reason,
                                transient: false,
                                attempts: attempt,
                            },
                        },
                    )
                }
                RunEnd::Exited { errors, code, .. } => {
                    // Redacted here, once: the reason goes into the record, to GitHub
                    // and into retry notices.
                    let mut errors: Vec<String> = errors
                        .iter()
                        .map(|e| printer.redactor.redact(e).into_owned())
                        .collect();
                    if errors.is_empty() {
                        errors.push(format!("packer exited with {code:?} and no error message"));
                    }
                    classify(&errors)
                }
            };
            match failure {
                Failure::Permanent(reason) => {
                    return Ok(Outcome::Failed {
                        reason,
                        transient: false,
                        attempts: attempt,
                    })
                }
                Failure::Transient(reason) if attempt == attempts => {
                    return Ok(Outcome::Failed {
                        reason,
                        transient: true,
                        attempts: attempt,
                    })
                }
                Failure::Transient(reason) => {
                    printer.raw(&format!(
                        "uworker-image: attempt {attempt} failed with a transient error ({reason}); retrying in {}",
                        humantime::format_duration(delay)
                    ));
                    let wake = Instant::now() + delay;
                    while Instant::now() < wake {
                        if stop() {
                            return Ok(Outcome::Interrupted);
                        }
                        if Instant::now() >= spec.deadline {
                            return Ok(Outcome::TimedOut { attempts: attempt });
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    delay *= 2;
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_need_a_count_and_agreeing_sources() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("m.json");
        let ids = vec!["img-1".to_string()];
        assert!(artifact(&manifest, "smog", 0, &ids)
            .unwrap_err()
            .contains("no artifact"));
        assert_eq!(artifact(&manifest, "smog", 1, &ids), Ok("img-1".into()));
        std::fs::write(
            &manifest,
            r#"{"builds":[{"name":"smog","artifact_id":"old","packer_run_uuid":"r0"},
                          {"name":"smog","artifact_id":"img-1","packer_run_uuid":"r1"}],
                "last_run_uuid":"r1"}"#,
        )
        .unwrap();
        assert_eq!(artifact(&manifest, "smog", 1, &[]), Ok("img-1".into()));
        let other = vec!["img-2".to_string()];
        assert!(artifact(&manifest, "smog", 1, &other)
            .unwrap_err()
            .contains("not trusting"));
    }
}

//! `validate`: static checks of the definition and inputs, then `packer validate` (full
//! when OpenStack credentials are present, syntax-only otherwise) and shellcheck.

use anyhow::{bail, Result};
use serde_json::json;

use super::{find_packer, stage, Session};
use crate::cli::{Global, Output, ValidateArgs};
use crate::definition::StepKind;
use crate::env::Env;
use crate::exit::Code;
use crate::inputs::InputError;
use crate::render::Builders;
use crate::shellcheck::{self, Outcome};

pub fn run(global: &Global, args: &ValidateArgs, env: &Env) -> Result<Code> {
    let session = Session::load(global, env)?;
    let def = &session.definition;
    session.info(&format!(
        "definition {}: {} target(s) ({}), {} step(s)",
        def.path().display(),
        def.targets.len(),
        def.targets.keys().cloned().collect::<Vec<_>>().join(", "),
        def.steps.len()
    ));
    check_worker_config(&session, args.without_secrets)?;

    let packer = find_packer(global)?;
    // The test builder needs a test host; without one only the targets are checked.
    let builders = match session.inputs.test_host() {
        Some(_) => Builders::All,
        None => Builders::Targets,
    };
    let staged = stage(&session, builders)?;
    let full = session.inputs.cloud.is_some();
    let mode = match &session.inputs.cloud {
        Some(method) => format!("full (OpenStack login with {})", method.describe()),
        None => "syntax only (no OpenStack credentials in the environment)".to_string(),
    };
    let validation = packer.validate(
        &staged.template,
        &staged.var_file,
        !full,
        staged.workdir.path(),
    )?;
    let packer_output = session.redactor.redact(validation.output.trim());
    drop(staged);

    let scripts: Vec<&str> = def
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Script(path) => Some(path.as_str()),
            _ => None,
        })
        .collect();
    let lint = if args.no_shellcheck {
        None
    } else {
        Some(shellcheck::check(&def.dir, &scripts)?)
    };
    let lint_ok = !matches!(lint, Some(Outcome::Findings(_)));
    let valid = validation.ok && lint_ok;

    match global.output {
        Output::Json => {
            let lint_json = match &lint {
                None => json!({ "status": "skipped" }),
                Some(Outcome::NotInstalled) => json!({ "status": "not installed" }),
                Some(Outcome::Clean { scripts }) => {
                    json!({ "status": "clean", "scripts": scripts })
                }
                Some(Outcome::Findings(findings)) => json!({
                    "status": "findings",
                    "findings": findings.iter().map(|f| json!({"file": f.file, "line": f.line, "text": f.text})).collect::<Vec<_>>(),
                }),
            };
            let doc = json!({
                "valid": valid,
                "packer": { "mode": if full { "full" } else { "syntax-only" }, "ok": validation.ok, "output": packer_output },
                "shellcheck": lint_json,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            let verdict = if validation.ok { "ok" } else { "FAILED" };
            println!("packer validate, {mode}: {verdict}");
            if !validation.ok || global.verbose {
                for line in packer_output.lines() {
                    println!("  {line}");
                }
            }
            match &lint {
                None => println!("shellcheck: skipped (--no-shellcheck)"),
                Some(Outcome::NotInstalled) => {
                    println!("shellcheck: not installed, scripts not linted")
                }
                Some(Outcome::Clean { scripts }) => {
                    println!("shellcheck: {scripts} script(s) clean")
                }
                Some(Outcome::Findings(findings)) => {
                    println!("shellcheck: {} finding(s)", findings.len());
                    for f in findings {
                        println!("  {}/{}:{}: {}", def.dir.display(), f.file, f.line, f.text);
                    }
                }
            }
            println!("{}", if valid { "valid" } else { "invalid" });
        }
    }
    Ok(if valid { Code::Ok } else { Code::Failed })
}

/// Required worker values present (unless waived) and shaped right.
fn check_worker_config(session: &Session, without_secrets: bool) -> Result<()> {
    let missing = session.missing_secrets();
    if !missing.is_empty() && !without_secrets {
        bail!(InputError::Invalid {
            origin: "worker config".into(),
            key: missing.join(", "),
            message: "not set: export them, or put `export NAME=value` lines in the --worker-config file (fork pull requests: --without-secrets)".into(),
        });
    }
    let worker = &session.inputs.worker;
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

/// An http(s) URL with a host, as the worker's requests need. The value is not echoed:
/// it is handled as a secret like every worker value.
fn check_url(value: &str) -> Result<(), String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("has no host".into());
    }
    if value.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn url_shapes() {
        assert!(check_url("http://example.com/uservice/api/root").is_ok());
        assert!(check_url("https://h:8443").is_ok());
        assert!(check_url("example.com").is_err());
        assert!(check_url("http:///x").is_err());
        assert!(check_url("http://h/a b").is_err());
    }
}

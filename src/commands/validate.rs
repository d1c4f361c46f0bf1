//! `validate`: static checks of the definition and inputs, then `packer validate` (full
//! when OpenStack credentials are present, syntax-only otherwise) and shellcheck.

use anyhow::Result;
use serde_json::json;

use super::stage::{stage, RunFacts};
use super::Session;
use crate::definition::StepKind;
use crate::env::Env;
use crate::exit::Code;
use crate::render::Builders;
use crate::request::{self, Output};
use crate::shellcheck::{self, Outcome};

pub fn run(request: &request::Validate, env: &Env) -> Result<Code> {
    let session = Session::load(&request.load, env)?;
    let def = &session.definition;
    session.info(&format!(
        "definition {}: {} target(s) ({}), {} step(s)",
        def.path().display(),
        def.targets.len(),
        def.targets.keys().cloned().collect::<Vec<_>>().join(", "),
        def.steps.len()
    ));
    session.check_worker_config(request.without_secrets)?;

    // The test builder needs a test host; without one only the targets are checked.
    let builders = match session.inputs.test_host() {
        Some(_) => Builders::All,
        None => Builders::Targets,
    };
    let staged = stage(&session, builders, RunFacts::default())?;
    let full = session.cloud_login.is_some();
    let mode = match &session.cloud_login {
        Some(method) => format!("full (OpenStack login with {})", method.describe()),
        None => "syntax only (no OpenStack credentials in the environment)".to_string(),
    };
    // A full validate logs in: each cloud's builders with that cloud's settings.
    let mut validation = crate::packer::Validation {
        ok: true,
        output: String::new(),
    };
    for run in session.packers_by_cloud(matches!(builders, Builders::All))? {
        let one = run.packer.validate(
            &staged.template,
            &staged.var_file,
            !run.has_credentials,
            run.only.as_deref(),
            staged.workdir.path(),
        )?;
        validation.ok &= one.ok;
        validation.output.push_str(&one.output);
    }
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
    let lint = if request.shellcheck {
        Some(shellcheck::check(&def.dir, &scripts)?)
    } else {
        None
    };
    let lint_ok = !matches!(lint, Some(Outcome::Findings(_)));
    let valid = validation.ok && lint_ok;

    match request.output {
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
            if !validation.ok || request.verbose {
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

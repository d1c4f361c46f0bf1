//! shellcheck over the definition's scripts, when shellcheck is installed.

use std::path::Path;
use std::process::Command;

use crate::packer::search_path;

/// One finding, in shellcheck's gcc format: `file:line:col: level: message [SCxxxx]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub text: String,
}

#[derive(Debug)]
pub enum Outcome {
    NotInstalled,
    Clean { scripts: usize },
    Findings(Vec<Finding>),
}

/// Runs shellcheck on `scripts` (paths relative to `dir`), following sourced files (-x).
pub fn check(dir: &Path, scripts: &[&str]) -> std::io::Result<Outcome> {
    let Some(program) = search_path(Path::new("shellcheck")) else {
        return Ok(Outcome::NotInstalled);
    };
    if scripts.is_empty() {
        return Ok(Outcome::Clean { scripts: 0 });
    }
    let output = Command::new(program)
        // Nothing of the tool's secrets: shellcheck reads none.
        .env_clear()
        .envs(crate::child_env::of_process(false))
        .args(["-x", "--format=gcc"])
        .args(scripts)
        .current_dir(dir)
        .output()?;
    let findings = parse_gcc(&String::from_utf8_lossy(&output.stdout));
    if output.status.success() && findings.is_empty() {
        return Ok(Outcome::Clean {
            scripts: scripts.len(),
        });
    }
    if findings.is_empty() {
        // shellcheck failed without findings (bad arguments, unreadable file): say so.
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Ok(Outcome::Findings(vec![Finding {
            file: scripts.join(" "),
            line: 0,
            text: format!("shellcheck failed: {stderr}"),
        }]));
    }
    Ok(Outcome::Findings(findings))
}

fn parse_gcc(stdout: &str) -> Vec<Finding> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, ':');
            let file = parts.next()?.to_string();
            let line_no = parts.next()?.parse().ok()?;
            let _col = parts.next()?;
            Some(Finding {
                file,
                line: line_no,
                text: parts.next()?.trim().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gcc_lines() {
        let out = "scripts/a.sh:3:6: warning: foo is referenced but not assigned. [SC2154]\n";
        assert_eq!(
            parse_gcc(out),
            vec![Finding {
                file: "scripts/a.sh".into(),
                line: 3,
                text: "warning: foo is referenced but not assigned. [SC2154]".into()
            }]
        );
    }
}

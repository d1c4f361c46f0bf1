//! `matrix`: the definition's targets as a GitHub Actions `strategy.matrix`,
//! `{"include":[{"target":"a"},...]}`, on one line so it fits a `GITHUB_OUTPUT` value.
//! With `--needs-build`, only the targets `plan` would build (the same lookup).

use anyhow::Result;
use serde::Serialize;

use super::{plan, Session};
use crate::definition::Target;
use crate::env::Env;
use crate::exit::Code;
use crate::request;

#[derive(Debug, Serialize)]
struct Matrix<'a> {
    include: Vec<Entry<'a>>,
}

#[derive(Debug, Serialize)]
struct Entry<'a> {
    target: &'a str,
}

/// The `strategy.matrix` JSON for these target names, in the order given.
fn to_json<'a>(targets: impl IntoIterator<Item = &'a str>) -> String {
    let matrix = Matrix {
        include: targets.into_iter().map(|target| Entry { target }).collect(),
    };
    serde_json::to_string(&matrix).expect("the matrix serializes")
}

pub fn run(request: &request::Matrix, env: &Env) -> Result<Code> {
    let session = Session::load_pinned(&request.load, env)?;
    // --target (the dispatch input) narrows the matrix to one target, which must exist.
    let targets = session.targets(request.target.as_deref())?;
    let selected = if request.needs_build {
        needing_build(&session, targets)?
    } else {
        targets
    };
    // JSON whatever --output says: a strategy.matrix is what this command is for.
    println!("{}", to_json(selected.iter().map(|t| t.name.as_str())));
    Ok(Code::Ok)
}

/// The targets whose plan is `build`, each decision and its reason on stderr. Without
/// credentials the plan cannot look, says so, and plans a build: every target stays in.
fn needing_build<'a>(session: &Session, targets: Vec<&'a Target>) -> Result<Vec<&'a Target>> {
    let mut selected = Vec::new();
    for target in targets {
        let plan = plan::compute(session, target, false, None)?;
        session.info(&format!(
            "matrix: {}: {} ({})",
            target.name, plan.action, plan.reason
        ));
        if plan.builds() {
            selected.push(target);
        }
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::to_json;

    #[test]
    fn the_matrix_is_one_line_of_include_entries_in_order() {
        assert_eq!(
            to_json(["b", "a"]),
            r#"{"include":[{"target":"b"},{"target":"a"}]}"#
        );
    }

    #[test]
    fn no_target_is_an_empty_include_list() {
        assert_eq!(to_json([]), r#"{"include":[]}"#);
    }

    #[test]
    fn names_are_json_escaped() {
        let json = to_json([r#"a"b\c"#]);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["include"][0]["target"], r#"a"b\c"#);
    }
}

//! `matrix`: the definition's targets as a GitHub Actions `strategy.matrix`,
//! `{"include":[{"target":"a"},...]}`, on one line so it fits a `GITHUB_OUTPUT` value.
//! With `--needs-build`, only the targets `plan` would build (the same lookup). The
//! targets packer builds on stdout; with `--copies-out FILE` the `copy_of` ones
//! (`{"target":"b","copy_of":"a"}`) in FILE, for the jobs that run after the builds: a
//! copy needs its source's image.

use anyhow::Result;
use serde::Serialize;

use super::stage::write_record;
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
    /// A copy's source target: its job needs the source's build.
    #[serde(skip_serializing_if = "Option::is_none")]
    copy_of: Option<&'a str>,
}

/// The `strategy.matrix` JSON for these targets, in the order given.
fn to_json<'a>(targets: impl IntoIterator<Item = &'a Target>) -> String {
    let matrix = Matrix {
        include: targets
            .into_iter()
            .map(|target| Entry {
                target: &target.name,
                copy_of: target.copy_of.as_deref(),
            })
            .collect(),
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
    let (built, copies): (Vec<&Target>, Vec<&Target>) =
        selected.into_iter().partition(|t| t.is_built());
    if let Some(path) = &request.copies_out {
        write_record(path, &to_json(copies))?;
    }
    // JSON whatever --output says: a strategy.matrix is what this command is for.
    println!("{}", to_json(built));
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
    use crate::definition::{Definition, Target};

    fn targets(names: &[&str]) -> Vec<Target> {
        let mut text = String::from("name = \"x\"\n");
        for name in names {
            match name.split_once('>') {
                Some((copy, source)) => text.push_str(&format!(
                    "[target.{copy}]\ncopy_of = \"{source}\"\nregion = \"r-{copy}\"\n"
                )),
                None => text.push_str(&format!(
                    "[target.{name}]\nsource_image = \"i\"\nflavor = \"f\"\n"
                )),
            }
        }
        let dir = std::path::Path::new("/d");
        let def = Definition::parse(&text, dir, &dir.join("image.toml")).unwrap();
        names
            .iter()
            .map(|n| def.targets[n.split('>').next().unwrap()].clone())
            .collect()
    }

    #[test]
    fn the_matrix_is_one_line_of_include_entries_in_order() {
        assert_eq!(
            to_json(&targets(&["b", "a"])),
            r#"{"include":[{"target":"b"},{"target":"a"}]}"#
        );
    }

    #[test]
    fn a_copy_names_its_source() {
        assert_eq!(
            to_json(&targets(&["a", "east>a"])[1..]),
            r#"{"include":[{"target":"east","copy_of":"a"}]}"#
        );
    }

    #[test]
    fn no_target_is_an_empty_include_list() {
        assert_eq!(to_json(&[]), r#"{"include":[]}"#);
    }

    #[test]
    fn names_are_json_escaped() {
        let mut odd = targets(&["a"]);
        odd[0].name = r#"a"b\c"#.to_string();
        let parsed: serde_json::Value = serde_json::from_str(&to_json(&odd)).unwrap();
        assert_eq!(parsed["include"][0]["target"], r#"a"b\c"#);
    }
}

//! The original build script's config files, read as they were written: `variables.json`
//! (packer user variables) and the worker config file of `export UWORKER_X=value` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::shell;
use crate::vars;

#[derive(Debug, Error)]
pub enum SeedError {
    #[error("cannot read {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{path}:{line}: `{key}` is set twice (also on line {first}); keep one")]
    DuplicateKey {
        path: PathBuf,
        key: String,
        first: usize,
        line: usize,
    },
    #[error("{path}:{line}: not a JSON object of variables: {message}")]
    VarFileSyntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: `{key}` must be a string (found {found}); write it as \"...\"")]
    VarFileType {
        path: PathBuf,
        key: String,
        found: &'static str,
    },
    #[error("{origin}: unknown variable `{key}`; known: {known}")]
    UnknownVariable {
        origin: String,
        key: String,
        known: String,
    },
    #[error("--var {}: expected KEY=VALUE", quoted_if_name(.0))]
    VarSyntax(String),
    #[error("{path}:{line}: {message}")]
    WorkerConfigLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl crate::exit::Coded for SeedError {
    fn code(&self) -> crate::exit::Code {
        match self {
            SeedError::Read { .. }
            | SeedError::DuplicateKey { .. }
            | SeedError::VarFileSyntax { .. }
            | SeedError::VarFileType { .. }
            | SeedError::UnknownVariable { .. }
            | SeedError::VarSyntax(_)
            | SeedError::WorkerConfigLine { .. } => crate::exit::Code::BadInput,
        }
    }
}

/// `` `word` `` when it is a variable name; else a placeholder, since it may be a secret.
fn quoted_if_name(word: &str) -> String {
    if shell::is_name(word) {
        format!("`{word}`")
    } else {
        "(argument not shown: it may hold a secret)".into()
    }
}

/// Reads a seed-style variables.json: a flat JSON object of string values.
pub fn read_var_file(path: &Path) -> Result<BTreeMap<String, String>, SeedError> {
    parse_var_file(&read("var-file", path)?, path)
}

fn read(what: &'static str, path: &Path) -> Result<String, SeedError> {
    crate::input_file::read_text(path, crate::input_file::CONFIG_CAP).map_err(|error| {
        SeedError::Read {
            what,
            path: path.to_path_buf(),
            error,
        }
    })
}

pub fn parse_var_file(text: &str, path: &Path) -> Result<BTreeMap<String, String>, SeedError> {
    let syntax = |line: usize, message: String| SeedError::VarFileSyntax {
        path: path.to_path_buf(),
        line,
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| syntax(e.line(), e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(syntax(
            1,
            "the top level must be an object {\"key\": \"value\", ...}".into(),
        ));
    };
    let values = map
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => Ok((key, s)),
            other => Err(SeedError::VarFileType {
                path: path.to_path_buf(),
                key,
                found: json_kind(&other),
            }),
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    // serde_json keeps the last of two equal keys; a flat object of strings makes every
    // `"string":` a key, so the keys and their lines are found by scanning.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (key, line) in object_keys(text) {
        if let Some(&first) = seen.get(&key) {
            return Err(SeedError::DuplicateKey {
                path: path.to_path_buf(),
                key,
                first,
                line,
            });
        }
        seen.insert(key, line);
    }
    Ok(values)
}

/// The keys of a valid, flat JSON object with their 1-based lines, in order.
fn object_keys(text: &str) -> Vec<(String, usize)> {
    let mut keys = Vec::new();
    let mut line = 1;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '\n' => line += 1,
            '"' => {
                let start_line = line;
                let mut end = start;
                let mut escaped = false;
                for (at, c) in chars.by_ref() {
                    match c {
                        '\n' => line += 1,
                        '\\' if !escaped => {
                            escaped = true;
                            continue;
                        }
                        '"' if !escaped => {
                            end = at;
                            break;
                        }
                        _ => {}
                    }
                    escaped = false;
                }
                while chars
                    .next_if(|(_, c)| c.is_whitespace() && *c != '\n')
                    .is_some()
                {}
                let is_key = chars.peek().is_some_and(|(_, c)| *c == ':');
                let literal = text.get(start..=end).unwrap_or("\"\"");
                if let (true, Ok(key)) = (is_key, serde_json::from_str::<String>(literal)) {
                    keys.push((key, start_line));
                }
            }
            _ => {}
        }
    }
    keys
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Splits a `--var KEY=VALUE` argument.
pub fn parse_var_arg(arg: &str) -> Result<(String, String), SeedError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(SeedError::VarSyntax(arg.to_string())),
    }
}

/// Refuses variables that neither the seed nor the definition knows.
pub fn check_variable_known(
    key: &str,
    origin: &str,
    definition_vars: &BTreeMap<String, String>,
) -> Result<(), SeedError> {
    if vars::SEED_KEYS.contains(&key) || definition_vars.contains_key(key) {
        return Ok(());
    }
    let known: Vec<&str> = vars::SEED_KEYS
        .iter()
        .copied()
        .chain(definition_vars.keys().map(String::as_str))
        .collect();
    Err(SeedError::UnknownVariable {
        origin: origin.to_string(),
        key: key.to_string(),
        known: known.join(", "),
    })
}

/// One `export KEY=value` line of a worker config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

pub fn read_worker_config(path: &Path) -> Result<Vec<ConfigEntry>, SeedError> {
    parse_worker_config(&read("worker config", path)?, path)
}

/// Parses the seed's worker config: `export KEY=value` lines, values quoted or not, blank
/// lines and `#` comments allowed. Anything else is refused with its line number: the
/// file is never run through a shell, so a command in it would silently do nothing.
pub fn parse_worker_config(text: &str, path: &Path) -> Result<Vec<ConfigEntry>, SeedError> {
    let mut entries = Vec::new();
    // Each key's line, for duplicates: a map, so a file of many keys stays linear.
    let mut first_lines: std::collections::HashMap<&str, usize> = Default::default();
    let mut statements = shell::Statements::new(text);
    while let Some((line_no, line)) = statements.next() {
        let fail = |message: String| SeedError::WorkerConfigLine {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let Some(assignment) = shell::export_assignment(line) else {
            return Err(fail(
                "expected `export KEY=value` (the seed's worker config format)".into(),
            ));
        };
        let Some((key, raw_value)) = assignment.split_once('=') else {
            return Err(fail("expected `export KEY=value`: no `=`".into()));
        };
        if !vars::is_worker_key(key) {
            // The name only when it is one: the text before `=` may be a misplaced secret.
            let what = if shell::is_name(key) {
                format!("`{key}`")
            } else {
                "what stands before `=` (not shown: it may hold a secret)".into()
            };
            return Err(fail(format!(
                "{what} is not a worker key (UWORKER_ followed by A-Z, 0-9, _); a Docker registry login uses UWORKER_REGISTRY_URL, UWORKER_REGISTRY_USERNAME and UWORKER_REGISTRY_PASSWORD"
            )));
        }
        // A quoted value may span lines, as it does for `source`.
        let value =
            shell::read_value(raw_value, &mut statements.continuation()).map_err(|e| match e {
                shell::ValueError::NeverClosed(kind) => fail(format!(
                    "the {kind} quote opened in the value of {key} is never closed"
                )),
                shell::ValueError::Word(e) => fail(format!("value of {key}: {e}")),
            })?;
        if let Some(&first) = first_lines.get(key) {
            return Err(SeedError::DuplicateKey {
                path: path.to_path_buf(),
                key: key.to_string(),
                first,
                line: line_no,
            });
        }
        first_lines.insert(key, line_no);
        entries.push(ConfigEntry {
            key: key.to_string(),
            value,
            line: line_no,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
        parse_worker_config(text, Path::new("w.conf"))
            .map(|v| v.into_iter().map(|e| (e.key, e.value)).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_seed_example_as_written() {
        let text = "export UWORKER_JOB_API_ROOT=http://example.com/uservice/api/root\n\
                    export UWORKER_JOB_API_USERNAME=<uservice username>\n";
        // `<` is shell syntax: the seed's placeholder is not a value anyone runs with.
        assert!(parse(text).unwrap_err().contains("w.conf:2"));
        let text = "# worker\nexport UWORKER_JOB_API_ROOT=http://example.com/api\n\n\
                    export UWORKER_JOB_API_USERNAME='alice'\n\
                    export UWORKER_JOB_API_PASSWORD=\"p a\\$s\"\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                (
                    "UWORKER_JOB_API_ROOT".into(),
                    "http://example.com/api".into()
                ),
                ("UWORKER_JOB_API_USERNAME".into(), "alice".into()),
                ("UWORKER_JOB_API_PASSWORD".into(), "p a$s".into()),
            ]
        );
    }

    #[test]
    fn multi_line_quoted_values_are_read_whole() {
        let text = "export UWORKER_JOB_API_PASSWORD='line1\nline2'\nexport UWORKER_X=y\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                ("UWORKER_JOB_API_PASSWORD".into(), "line1\nline2".into()),
                ("UWORKER_X".into(), "y".into())
            ]
        );
    }

    #[test]
    fn refuses_lines_that_are_not_exports() {
        for (text, needle) in [
            ("UWORKER_X=1\n", "w.conf:1: expected `export KEY=value`"),
            ("export UWORKER_X\n", "no `=`"),
            ("export HOME=/x\n", "not a worker key"),
            ("export UWORKER_X=$HOME\n", "single quotes"),
            ("export UWORKER_X='open\n", "never closed"),
            ("exportUWORKER_X=1\n", "expected `export KEY=value`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_key_set_twice_is_refused_naming_both_lines() {
        let err = parse("export UWORKER_X=1\n# c\nexport UWORKER_Y='a\nb'\nexport UWORKER_X=2\n")
            .unwrap_err();
        assert_eq!(
            err,
            "w.conf:5: `UWORKER_X` is set twice (also on line 1); keep one"
        );
        let path = Path::new("variables.json");
        let text = "{\n  \"test_host\": \"a:b\\\"c\",\n  \"x\": \"test_host\",\n  \"test_\\u0068ost\" : \"b\"\n}";
        let err = parse_var_file(text, path).unwrap_err().to_string();
        assert_eq!(
            err,
            "variables.json:4: `test_host` is set twice (also on line 2); keep one"
        );
        assert_eq!(
            object_keys("{\"a\":\"x\",\n\"b\":\"a\"}"),
            vec![("a".to_string(), 1), ("b".to_string(), 2)]
        );
    }

    #[test]
    fn var_file_needs_an_object_of_strings() {
        let path = Path::new("variables.json");
        let ok = parse_var_file(r#"{"openstack_free_floating_ip": "1.2.3.4"}"#, path).unwrap();
        assert_eq!(ok["openstack_free_floating_ip"], "1.2.3.4");
        let err = parse_var_file("{\n\"a\": 1}", path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`a` must be a string (found a number)"),
            "{err}"
        );
        let err = parse_var_file("{\n\"a\": ", path).unwrap_err().to_string();
        assert!(err.starts_with("variables.json:2:"), "{err}");
        let err = parse_var_file("[]", path).unwrap_err().to_string();
        assert!(err.contains("top level must be an object"), "{err}");
    }
}

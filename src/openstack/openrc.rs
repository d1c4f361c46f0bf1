//! `--openrc FILE`: the OpenStack RC file a dashboard hands out (Horizon's v3 file, and
//! the older v2 file), read as data and never run. Its `export OS_...=value` lines become
//! OS_* variables under the environment's (OS_* already set win, as for clouds.yaml), and
//! its `read -sr OS_PASSWORD_INPUT` / `export OS_PASSWORD=$OS_PASSWORD_INPUT` pair means
//! "ask for the password". Anything else a shell would execute is refused with its line:
//! the file is not run, so a command in it would silently do nothing (or worse, a user
//! would expect it to have run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use thiserror::Error;

use crate::env::Env;
use crate::shell;
use crate::terminal::Prompted;

#[derive(Debug, Error)]
pub enum OpenRcError {
    #[error("--openrc {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{}:{line}: {message}. --openrc reads the file and runs nothing; to run it, `source {}` in your shell and leave out --openrc", .path.display(), .path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("--openrc {}: the file asks for the password, but there is no terminal to ask on (no controlling terminal, as in CI, cron or setsid); set OS_PASSWORD in the environment (a CI secret), or run from a terminal", .path.display())]
    NoTerminal { path: PathBuf },
    #[error("--openrc {}: no password entered; type it at the prompt, or set OS_PASSWORD", .path.display())]
    NoPassword { path: PathBuf },
    #[error("--openrc {}: reading the password on the terminal (/dev/tty)", .path.display())]
    Terminal {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("the password prompt was interrupted")]
    Interrupted,
}

impl crate::exit::Coded for OpenRcError {
    fn code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            OpenRcError::Read { .. }
            | OpenRcError::Line { .. }
            | OpenRcError::NoTerminal { .. }
            | OpenRcError::NoPassword { .. }
            | OpenRcError::Terminal { .. } => Code::BadInput,
            OpenRcError::Interrupted => Code::Interrupted,
        }
    }
}

/// The file's settings, in the order a shell would leave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcFile {
    /// OS_* variables as the file leaves them (after its `unset`s), v2 names mapped:
    /// each with the sequence number of its last `export`, so that setting one is a
    /// map update however many the file has.
    settings: BTreeMap<String, (usize, String)>,
    exports: usize,
    /// The file asks for the password (`read -sr OS_PASSWORD_INPUT`).
    pub asks_password: bool,
    /// The text of the file's `echo "Please enter ..."` line, `$OS_...` not yet expanded.
    prompt: Option<String>,
}

/// The environment with the file's settings under it.
pub struct Resolved {
    pub env: Env,
    /// The variables the file supplied (the typed password among them), for packer.
    pub from_file: Vec<(String, String)>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.from_file.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Resolved")
            .field("from_file", &keys)
            .finish()
    }
}

const PASSWORD_INPUT: &str = "OS_PASSWORD_INPUT";

/// Reads `path` (when given) and merges it under `env`; asks `ask` for the password when
/// the file wants one and OS_PASSWORD is not set.
pub fn resolve(
    path: Option<&Path>,
    env: &Env,
    ask: impl FnOnce(&str) -> Prompted,
) -> Result<Resolved, OpenRcError> {
    let Some(path) = path else {
        return Ok(Resolved {
            env: env.clone(),
            from_file: Vec::new(),
        });
    };
    // Like every input file: a regular file, within the cap, so a FIFO or a device
    // never hangs the tool or eats its memory.
    let text =
        crate::input_file::read_text(path, crate::input_file::CONFIG_CAP).map_err(|error| {
            OpenRcError::Read {
                path: path.to_path_buf(),
                error,
            }
        })?;
    let rc = parse(&text, path)?;
    let mut from_file: Vec<(String, String)> = rc
        .values()
        .into_iter()
        .filter(|(key, _)| !env.has(key))
        .collect();
    if rc.asks_password && !env.has("OS_PASSWORD") {
        let prompt = rc.prompt_text(env);
        let password = match ask(&prompt) {
            Prompted::Password(p) if !p.expose_secret().is_empty() => p,
            Prompted::Password(_) | Prompted::Eof => {
                return Err(OpenRcError::NoPassword {
                    path: path.to_path_buf(),
                })
            }
            Prompted::NoTerminal => {
                return Err(OpenRcError::NoTerminal {
                    path: path.to_path_buf(),
                })
            }
            Prompted::Interrupted => return Err(OpenRcError::Interrupted),
            Prompted::Failed(source) => {
                return Err(OpenRcError::Terminal {
                    path: path.to_path_buf(),
                    error: source,
                })
            }
        };
        from_file.push(("OS_PASSWORD".into(), password.expose_secret().to_string()));
    }
    let env = Env::from_pairs(
        env.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(from_file.iter().cloned()),
    );
    Ok(Resolved { env, from_file })
}

impl RcFile {
    /// The dashboard's own wording, with the project and user the run will use.
    pub fn prompt_text(&self, env: &Env) -> String {
        // A v2 file's tenant is the project now (`map_v2`).
        let lookup = |key: &str| {
            let project = key.replace("OS_TENANT_", "OS_PROJECT_");
            [key, project.as_str()]
                .iter()
                .find_map(|k| env.get(k).or_else(|| self.value(k)))
                .unwrap_or_default()
                .to_string()
        };
        match &self.prompt {
            Some(text) => expand(text, lookup),
            None => format!(
                "Please enter your OpenStack Password for project {} as user {}: ",
                lookup("OS_PROJECT_NAME"),
                lookup("OS_USERNAME")
            ),
        }
    }

    /// The OS_* variables as the file leaves them, in the order it last set them.
    pub fn values(&self) -> Vec<(String, String)> {
        let mut ordered: Vec<(&usize, &String, &String)> = self
            .settings
            .iter()
            .map(|(key, (order, value))| (order, key, value))
            .collect();
        ordered.sort();
        ordered
            .into_iter()
            .map(|(_, key, value)| (key.clone(), value.clone()))
            .collect()
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: &str, value: String) {
        self.exports += 1;
        self.settings.insert(key.to_string(), (self.exports, value));
    }

    fn unset(&mut self, key: &str) {
        self.settings.remove(key);
    }
}

/// `$OS_NAME` and `${OS_NAME}` replaced by `lookup`; the text was checked by `echo_text`.
fn expand(text: &str, lookup: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').unwrap_or(braced.len());
                (&braced[..end], braced.get(end + 1..).unwrap_or(""))
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        out.push_str(&lookup(name));
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn is_os_name(name: &str) -> bool {
    name.strip_prefix("OS_").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// Parses an RC file. Accepted lines: blank lines and comments; `export OS_X=value`;
/// `unset OS_X ...`; `if [ -z "$OS_X" ]; then unset OS_X; fi`; the password prompt
/// (`echo "..."` naming only OS_* variables, `read -sr OS_PASSWORD_INPUT`,
/// `export OS_PASSWORD=$OS_PASSWORD_INPUT`). A v2 file's settings are mapped to the
/// Identity v3 ones the tool (and packer) log in with.
pub fn parse(text: &str, path: &Path) -> Result<RcFile, OpenRcError> {
    let mut rc = RcFile {
        settings: BTreeMap::new(),
        exports: 0,
        asks_password: false,
        prompt: None,
    };
    let mut read_password_line = None;
    let mut statements = shell::Statements::new(text);
    while let Some((line_no, line)) = statements.next() {
        let fail = |message: String| OpenRcError::Line {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        if let Some(assignment) = shell::export_assignment(line) {
            let Some((key, raw_value)) = assignment.split_once('=') else {
                return Err(fail(format!(
                    "{} exports no value (expected `export OS_NAME=value`)",
                    quoted_name("export", assignment)
                )));
            };
            if !is_os_name(key) {
                return Err(fail(match shell::is_name(key) {
                    true => format!("`{key}` is not an OpenStack variable: only OS_* variables are read"),
                    false => "what stands before `=` is not a variable name (not shown: it may hold a secret); expected `export OS_NAME=value`".into(),
                }));
            }
            if key == "OS_PASSWORD" && is_password_input(raw_value) {
                if read_password_line.is_none() {
                    return Err(fail(format!(
                        "OS_PASSWORD is set from ${PASSWORD_INPUT}, which no earlier `read -sr {PASSWORD_INPUT}` line reads"
                    )));
                }
                rc.asks_password = true;
                rc.unset("OS_PASSWORD");
                continue;
            }
            let value = shell::read_value(raw_value, &mut statements.continuation()).map_err(
                |e| match e {
                    shell::ValueError::NeverClosed(kind) => fail(format!(
                        "the {kind} quote opened in the value of {key} is never closed"
                    )),
                    shell::ValueError::Word(e) => fail(format!(
                        "value of {key}: {}",
                        shell_feature(raw_value).map_or_else(
                            || e.to_string(),
                            |feature| format!("{feature}, which is not read")
                        )
                    )),
                },
            )?;
            if key == "OS_PASSWORD" {
                rc.asks_password = false;
            }
            rc.set(key, value);
        } else if let Some(names) = line
            .strip_prefix("unset")
            .filter(|rest| rest.starts_with([' ', '\t']))
        {
            for name in names.split_whitespace() {
                if !is_os_name(name) {
                    return Err(fail(format!(
                        "{}: only OS_* variables are read",
                        quoted_name("unset", name)
                    )));
                }
                rc.unset(name);
            }
        } else if let Some(name) = unset_if_empty(line) {
            if rc.value(&name).is_some_and(str::is_empty) {
                rc.unset(&name);
            }
        } else if let Some(text) = line
            .strip_prefix("echo")
            .filter(|rest| rest.starts_with([' ', '\t']))
        {
            rc.prompt = Some(echo_text(text.trim()).map_err(|m| fail(m.to_string()))?);
        } else if is_read_password(line) {
            read_password_line = Some(line_no);
        } else {
            return Err(fail(refusal(line)));
        }
    }
    map_v2(&mut rc);
    Ok(rc)
}

/// `$OS_PASSWORD_INPUT`, `"$OS_PASSWORD_INPUT"`, `${OS_PASSWORD_INPUT}`...
fn is_password_input(raw: &str) -> bool {
    let word = raw.trim();
    let word = word
        .strip_prefix('"')
        .and_then(|w| w.strip_suffix('"'))
        .unwrap_or(word);
    word == format!("${PASSWORD_INPUT}") || word == format!("${{{PASSWORD_INPUT}}}")
}

/// `read -sr OS_PASSWORD_INPUT` (flags in any of the usual spellings).
fn is_read_password(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&"read", rest)) = words.split_first() else {
        return false;
    };
    let Some((&name, flags)) = rest.split_last() else {
        return false;
    };
    let letters: String = flags.iter().filter_map(|f| f.strip_prefix('-')).collect();
    name == PASSWORD_INPUT
        && flags.iter().all(|f| f.starts_with('-'))
        && letters.contains('s')
        && letters.chars().all(|c| c == 's' || c == 'r')
}

/// The variable of `if [ -z "$OS_X" ]; then unset OS_X; fi`, spaces as a shell allows.
fn unset_if_empty(line: &str) -> Option<String> {
    let words: Vec<&str> = line
        .split_whitespace()
        .flat_map(|w| match w.strip_suffix(';') {
            Some(head) => vec![head, ";"],
            None => vec![w],
        })
        .filter(|w| !w.is_empty())
        .collect();
    let ["if", "[", "-z", tested, "]", ";", "then", "unset", name, ";", "fi"] = words[..] else {
        return None;
    };
    let tested = tested.strip_prefix('"')?.strip_suffix('"')?;
    let tested = tested
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .or_else(|| tested.strip_prefix('$'))?;
    (tested == name && is_os_name(name)).then(|| name.to_string())
}

/// The text of an `echo "..."`: literal text and `$OS_...` only.
fn echo_text(argument: &str) -> Result<String, &'static str> {
    let text = argument
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or("`echo` is read only as the password prompt: one double-quoted text")?;
    if text.contains(['`', '"', '\\']) || text.contains("$(") {
        return Err("the prompt's `echo` holds command substitution or quoting, which is not read");
    }
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        let name = match after.strip_prefix('{') {
            Some(braced) => braced.split('}').next().unwrap_or(""),
            None => after
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or(""),
        };
        if !is_os_name(name) {
            return Err(
                "the prompt's `echo` expands a variable other than OS_*, which is not read",
            );
        }
        rest = &after[name.len()..];
    }
    Ok(text.to_string())
}

/// What shell feature a refused line uses, when it is one people reach for.
fn shell_feature(line: &str) -> Option<&'static str> {
    let first = line.split_whitespace().next().unwrap_or("");
    if line.contains("$(") || line.contains('`') {
        Some("command substitution (`$(...)` or backquotes)")
    } else if first == "alias" {
        Some("an alias")
    } else if first == "function" || line.contains("()") {
        Some("a function definition")
    } else if line.contains('|') {
        Some("a pipe")
    } else if first == "source" || first == "." {
        Some("`source` of another file")
    } else if first == "eval" {
        Some("eval")
    } else if line.contains('$') {
        Some("a variable expansion")
    } else {
        None
    }
}

/// Why a line is refused. Never its text: a password pasted on a line of its own, or
/// set without `export`, would be printed.
fn refusal(line: &str) -> String {
    if let Some(key) = shell::bare_assignment(line) {
        return format!(
            "`{key}=...` sets {key} without `export`, so a shell would not pass it on: write `export {key}=...`"
        );
    }
    match shell_feature(line) {
        Some(feature) => format!("{feature}, which is not run"),
        None => "a command (not shown: it may hold a secret), which is not run; only `export OS_...=value`, `unset OS_...` and the dashboard's password prompt are read".into(),
    }
}

/// `` `VERB NAME` `` when NAME is a variable name; else VERB alone (the rest may be a secret).
fn quoted_name(verb: &str, name: &str) -> String {
    if shell::is_name(name) {
        format!("`{verb} {name}`")
    } else {
        format!(
            "`{verb}` of something that is not a variable name (not shown: it may hold a secret)"
        )
    }
}

/// The v2 file's settings as Identity v3 ones: the tool logs in with v3, where a tenant
/// is a project in the default domain, and packer must see the same.
fn map_v2(rc: &mut RcFile) {
    let Some(url) = rc.value("OS_AUTH_URL").map(str::to_string) else {
        return;
    };
    let trimmed = url.trim_end_matches('/');
    let Some(root) = trimmed.strip_suffix("/v2.0") else {
        return;
    };
    rc.set("OS_AUTH_URL", format!("{root}/v3"));
    rc.set("OS_IDENTITY_API_VERSION", "3".into());
    for (tenant, project) in [
        ("OS_TENANT_ID", "OS_PROJECT_ID"),
        ("OS_TENANT_NAME", "OS_PROJECT_NAME"),
    ] {
        if let Some(value) = rc.value(tenant).map(str::to_string) {
            if rc.value(project).is_none() {
                rc.set(project, value);
            }
            rc.unset(tenant);
        }
    }
    for (name, id) in [
        ("OS_USER_DOMAIN_NAME", "OS_USER_DOMAIN_ID"),
        ("OS_PROJECT_DOMAIN_NAME", "OS_PROJECT_DOMAIN_ID"),
    ] {
        if rc.value(name).is_none() && rc.value(id).is_none() {
            rc.set(id, "default".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::error_chain::Chain;

    // Exact renderings of Horizon's templates (openstack_dashboard/dashboards/project/
    // api_access/templates/api_access/): openrc.sh.template today, its earlier unquoted
    // form, and openrc_v2.sh.template.
    const V3: &str = include_str!("../../tests/fixtures/openrc/v3.sh");
    const V3_UNQUOTED: &str = include_str!("../../tests/fixtures/openrc/v3-unquoted.sh");
    const V2: &str = include_str!("../../tests/fixtures/openrc/v2.sh");

    fn parse_text(text: &str) -> Result<RcFile, String> {
        parse(text, Path::new("rc.sh")).map_err(|e| e.to_string())
    }

    fn sorted(values: &[(String, String)]) -> Vec<(String, String)> {
        let mut v = values.to_vec();
        v.sort();
        v
    }

    /// What bash leaves in the environment after `source`, OS_PASSWORD aside.
    fn bash_os_variables(text: &str) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rc.sh");
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("source \"$1\" </dev/null >/dev/null; env -0")
            .arg("bash")
            .arg(&file)
            .env_clear()
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| k.starts_with("OS_") && *k != "OS_PASSWORD")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_dashboards_v3_files_read_as_bash_would_leave_them() {
        for text in [V3, V3_UNQUOTED] {
            let rc = parse_text(text).unwrap();
            assert!(rc.asks_password);
            assert_eq!(sorted(&rc.values()), sorted(&bash_os_variables(text)));
            assert!(rc.values().contains(&(
                "OS_PROJECT_ID".into(),
                "5d3f9b2c8a1e4f6b9c0d7e2a1b3c4d5e".into()
            )));
            assert_eq!(
                rc.prompt_text(&Env::default()),
                "Please enter your OpenStack Password for project demo-project as user demo-user: "
            );
        }
    }

    #[test]
    fn the_v2_file_maps_to_identity_v3() {
        let rc = parse_text(V2).unwrap();
        assert!(rc.asks_password);
        let expected: Vec<(String, String)> = [
            ("OS_AUTH_URL", "https://keystone.example.org:5000/v3"),
            ("OS_ENDPOINT_TYPE", "publicURL"),
            ("OS_IDENTITY_API_VERSION", "3"),
            ("OS_PROJECT_DOMAIN_ID", "default"),
            ("OS_PROJECT_ID", "5d3f9b2c8a1e4f6b9c0d7e2a1b3c4d5e"),
            ("OS_PROJECT_NAME", "demo-project"),
            ("OS_REGION_NAME", "RegionOne"),
            ("OS_USERNAME", "demo-user"),
            ("OS_USER_DOMAIN_ID", "default"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(sorted(&rc.values()), expected);
        assert_eq!(
            rc.prompt_text(&Env::default()),
            "Please enter your OpenStack Password for project demo-project as user demo-user: "
        );
        // The credentials code makes a scoped v3 password login of it.
        let env = Env::from_pairs(
            rc.values()
                .into_iter()
                .chain([("OS_PASSWORD".to_string(), "pw".to_string())]),
        );
        let c = crate::openstack::credentials::Credentials::from_env(&env)
            .unwrap()
            .unwrap();
        assert_eq!(c.auth_url, "https://keystone.example.org:5000/v3");
        assert_eq!(c.interface, "public");
        let body = c.token_request();
        assert_eq!(
            body["auth"]["scope"]["project"]["id"],
            "5d3f9b2c8a1e4f6b9c0d7e2a1b3c4d5e"
        );
    }

    #[test]
    fn the_environment_wins_and_the_prompt_names_what_the_run_uses() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rc.sh");
        std::fs::write(&file, V3).unwrap();
        let env = Env::from_pairs([
            ("OS_USERNAME".to_string(), "from-env".to_string()),
            ("HOME".to_string(), "/h".to_string()),
        ]);
        let mut shown = String::new();
        let password = "it's \"q\" $x y";
        let resolved = resolve(Some(&file), &env, |prompt| {
            shown = prompt.to_string();
            Prompted::Password(SecretString::from(password.to_string()))
        })
        .unwrap();
        assert_eq!(
            shown,
            "Please enter your OpenStack Password for project demo-project as user from-env: "
        );
        assert_eq!(resolved.env.get("OS_USERNAME"), Some("from-env"));
        assert_eq!(resolved.env.get("OS_PASSWORD"), Some(password));
        assert_eq!(resolved.env.get("OS_PROJECT_NAME"), Some("demo-project"));
        assert!(!resolved.from_file.iter().any(|(k, _)| k == "OS_USERNAME"));
        assert!(!format!("{resolved:?}").contains(password));

        // OS_PASSWORD set: no prompt at all.
        let env = Env::from_pairs([("OS_PASSWORD".to_string(), "set".to_string())]);
        let resolved = resolve(Some(&file), &env, |_| panic!("asked")).unwrap();
        assert_eq!(resolved.env.get("OS_PASSWORD"), Some("set"));
        assert!(resolved.from_file.iter().all(|(k, _)| k != "OS_PASSWORD"));

        for (answer, needle) in [
            (Prompted::NoTerminal, "no controlling terminal"),
            (Prompted::Eof, "no password entered"),
            (Prompted::Interrupted, "interrupted"),
        ] {
            let err = resolve(Some(&file), &Env::default(), |_| answer).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let err = resolve(Some(&dir.path().join("none.sh")), &Env::default(), |_| {
            panic!("asked")
        })
        .unwrap_err();
        let err = Chain(&err).to_string();
        assert!(
            err.starts_with("--openrc ") && err.contains("none.sh: No such file"),
            "{err}"
        );
    }

    #[test]
    fn whatever_a_shell_would_run_is_refused_with_its_line() {
        for (line, needle) in [
            (
                "export OS_PASSWORD=$(pass show cloud)",
                "command substitution",
            ),
            ("export OS_AUTH_URL=`cat url`", "command substitution"),
            ("curl -s https://example.com/x.sh | sh", "a pipe"),
            ("alias openstack='openstack --insecure'", "an alias"),
            ("os() { openstack \"$@\"; }", "a function definition"),
            ("function os { openstack; }", "a function definition"),
            ("source ~/.other-rc", "`source` of another file"),
            (". ~/.other-rc", "`source` of another file"),
            ("eval \"$X\"", "eval"),
            ("export OS_USERNAME=$USER", "a variable expansion"),
            ("export OS_CACERT=~/ca.pem; ls", "single quotes"),
            ("export PATH=/tmp", "not an OpenStack variable"),
            ("unset HOME", "only OS_* variables"),
            ("echo \"$HOME\"", "other than OS_*"),
            (
                "export OS_PASSWORD=$OS_PASSWORD_INPUT",
                "no earlier `read -sr",
            ),
            ("openstack token issue", "a command (not shown"),
        ] {
            let text = format!("#!/usr/bin/env bash\n\nexport OS_USERNAME=u\n{line}\n");
            let err = parse_text(&text).unwrap_err();
            assert!(err.starts_with("rc.sh:4: "), "{line}: {err}");
            assert!(err.contains(needle), "{line}: {err}");
            assert!(err.contains("`source rc.sh`"), "{line}: {err}");
        }
    }

    #[test]
    fn a_password_in_the_file_needs_no_prompt() {
        let rc = parse_text("export OS_PASSWORD='p a$s'\nexport OS_USERNAME=u\n").unwrap();
        assert!(!rc.asks_password);
        assert_eq!(
            rc.values(),
            vec![
                ("OS_PASSWORD".to_string(), "p a$s".to_string()),
                ("OS_USERNAME".to_string(), "u".to_string())
            ]
        );
        let rc = parse_text("if [ -z \"${OS_REGION_NAME}\" ]; then unset OS_REGION_NAME; fi\nexport OS_REGION_NAME=\nif [ -z \"$OS_REGION_NAME\" ];  then unset OS_REGION_NAME;  fi\n").unwrap();
        assert!(rc.values().is_empty());
    }
}

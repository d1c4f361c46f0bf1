//! `OS_CLOUD` with `clouds.yaml`, as the `openstack` CLI reads it: the file named by
//! `OS_CLIENT_CONFIG_FILE`, else the first of `./clouds.yaml`,
//! `$XDG_CONFIG_HOME/openstack/clouds.yaml` (default `~/.config/openstack`) and
//! `/etc/openstack/clouds.yaml`; a `secure.yaml` beside it (or `OS_CLIENT_SECURE_FILE`)
//! adds secrets to the same entries. The named entry becomes the OS_* variables an RC
//! file would set, so the rest of the tool sees one kind of credentials. Variables set
//! in the environment win over the entry, so CI can hold a password beside a checked-in
//! clouds.yaml. Packer gets the same variables instead of OS_CLOUD: packer 1.6.6 reads
//! clouds.yaml but not secure.yaml, and runs in another directory than `./clouds.yaml`.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::env::Env;

#[derive(Debug, thiserror::Error)]
pub enum CloudsError {
    #[error("{}: no clouds.yaml found (looked at {}); create one, set OS_CLIENT_CONFIG_FILE{}", .by.name, .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "), .by.alternative())]
    NotFound { by: NamedBy, searched: Vec<PathBuf> },
    #[error("{}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// The parser's words, with the quoted text (it may be a secret) left out.
    #[error("{}: not valid YAML: {message}", .path.display())]
    NotYaml { path: PathBuf, message: String },
    #[error("{}: `{key}` of cloud `{cloud}` is {found} as YAML reads it, not text: quote it (`{key_leaf}: \"...\"`)", .path.display())]
    NotText {
        path: PathBuf,
        cloud: String,
        key: String,
        key_leaf: String,
        found: &'static str,
    },
    #[error("{}: {} has no cloud of that name under `clouds:` (it has: {}); fix {} or the file", .by.name, .path.display(), .available.join(", "), .by.setting)]
    NoSuchCloud {
        by: NamedBy,
        path: PathBuf,
        available: Vec<String>,
    },
}

/// Who named a cloud, for errors: `OS_CLOUD=NAME`, or a target's `cloud` key.
#[derive(Debug, Clone)]
pub struct NamedBy {
    /// `OS_CLOUD=smog`, `provision/image.toml [target.b] cloud = "smog"`.
    pub name: String,
    /// What to fix: `OS_CLOUD`, the target's `cloud`.
    pub setting: &'static str,
}

impl NamedBy {
    fn os_cloud(cloud: &str) -> NamedBy {
        NamedBy {
            name: format!("OS_CLOUD={cloud}"),
            setting: "OS_CLOUD",
        }
    }

    /// A target's `cloud = "NAME"`; `origin` is `PATH [target.NAME]`.
    pub fn target(origin: &str, cloud: &str) -> NamedBy {
        NamedBy {
            name: format!("{origin} cloud = {cloud:?}"),
            setting: "the target's `cloud`",
        }
    }

    /// OS_CLOUD's cloud may come from the OS_* variables instead; a target's only from
    /// clouds.yaml.
    fn alternative(&self) -> &'static str {
        if self.setting == "OS_CLOUD" {
            ", or export the cloud's OS_* variables instead"
        } else {
            ""
        }
    }
}

impl crate::exit::Coded for CloudsError {
    fn code(&self) -> crate::exit::Code {
        match self {
            CloudsError::NotFound { .. }
            | CloudsError::Unreadable { .. }
            | CloudsError::NotYaml { .. }
            | CloudsError::NotText { .. }
            | CloudsError::NoSuchCloud { .. } => crate::exit::Code::BadInput,
        }
    }
}

/// The environment with the OS_CLOUD entry's settings filled in. Unchanged when
/// OS_CLOUD is not set.
pub struct Resolved {
    pub env: Env,
    /// The variables the entry supplied, for packer (which then must not see OS_CLOUD).
    pub from_entry: Vec<(String, String)>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.from_entry.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Resolved")
            .field("from_entry", &keys)
            .finish()
    }
}

pub fn resolve(env: &Env) -> Result<Resolved, CloudsError> {
    let Some(cloud) = env.get("OS_CLOUD") else {
        return Ok(Resolved {
            env: env.clone(),
            from_entry: Vec::new(),
        });
    };
    resolve_named(env, cloud, NamedBy::os_cloud(cloud))
}

/// A target's cloud: its clouds.yaml entry (with secure.yaml) alone, found where OS_CLOUD's
/// would be. The environment's other OS_* settings are the environment's own cloud's, so
/// none of them applies here.
pub fn resolve_entry(env: &Env, cloud: &str, by: NamedBy) -> Result<Resolved, CloudsError> {
    let own = env
        .iter()
        .filter(|(key, _)| {
            !key.starts_with("OS_")
                || key.as_str() == "OS_CLIENT_CONFIG_FILE"
                || key.as_str() == "OS_CLIENT_SECURE_FILE"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain([("OS_CLOUD".to_string(), cloud.to_string())]);
    resolve_named(&Env::from_pairs(own), cloud, by)
}

/// `cloud`'s entry under the variables `env` sets (which win).
fn resolve_named(env: &Env, cloud: &str, by: NamedBy) -> Result<Resolved, CloudsError> {
    let searched = candidates(env, "OS_CLIENT_CONFIG_FILE", "clouds.yaml");
    // The first that exists: one that is not a regular file is refused by name when read.
    let Some(clouds_file) = searched.iter().find(|p| p.exists()).cloned() else {
        return Err(CloudsError::NotFound { by, searched });
    };
    let mut entry = read_entry(&clouds_file, cloud)?.ok_or_else(|| CloudsError::NoSuchCloud {
        by,
        path: clouds_file.clone(),
        available: cloud_names(&clouds_file).unwrap_or_default(),
    })?;
    checked_variables(&entry, &clouds_file, cloud)?;
    let secure_file = candidates(env, "OS_CLIENT_SECURE_FILE", "secure.yaml")
        .into_iter()
        .find(|p| p.exists());
    if let Some(secure_file) = secure_file {
        if let Some(secure) = read_entry(&secure_file, cloud)? {
            checked_variables(&secure, &secure_file, cloud)?;
            merge(&mut entry, secure);
        }
    }
    let from_entry: Vec<(String, String)> = checked_variables(&entry, &clouds_file, cloud)?
        .into_iter()
        .filter(|(key, _)| !env.has(key))
        .collect();
    let merged = Env::from_pairs(
        env.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(from_entry.iter().cloned()),
    );
    Ok(Resolved {
        env: merged,
        from_entry,
    })
}

fn checked_variables(
    entry: &Value,
    path: &Path,
    cloud: &str,
) -> Result<Vec<(String, String)>, CloudsError> {
    variables(entry).map_err(|(key, found)| CloudsError::NotText {
        path: path.to_path_buf(),
        cloud: cloud.to_string(),
        key_leaf: key.rsplit('.').next().unwrap_or(&key).to_string(),
        key,
        found,
    })
}

/// Where to look, in order: the variable's file alone when it is set.
fn candidates(env: &Env, variable: &str, file: &str) -> Vec<PathBuf> {
    if let Some(path) = env.get(variable) {
        return vec![PathBuf::from(path)];
    }
    let config_home = env
        .get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|home| Path::new(home).join(".config")));
    let mut paths = vec![PathBuf::from(file)];
    if let Some(config_home) = config_home {
        paths.push(config_home.join("openstack").join(file));
    }
    paths.push(Path::new("/etc/openstack").join(file));
    paths
}

fn load(path: &Path) -> Result<Value, CloudsError> {
    let text =
        crate::input_file::read_text(path, crate::input_file::CONFIG_CAP).map_err(|error| {
            CloudsError::Unreadable {
                path: path.to_path_buf(),
                error,
            }
        })?;
    parse(&text, path)
}

/// clouds.yaml or secure.yaml text as a YAML value.
pub fn parse(text: &str, path: &Path) -> Result<Value, CloudsError> {
    serde_yaml_ng::from_str(text).map_err(|e| CloudsError::NotYaml {
        path: path.to_path_buf(),
        message: without_quoted_text(&e.to_string()),
    })
}

/// A YAML error's message with what it quotes of the file masked: a duplicate key or a
/// value of the wrong type (`password: !!int hunter2`) may be a secret. The position and
/// the path of keys to it remain.
fn without_quoted_text(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            // Serde writes quoted text as Rust string literals: `\"` does not end it.
            let mut escaped = false;
            for inner in chars.by_ref() {
                if inner == '"' && !escaped {
                    break;
                }
                escaped = inner == '\\' && !escaped;
            }
            out.push_str("(not shown)\"");
        }
    }
    out
}

fn read_entry(path: &Path, cloud: &str) -> Result<Option<Value>, CloudsError> {
    Ok(load(path)?
        .get("clouds")
        .and_then(|c| c.get(cloud))
        .cloned())
}

fn cloud_names(path: &Path) -> Result<Vec<String>, CloudsError> {
    Ok(load(path)?
        .get("clouds")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// secure.yaml's values over clouds.yaml's, mappings merged key by key.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// The RC-file variables an entry stands for: `auth.<key>` is `OS_<KEY>`, and
/// `region_name` and `interface` sit beside `auth`. Every value must be YAML text: an
/// unquoted `0x10`, `1e3`, `true` or `null` reads as something else, and a password
/// converted back to text would be another password. Err names the key and what it is.
pub fn variables(entry: &Value) -> Result<Vec<(String, String)>, (String, &'static str)> {
    let empty = Mapping::new();
    let auth = entry
        .get("auth")
        .and_then(Value::as_mapping)
        .unwrap_or(&empty);
    let top = ["region_name", "interface"]
        .into_iter()
        .filter_map(|key| Some((key.to_string(), key, entry.get(key)?)));
    let auth = auth.iter().filter_map(|(key, value)| {
        let key = key.as_str()?;
        Some((format!("auth.{key}"), key, value))
    });
    auth.chain(top)
        .map(|(shown, key, value)| match value {
            Value::String(s) => Ok((format!("OS_{}", key.to_ascii_uppercase()), s.clone())),
            other => Err((shown, yaml_kind(other))),
        })
        .collect()
}

fn yaml_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null (empty)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Chain;

    const CLOUDS: &str = r#"
clouds:
  smog:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: alice
      project_name: c2016005
      user_domain_name: Default
      project_domain_name: Default
    region_name: east
    interface: internal
    identity_api_version: 3
  ci:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example:5000
      application_credential_id: "0123"
"#;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn an_entry_becomes_rc_variables_with_secure_yaml_and_the_environment_on_top() {
        let dir = dir_with(&[
            ("clouds.yaml", CLOUDS),
            (
                "secure.yaml",
                "clouds:\n  smog:\n    auth:\n      password: \"s3cret 'q' $x\"\n",
            ),
        ]);
        let clouds = dir.path().join("clouds.yaml");
        let secure = dir.path().join("secure.yaml");
        let resolved = resolve(&env(&[
            ("OS_CLOUD", "smog"),
            ("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap()),
            ("OS_CLIENT_SECURE_FILE", secure.to_str().unwrap()),
            ("OS_REGION_NAME", "west"),
        ]))
        .unwrap();
        let e = &resolved.env;
        assert_eq!(
            e.get("OS_AUTH_URL"),
            Some("https://keystone.example:5000/v3")
        );
        assert_eq!(e.get("OS_USERNAME"), Some("alice"));
        assert_eq!(e.get("OS_PASSWORD"), Some("s3cret 'q' $x"));
        assert_eq!(e.get("OS_PROJECT_NAME"), Some("c2016005"));
        assert_eq!(e.get("OS_INTERFACE"), Some("internal"));
        assert_eq!(e.get("OS_REGION_NAME"), Some("west"), "environment wins");
        let keys: Vec<&str> = resolved
            .from_entry
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert!(keys.contains(&"OS_PASSWORD") && !keys.contains(&"OS_REGION_NAME"));
        assert!(
            !format!("{resolved:?}").contains("s3cret"),
            "Debug shows no secret"
        );
        let app = resolve(&env(&[
            ("OS_CLOUD", "ci"),
            ("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap()),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "from-ci"),
        ]))
        .unwrap();
        assert_eq!(app.env.get("OS_APPLICATION_CREDENTIAL_ID"), Some("0123"));
        assert_eq!(
            crate::openstack::credentials::detect(&app.env),
            Some(crate::openstack::credentials::AuthMethod::ApplicationCredential)
        );
    }

    #[test]
    fn the_standard_locations_are_searched_in_order() {
        let home = dir_with(&[]);
        std::fs::create_dir_all(home.path().join(".config/openstack")).unwrap();
        std::fs::write(home.path().join(".config/openstack/clouds.yaml"), CLOUDS).unwrap();
        let e = env(&[
            ("OS_CLOUD", "smog"),
            ("HOME", home.path().to_str().unwrap()),
        ]);
        let resolved = resolve(&e).unwrap();
        assert_eq!(resolved.env.get("OS_USERNAME"), Some("alice"));
        assert_eq!(
            candidates(&e, "OS_CLIENT_CONFIG_FILE", "clouds.yaml"),
            vec![
                PathBuf::from("clouds.yaml"),
                home.path().join(".config/openstack/clouds.yaml"),
                PathBuf::from("/etc/openstack/clouds.yaml"),
            ]
        );
    }

    #[test]
    fn errors_name_the_cloud_the_file_and_what_exists() {
        let dir = dir_with(&[("clouds.yaml", CLOUDS), ("bad.yaml", "clouds: [\n")]);
        let error_for = |cloud: &str, file: &str| {
            let path = dir.path().join(file);
            resolve(&env(&[
                ("OS_CLOUD", cloud),
                ("OS_CLIENT_CONFIG_FILE", path.to_str().unwrap()),
            ]))
            .unwrap_err()
            .to_string()
        };
        let err = error_for("nope", "clouds.yaml");
        assert!(
            err.contains("OS_CLOUD=nope") && err.contains("(it has: smog, ci)"),
            "{err}"
        );
        assert!(
            err.contains(dir.path().join("clouds.yaml").to_str().unwrap()),
            "{err}"
        );
        let err = error_for("smog", "missing.yaml");
        assert!(
            err.contains("no clouds.yaml found") && err.contains("missing.yaml"),
            "{err}"
        );
        let err = error_for("smog", "bad.yaml");
        assert!(err.contains("bad.yaml: not valid YAML"), "{err}");
    }

    #[test]
    fn a_value_yaml_reads_as_no_text_is_refused_naming_the_key() {
        for (value, found) in [
            ("0x10", "a number"),
            ("1e3", "a number"),
            ("true", "a boolean"),
            ("null", "null (empty)"),
            ("", "null (empty)"),
        ] {
            let secure = format!("clouds:\n  smog:\n    auth:\n      password: {value}\n");
            let dir = dir_with(&[("clouds.yaml", CLOUDS), ("secure.yaml", &secure)]);
            let err = resolve(&env(&[
                ("OS_CLOUD", "smog"),
                (
                    "OS_CLIENT_CONFIG_FILE",
                    dir.path().join("clouds.yaml").to_str().unwrap(),
                ),
                (
                    "OS_CLIENT_SECURE_FILE",
                    dir.path().join("secure.yaml").to_str().unwrap(),
                ),
            ]))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("secure.yaml: `auth.password` of cloud `smog`")
                    && err.contains(found)
                    && err.contains("quote it"),
                "{value}: {err}"
            );
        }
        let quoted = "clouds:\n  smog:\n    auth:\n      password: \"0x10\"\n";
        let dir = dir_with(&[("clouds.yaml", quoted)]);
        let resolved = resolve(&env(&[
            ("OS_CLOUD", "smog"),
            (
                "OS_CLIENT_CONFIG_FILE",
                dir.path().join("clouds.yaml").to_str().unwrap(),
            ),
        ]))
        .unwrap();
        assert_eq!(resolved.env.get("OS_PASSWORD"), Some("0x10"));
    }

    #[test]
    fn a_yaml_error_never_quotes_the_file() {
        let secret = "Hunter2 'q' \\\" $x";
        for text in [
            format!("clouds:\n  c:\n    auth:\n      password: !!int \"{secret}\"\n"),
            format!("clouds:\n  c:\n    auth:\n      {{\"{secret}\": 1, \"{secret}\": 2}}\n"),
            format!("clouds:\n  c:\n    auth:\n      password: \"{secret}\n"),
        ] {
            let err = parse(&text, Path::new("c.yaml")).unwrap_err().to_string();
            assert!(!err.contains("Hunter2"), "{err}");
            assert!(err.starts_with("c.yaml: not valid YAML: "), "{err}");
        }
        assert_eq!(
            without_quoted_text(r#"a: key "x\"y" at line 1, "open"#),
            r#"a: key "(not shown)" at line 1, "(not shown)""#
        );
    }

    #[test]
    fn a_named_file_that_is_no_regular_file_is_refused_by_name() {
        let err = resolve(&env(&[
            ("OS_CLOUD", "smog"),
            ("OS_CLIENT_CONFIG_FILE", "/dev/zero"),
        ]))
        .unwrap_err();
        let err = Chain(&err).to_string();
        assert!(err.contains("/dev/zero: is a character device"), "{err}");
    }

    #[test]
    fn without_os_cloud_nothing_is_read() {
        let e = env(&[("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml")]);
        let resolved = resolve(&e).unwrap();
        assert!(resolved.from_entry.is_empty());
        assert_eq!(
            resolved.env.get("OS_CLIENT_CONFIG_FILE"),
            Some("/nonexistent/clouds.yaml")
        );
    }
}

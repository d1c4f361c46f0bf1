//! Everything a run takes besides the definition: variables (definition defaults, the
//! seed's var-file, `--var`), the worker config (file and environment) and the
//! fingerprint key. Cloud credentials are the session's (commands/session.rs). Reading
//! the files named is this module's only I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use thiserror::Error;

use crate::definition::{self, Definition};
use crate::env::Env;
use crate::secrets::WorkerConfig;
use crate::seed::{self, SeedError};
use crate::vars;

/// What the command line says about inputs.
#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    pub var_file: Option<PathBuf>,
    pub vars: Vec<String>,
    pub worker_config: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum InputError {
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// A value that is there but wrong: where it came from, its key, and what is wrong.
    #[error("{origin}: {key}: {message}")]
    BadValue {
        origin: String,
        key: String,
        message: String,
    },
    /// A value whose file or files cannot be used, for the reason in its source.
    #[error("{origin}: {key}")]
    Unusable {
        origin: String,
        key: String,
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{} is too short ({len} bytes): use at least {MIN_FINGERPRINT_KEY_LEN} random bytes, e.g. `openssl rand -hex 32`", vars::FINGERPRINT_KEY_ENV)]
    WeakFingerprintKey { len: usize },
}

impl crate::exit::Coded for InputError {
    fn code(&self) -> crate::exit::Code {
        match self {
            InputError::Seed(seed) => seed.code(),
            InputError::BadValue { .. }
            | InputError::Unusable { .. }
            | InputError::WeakFingerprintKey { .. } => crate::exit::Code::BadInput,
        }
    }
}

pub const MIN_FINGERPRINT_KEY_LEN: usize = 32;

/// Sets `worker_source` (over the var-file, under `--var`): the way to give a URL with
/// credentials that keeps them off every command line.
pub const WORKER_SOURCE_ENV: &str = "UWORKER_IMAGE_WORKER_SOURCE";

/// The test host as the seed's `test_host` (`host` or `host:port`) gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestHost {
    pub host: String,
    pub port: u16,
}

#[derive(Debug)]
pub struct Inputs {
    /// Every variable value: definition variables and the seed's keys that were given.
    /// Paths (`uworker_config_file`, `test_ssh_key`) are resolved against the var-file.
    pub values: BTreeMap<String, String>,
    /// Where each value came from, for messages.
    pub origins: BTreeMap<String, String>,
    pub worker: WorkerConfig,
    pub fingerprint_key: Option<SecretString>,
}

impl Inputs {
    pub fn gather(
        definition: &Definition,
        options: &InputOptions,
        env: &Env,
    ) -> Result<Inputs, InputError> {
        let mut values = definition.variables.clone();
        let mut origins: BTreeMap<String, String> = values
            .keys()
            .map(|k| (k.clone(), definition.path().display().to_string()))
            .collect();

        if let Some(path) = &options.var_file {
            let origin = path.display().to_string();
            let base = path.parent().unwrap_or(Path::new(""));
            for (key, value) in seed::read_var_file(path)? {
                seed::check_variable_known(&key, &origin, &definition.variables)?;
                let value = if key == vars::WORKER_CONFIG_FILE_KEY || key == vars::TEST_SSH_KEY {
                    resolve(base, &value)
                } else {
                    value
                };
                origins.insert(key.clone(), origin.clone());
                values.insert(key, value);
            }
        }
        // The worker source from the environment: a private repository's URL carries a
        // token, which on the command line (`--var`) every local user could read.
        if let Some(value) = env.get(WORKER_SOURCE_ENV) {
            seed::check_variable_known(
                crate::worker_source::VARIABLE,
                WORKER_SOURCE_ENV,
                &definition.variables,
            )?;
            origins.insert(
                crate::worker_source::VARIABLE.into(),
                WORKER_SOURCE_ENV.into(),
            );
            values.insert(crate::worker_source::VARIABLE.into(), value.to_string());
        }
        for arg in &options.vars {
            let (key, value) = seed::parse_var_arg(arg)?;
            seed::check_variable_known(&key, "--var", &definition.variables)?;
            if !crate::userinfo::strip(&value).userinfo.is_empty() {
                // On the command line for the whole run, readable by every local user.
                return Err(InputError::BadValue {
                    origin: "--var".into(),
                    key,
                    message: format!(
                        "holds a URL's credentials, which a command line shows every local user: give the value in the var-file (0600) or, for worker_source, in {WORKER_SOURCE_ENV}"
                    ),
                });
            }
            // Packer runs in a work directory: a relative path means one from here.
            let value = if key == vars::WORKER_CONFIG_FILE_KEY || key == vars::TEST_SSH_KEY {
                resolve(Path::new(""), &value)
            } else {
                value
            };
            origins.insert(key.clone(), "--var".into());
            values.insert(key, value);
        }
        if let Some(path) = &options.worker_config {
            origins.insert(
                vars::WORKER_CONFIG_FILE_KEY.into(),
                "--worker-config".into(),
            );
            values.insert(
                vars::WORKER_CONFIG_FILE_KEY.into(),
                path.display().to_string(),
            );
        }

        let inputs_check = |key: &str, check: fn(&str) -> Result<(), String>| match values
            .get(key)
            .filter(|v| !v.is_empty())
        {
            Some(value) => check(value).map_err(|message| InputError::BadValue {
                origin: origins[key].clone(),
                key: key.to_string(),
                message,
            }),
            None => Ok(()),
        };
        inputs_check(vars::FLOATING_IP, definition::check_ip)?;
        inputs_check(vars::TEST_HOST, |v| parse_test_host(v).map(|_| ()))?;

        let file = match values.get(vars::WORKER_CONFIG_FILE_KEY) {
            Some(path) if !path.is_empty() => {
                Some((path.clone(), seed::read_worker_config(Path::new(path))?))
            }
            _ => None,
        };
        let worker = WorkerConfig::gather(
            file.as_ref().map(|(p, e)| (p.as_str(), e.clone())),
            env,
            &definition.worker,
        );

        let fingerprint_key = match env.get(vars::FINGERPRINT_KEY_ENV) {
            Some(key) if key.len() < MIN_FINGERPRINT_KEY_LEN => {
                return Err(InputError::WeakFingerprintKey { len: key.len() })
            }
            Some(key) => Some(SecretString::from(key.to_string())),
            None => None,
        };

        Ok(Inputs {
            values,
            origins,
            worker,
            fingerprint_key,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn test_host(&self) -> Option<TestHost> {
        self.get(vars::TEST_HOST)
            .and_then(|v| parse_test_host(v).ok())
    }
}

/// `value` as an absolute path: relative ones are relative to `base` (relative to the
/// invocation's directory in turn), since packer reads them from its work directory.
fn resolve(base: &Path, value: &str) -> String {
    if value.is_empty() || Path::new(value).is_absolute() {
        return value.to_string();
    }
    let joined = base.join(value);
    std::path::absolute(&joined)
        .unwrap_or(joined)
        .display()
        .to_string()
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
pub fn parse_test_host(value: &str) -> Result<TestHost, String> {
    // A user or credentials in it (`user:password@host`) would be printed: not quoted.
    if value.contains('@') {
        return Err("holds `@`: give the host alone (`host` or `host:port`); the SSH user is test_ssh_username".into());
    }
    let bad = || format!("`{value}` is not `host` or `host:port`");
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
        match tail.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if tail.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else if value.matches(':').count() == 1 {
        let (host, port) = value.split_once(':').expect("one colon");
        (host, Some(port))
    } else {
        (value, None)
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port `{p}` in `{value}` is not 1-65535"))?,
        None => 22,
    };
    Ok(TestHost {
        host: host.to_string(),
        port,
    })
}

/// An http(s) URL with a host, as the worker's requests need. The value is not echoed:
/// it is handled as a secret like every worker value.
pub fn check_url(value: &str) -> Result<(), String> {
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
    use super::*;

    #[test]
    fn url_shapes() {
        assert!(check_url("http://example.com/uservice/api/root").is_ok());
        assert!(check_url("https://h:8443").is_ok());
        assert!(check_url("example.com").is_err());
        assert!(check_url("http:///x").is_err());
        assert!(check_url("http://h/a b").is_err());
    }

    #[test]
    fn test_host_forms() {
        let h = |host: &str, port| {
            Ok(TestHost {
                host: host.into(),
                port,
            })
        };
        assert_eq!(parse_test_host("130.238.29.14"), h("130.238.29.14", 22));
        assert_eq!(parse_test_host("127.0.0.1:2222"), h("127.0.0.1", 2222));
        assert_eq!(parse_test_host("[::1]:2200"), h("::1", 2200));
        assert_eq!(parse_test_host("::1"), h("::1", 22));
        assert!(parse_test_host("host:0").is_err());
        assert!(parse_test_host("host:x").is_err());
        assert!(parse_test_host("a b").is_err());
        assert!(parse_test_host("").is_err());
        let err = parse_test_host("ubuntu:pa$$ 'w@rd@host:22").unwrap_err();
        assert!(
            !err.contains("pa$$") && err.contains("test_ssh_username"),
            "{err}"
        );
    }
}

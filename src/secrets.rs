//! Secret values: the worker config, the generated config file, and redaction of every
//! secret the run knows from anything the tool prints.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};
use secrecy::{ExposeSecret, SecretString};

use crate::definition::WorkerKeys;
use crate::env::Env;
use crate::seed::ConfigEntry;
use crate::shell;
use crate::vars;

/// Environment variables whose values are secrets wherever they appear.
pub const SECRET_ENV: [&str; 5] = [
    "OS_PASSWORD",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_TOKEN",
    "GITHUB_TOKEN",
    vars::FINGERPRINT_KEY_ENV,
];

/// Where a worker value came from, for messages (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Environment,
    File(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Environment => f.write_str("environment"),
            Origin::File(path) => f.write_str(path),
        }
    }
}

/// The worker's configuration: the UWORKER_* values the definition passes on to the
/// image, each one treated as a secret, and where the others it was given came from
/// (for one warning; their values go nowhere, so nothing masks them: a runner's
/// `UWORKER_LOG_LEVEL=info` must not blank out every "info" in the logs).
#[derive(Default)]
pub struct WorkerConfig {
    values: BTreeMap<String, (SecretString, Origin)>,
    ignored: BTreeMap<String, Origin>,
}

impl fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("ignored", &self.ignored.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WorkerConfig {
    /// File entries first, then the environment's UWORKER_* variables on top (so CI can
    /// supply one value, such as a password, beside a checked-in file). Only the keys
    /// `keys` passes on are the worker's; a runner's other UWORKER_* variables (or a
    /// file's unlisted keys) must change neither the image nor its fingerprint.
    pub fn gather(
        file: Option<(&str, Vec<ConfigEntry>)>,
        env: &Env,
        keys: &WorkerKeys,
    ) -> WorkerConfig {
        let mut config = WorkerConfig::default();
        let mut put = |key: String, value: String, origin: Origin| {
            if keys.passes_on(&key) {
                config
                    .values
                    .insert(key, (SecretString::from(value), origin));
            } else {
                config.ignored.insert(key, origin);
            }
        };
        if let Some((path, entries)) = file {
            for entry in entries {
                put(entry.key, entry.value, Origin::File(path.to_string()));
            }
        }
        for (key, value) in env.iter() {
            if vars::is_worker_key(key) {
                put(key.clone(), value.clone(), Origin::Environment);
            }
        }
        config
    }

    /// The warning about the UWORKER_* keys given but not passed on, naming each and
    /// where it came from (never a value); None when there are none.
    pub fn ignored_warning(&self) -> Option<String> {
        if self.ignored.is_empty() {
            return None;
        }
        let named: Vec<String> = self
            .ignored
            .iter()
            .map(|(key, origin)| format!("{key} ({origin})"))
            .collect();
        Some(format!(
            "warning: {} not passed on to the image: the definition's [worker] does not list {} (required, optional or pass_through)",
            named.join(", "),
            if named.len() == 1 { "it" } else { "them" }
        ))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.expose_secret())
    }

    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.values.get(key).map(|(_, o)| o)
    }

    /// Required keys that are absent or empty.
    pub fn missing<'a>(&self, required: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        required
            .into_iter()
            .filter(|k| self.get(k).is_none_or(str::is_empty))
            .collect()
    }

    /// The values passed on: for the redactor only.
    pub fn secret_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(k, (v, _))| (k.as_str(), v.expose_secret()))
    }

    /// The config file uploaded to the image: the seed's `export KEY='value'` format,
    /// single-quoted so every value, whatever it holds, survives `.`/`source` byte for byte.
    pub fn config_file(&self) -> SecretString {
        let mut out = String::from("# Generated by uworker-image. Read by the uworker service.\n");
        for (key, (value, _)) in &self.values {
            out.push_str("export ");
            out.push_str(key);
            out.push('=');
            out.push_str(&shell::quote(value.expose_secret()));
            out.push('\n');
        }
        SecretString::from(out)
    }
}

/// Replaces every known secret value in text before it is printed.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    needles: Vec<String>,
    /// All needles in one automaton: one pass over each line, whatever their number.
    matcher: Option<AhoCorasick>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} values)", self.needles.len())
    }
}

pub const MASK: &str = "***";

/// Values shorter than this are not masked: a 1-3 character value is guessed at once
/// anyway, and masking every `u` or `ci` in a log would make it unreadable.
pub const MIN_REDACTED_LEN: usize = 4;

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut needles: Vec<String> = Vec::new();
        for value in values {
            // Output is handled line by line: each line of a multi-line secret is one too.
            let parts = std::iter::once(value).chain(value.lines());
            for part in parts {
                let part = part.trim_end_matches('\r');
                if part.trim().chars().count() >= MIN_REDACTED_LEN
                    && !needles.iter().any(|n| n == part)
                {
                    needles.push(part.to_string());
                }
            }
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        // Matched with line breaks as spaces, in the secrets and in the text (see redact).
        let flat: Vec<String> = needles.iter().map(|n| n.replace('\n', " ")).collect();
        let matcher = (!needles.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&flat)
                .expect("secret values make a valid automaton")
        });
        Redactor { needles, matcher }
    }

    /// All secrets of a run: worker values and the secret environment variables.
    pub fn for_run(worker: &WorkerConfig, env: &Env) -> Redactor {
        Redactor::for_run_with(worker, std::iter::empty(), std::iter::empty(), env)
    }

    /// `for_run`, plus the credentials of every URL in `values` (variable values such as
    /// `worker_source = "git+https://user:TOKEN@host/..."`), in each form they print in,
    /// and `more` secrets (the credentials of the clouds targets name).
    pub fn for_run_with<'a, 'm>(
        worker: &WorkerConfig,
        values: impl IntoIterator<Item = &'a str>,
        more: impl IntoIterator<Item = &'m str>,
        env: &Env,
    ) -> Redactor {
        let env_secrets = SECRET_ENV.iter().filter_map(|k| env.get(k));
        let other_secrets: Vec<String> = values
            .into_iter()
            .flat_map(|v| crate::userinfo::strip(v).userinfo)
            .flat_map(|info| crate::userinfo::secret_forms(&info))
            .chain(more.into_iter().map(str::to_string))
            .collect();
        Redactor::new(
            worker
                .secret_values()
                .map(|(_, v)| v)
                .chain(env_secrets)
                .chain(other_secrets.iter().map(String::as_str)),
        )
    }

    /// The text with every secret replaced by `***`; borrowed when there is none.
    /// Packer word-wraps long messages, so a space inside a secret may arrive as a line
    /// break: matching runs on the text with line breaks as spaces (the same byte
    /// offsets, both being one byte), and the masks go into the text itself.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(matcher) = &self.matcher else {
            return Cow::Borrowed(text);
        };
        let flat = if text.contains('\n') {
            Cow::Owned(text.replace('\n', " "))
        } else {
            Cow::Borrowed(text)
        };
        let mut out = String::new();
        let mut copied = 0;
        for found in matcher.find_iter(flat.as_ref()) {
            // Matches are whole needles (UTF-8) in a text with the same char boundaries,
            // so `get` always succeeds; were it ever not to, the rest is masked, not shown.
            let Some(before) = text.get(copied..found.start()) else {
                out.push_str(MASK);
                return Cow::Owned(out);
            };
            out.push_str(before);
            out.push_str(MASK);
            copied = found.end();
        }
        if copied == 0 && out.is_empty() {
            return Cow::Borrowed(text);
        }
        out.push_str(text.get(copied..).unwrap_or(MASK));
        Cow::Owned(out)
    }

    /// This redactor plus every secret as packer's machine-readable output escapes it
    /// (`,` as `%!(PACKER_COMMA)`, line breaks as `\n`), for lines not yet unescaped.
    pub fn with_packer_escapes(&self) -> Redactor {
        let escaped: Vec<String> = self
            .needles
            .iter()
            .map(|n| {
                n.replace(',', "%!(PACKER_COMMA)")
                    .replace('\n', "\\n")
                    .replace('\r', "\\r")
            })
            .collect();
        Redactor::new(self.needles.iter().chain(&escaped).map(String::as_str))
    }

    /// Values for `::add-mask::`, one per line of each secret.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.needles.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn environment_overrides_file_and_ignores_the_tools_own_variables() {
        let entries = vec![
            ConfigEntry {
                key: "UWORKER_JOB_API_ROOT".into(),
                value: "http://file".into(),
                line: 1,
            },
            ConfigEntry {
                key: "UWORKER_JOB_API_PASSWORD".into(),
                value: "from-file".into(),
                line: 2,
            },
        ];
        let env = env(&[
            ("UWORKER_JOB_API_PASSWORD", "from-env"),
            ("UWORKER_IMAGE_DIR", "provision"),
            ("UWORKER_FINGERPRINT_KEY", "k"),
            ("HOME", "/root"),
        ]);
        let config = WorkerConfig::gather(Some(("w.conf", entries)), &env, &WorkerKeys::default());
        assert_eq!(
            config.keys().collect::<Vec<_>>(),
            ["UWORKER_JOB_API_PASSWORD", "UWORKER_JOB_API_ROOT"]
        );
        assert_eq!(config.get("UWORKER_JOB_API_PASSWORD"), Some("from-env"));
        assert_eq!(
            config.origin("UWORKER_JOB_API_ROOT"),
            Some(&Origin::File("w.conf".into()))
        );
        assert_eq!(
            config.missing(["UWORKER_JOB_API_ROOT", "UWORKER_JOB_API_USERNAME"]),
            ["UWORKER_JOB_API_USERNAME"]
        );
    }

    #[test]
    fn debug_output_never_shows_values() {
        let config = WorkerConfig::gather(
            None,
            &env(&[
                ("UWORKER_JOB_API_PASSWORD", "hunter2"),
                ("UWORKER_X", "stray1"),
            ]),
            &WorkerKeys::default(),
        );
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!format!("{config:?}").contains("stray1"));
        let warning = config.ignored_warning().unwrap();
        assert!(
            warning.contains("UWORKER_X (environment)") && !warning.contains("stray1"),
            "{warning}"
        );
        // A stray value goes nowhere, so nothing masks it; the worker's values are masked.
        let redactor = Redactor::for_run(&config, &env(&[]));
        assert_eq!(redactor.redact("stray1 hunter2"), "stray1 ***");
    }

    #[test]
    fn escaped_forms_catch_secrets_before_packer_lines_are_unescaped() {
        let r = Redactor::new(["a,b\nc", "lit\\nx"]).with_packer_escapes();
        assert_eq!(
            r.redact("1,,ui,message,a%!(PACKER_COMMA)b\\nc"),
            "1,,ui,message,***"
        );
        assert_eq!(r.redact("say lit\\nx"), "say ***");
    }

    #[test]
    fn a_secret_wrapped_at_a_space_is_still_masked() {
        let r = Redactor::new(["s3cret 'Value' $42"]);
        assert_eq!(
            r.redact("stat /x/s3cret 'Value'\n$42: no such file"),
            "stat /x/***: no such file"
        );
        assert_eq!(r.redact("no secret\nhere"), "no secret\nhere");
        let multi = Redactor::new(["line one\nline two"]);
        assert_eq!(multi.redact("a line one\nline two b"), "a *** b");
    }

    #[test]
    fn redacts_longest_first_and_each_line_of_multiline_secrets() {
        let r = Redactor::new(["abcd", "abcdefg", "top!\nsecret", "  ", "ci"]);
        assert_eq!(r.redact("x abcdefg y abcd"), "x *** y ***");
        assert_eq!(r.redact("ci builds"), "ci builds", "too short to mask");
        assert_eq!(r.redact("say top!"), "say ***");
        assert_eq!(r.redact("secret"), "***");
        assert_eq!(
            r.redact("  spaces  "),
            "  spaces  ",
            "blank secrets are not needles"
        );
    }
}

//! The fingerprint: SHA-256 of a canonical, versioned manifest of every input that shapes
//! an image of one target. Secret values enter only through HMAC under a dedicated key.

pub mod files;

use std::collections::BTreeMap;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::definition::{Definition, SourceImage, Target};
use crate::render::{self, Builders, VarKind};
use crate::secrets::WorkerConfig;

pub use files::FileInput;

/// Bumped whenever what the manifest holds, or how it is hashed, changes.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Error)]
pub enum FingerprintError {
    #[error("cannot read {path}")]
    Unreadable {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{path} is not a manifest or a record of an earlier run")]
    Previous {
        path: PathBuf,
        #[source]
        error: serde_json::Error,
    },
}

impl crate::exit::Coded for FingerprintError {
    fn code(&self) -> crate::exit::Code {
        match self {
            FingerprintError::Unreadable { .. } | FingerprintError::Previous { .. } => {
                crate::exit::Code::BadInput
            }
        }
    }
}

/// The base image as the definition names it (a later step resolves names to IDs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BaseImage {
    pub by: BaseImageBy,
    pub value: String,
    /// The ID a name resolved to, when it was resolved.
    pub resolved_id: Option<String>,
}

/// How the definition names the base image: its spelling is hashed, so it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BaseImageBy {
    /// `source_image`: a Glance image ID.
    Id,
    /// `source_image_name`: resolved to an ID when a cloud is at hand.
    Name,
}

impl BaseImageBy {
    pub fn as_str(self) -> &'static str {
        match self {
            BaseImageBy::Id => "id",
            BaseImageBy::Name => "name",
        }
    }
}

/// `sha256:<hex>`: the SHA-256 of a manifest's canonical JSON.
// Read back from a record it is the file's text as it stands: nothing assumes it is
// well-formed (`short` takes chars, never slices bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits: the release tag's and the image tag's.
    pub fn short(&self) -> String {
        self.0
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect()
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Fingerprint {
    fn from(text: String) -> Fingerprint {
        Fingerprint(text)
    }
}

impl From<Fingerprint> for String {
    fn from(fingerprint: Fingerprint) -> String {
        fingerprint.0
    }
}

/// Everything that shapes the image of one target. Serialized with sorted keys; its
/// SHA-256 is the fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    pub schema: u32,
    pub image: String,
    pub target: String,
    /// SHA-256 of the target's rendered template (secrets are references in it).
    pub template_sha256: String,
    pub files: Vec<FileInput>,
    /// Non-secret variable values.
    pub variables: BTreeMap<String, String>,
    /// Secret names; each value is an HMAC of the secret when a fingerprint key is set.
    pub secrets: BTreeMap<String, Option<String>>,
    pub base_image: BaseImage,
    pub packer_version: String,
}

/// The secret entry of a variable's URL credentials: `worker_source.userinfo`.
pub const USERINFO_SUFFIX: &str = ".userinfo";

/// Inputs of a manifest that do not come from the file system.
pub struct ManifestInputs<'a> {
    pub definition: &'a Definition,
    pub target: &'a Target,
    /// Values of the non-secret variables (defaults already applied).
    pub values: &'a BTreeMap<String, String>,
    pub worker: &'a WorkerConfig,
    pub fingerprint_key: Option<&'a SecretString>,
    pub packer_version: &'a str,
    /// The image ID a `source_image_name` resolved to in Glance, when it was looked up.
    pub resolved_base_image: Option<&'a str>,
}

/// Local paths the target's steps read, relative to the definition directory, and the
/// verification's own check scripts when it verifies (what the image must pass counts).
pub fn local_sources<'a>(definition: &'a Definition, target: &Target) -> Vec<&'a str> {
    let verify = &definition.verify;
    definition
        .steps
        .iter()
        .filter(|s| s.runs_on(&target.name))
        .filter_map(|s| s.local_sources())
        .chain(
            verify
                .checks
                .iter()
                .filter(|_| verify.enabled)
                .map(String::as_str),
        )
        .collect()
}

/// Every file the target's steps upload: those of the definition's walk (`walked`, as
/// `Definition::load` found them) its steps read, then, when a step uploads it, those of
/// the local worker source's copy (named `worker_source:PATH` by their path inside it, so
/// where the source lies does not count). Nothing is walked again.
pub fn collect_files(
    definition: &Definition,
    walked: &[files::Found],
    worker_source: &[files::Found],
    target: &Target,
) -> Vec<files::Found> {
    let sources = local_sources(definition, target);
    let mut found: Vec<files::Found> = crate::definition::tree::under(walked, &sources)
        .into_iter()
        .cloned()
        .collect();
    let uploads_worker_source = definition
        .steps
        .iter()
        .any(|s| s.runs_on(&target.name) && s.uploads_worker_source());
    if uploads_worker_source {
        found.extend(worker_source.iter().map(|f| files::Found {
            rel: format!("{}{}", crate::worker_source::MANIFEST_PREFIX, f.rel),
            ..f.clone()
        }));
    }
    found
}

impl Manifest {
    pub fn build(inputs: &ManifestInputs, files: Vec<FileInput>) -> Manifest {
        let def = inputs.definition;
        let template = render::template(def, Builders::Target(inputs.target));
        let template_bytes = serde_json::to_vec(&template).expect("JSON values serialize");

        // A URL's credentials stay out: the variable holds the URL without them, and the
        // credentials count as a secret does (by name, or by HMAC under the key).
        let mut url_credentials = BTreeMap::new();
        let variables = render::template_variables(def)
            .into_iter()
            .filter(|v| v.kind == VarKind::Input)
            .map(|v| {
                let value = inputs.values.get(&v.name).cloned().unwrap_or(v.default);
                let stripped = crate::userinfo::strip(&value);
                if !stripped.userinfo.is_empty() {
                    url_credentials.insert(
                        format!("{}{USERINFO_SUFFIX}", v.name),
                        stripped.userinfo.join("\n"),
                    );
                }
                (v.name, stripped.value)
            })
            .collect();

        // Declared names (pass_through's too) count even when absent, so a run without
        // secrets (a fork pull request) gets the fingerprint of the run with them.
        let names: std::collections::BTreeSet<&str> = def
            .declared_worker_keys()
            .chain(def.worker.pass_through.iter().map(String::as_str))
            .chain(inputs.worker.keys())
            .collect();
        let digest = |name: &str, value: &str| {
            inputs
                .fingerprint_key
                .map(|key| secret_digest(key, name, value))
        };
        let secrets = names
            .into_iter()
            .map(|name| {
                let value = inputs.worker.get(name).unwrap_or("");
                (name.to_string(), digest(name, value))
            })
            .chain(
                url_credentials
                    .iter()
                    .map(|(name, value)| (name.clone(), digest(name, value))),
            )
            .collect();

        let base_image = match &inputs.target.source_image {
            SourceImage::Id(id) => BaseImage {
                by: BaseImageBy::Id,
                value: id.clone(),
                resolved_id: Some(id.clone()),
            },
            SourceImage::Name(name) => BaseImage {
                by: BaseImageBy::Name,
                value: name.clone(),
                resolved_id: inputs.resolved_base_image.map(str::to_string),
            },
        };

        Manifest {
            schema: SCHEMA,
            image: def.name.clone(),
            target: inputs.target.name.clone(),
            template_sha256: hex::encode(Sha256::digest(&template_bytes)),
            files,
            variables,
            secrets,
            base_image,
            packer_version: inputs.packer_version.to_string(),
        }
    }

    /// `sha256:<hex>` of the canonical JSON (sorted keys, no whitespace), streamed into
    /// the hash: no JSON tree and no buffer of the whole document (20,000 files made
    /// those a tenth of a fingerprint run, all of it on one core).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hasher = HashWriter::default();
        serde_json::to_writer(&mut hasher, &Canonical::of(self)).expect("manifest serializes");
        Fingerprint(format!("sha256:{}", hasher.hex()))
    }

    /// Every input as a (name, digest or value) pair, in a stable order: what `--explain`
    /// prints and what a comparison with an earlier manifest works on.
    pub fn inputs(&self) -> Vec<(String, String)> {
        let mut list = vec![
            ("schema".to_string(), self.schema.to_string()),
            ("packer".to_string(), self.packer_version.clone()),
            (
                "base-image".to_string(),
                match &self.base_image.resolved_id {
                    Some(id) if self.base_image.by == BaseImageBy::Name => {
                        format!("name {} = {id}", self.base_image.value)
                    }
                    _ => format!("{} {}", self.base_image.by.as_str(), self.base_image.value),
                },
            ),
            (
                "template".to_string(),
                format!("sha256:{}", self.template_sha256),
            ),
        ];
        list.extend(self.files.iter().map(|f| {
            let mode = if f.executable { " (executable)" } else { "" };
            (
                format!("file {}", f.path),
                format!("sha256:{}{mode}", f.sha256),
            )
        }));
        list.extend(
            self.variables
                .iter()
                .map(|(k, v)| (format!("variable {k}"), format!("{v:?}"))),
        );
        list.extend(self.secrets.iter().map(|(k, digest)| {
            let shown = match digest {
                Some(d) => format!("hmac-sha256:{d}"),
                None => "name only (set UWORKER_FINGERPRINT_KEY to include values)".into(),
            };
            (format!("secret {k}"), shown)
        }));
        list
    }
}

/// The manifest with its keys in sorted order at every level (the maps' already are):
/// serialized as it stands, it is the canonical JSON.
#[derive(Serialize)]
struct Canonical<'a> {
    base_image: CanonicalBaseImage<'a>,
    files: CanonicalFiles<'a>,
    image: &'a str,
    packer_version: &'a str,
    schema: u32,
    secrets: &'a BTreeMap<String, Option<String>>,
    target: &'a str,
    template_sha256: &'a str,
    variables: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct CanonicalBaseImage<'a> {
    by: BaseImageBy,
    resolved_id: &'a Option<String>,
    value: &'a str,
}

struct CanonicalFiles<'a>(&'a [FileInput]);

#[derive(Serialize)]
struct CanonicalFile<'a> {
    executable: bool,
    path: &'a str,
    sha256: &'a str,
}

impl Serialize for CanonicalFiles<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|f| CanonicalFile {
            executable: f.executable,
            path: &f.path,
            sha256: &f.sha256,
        }))
    }
}

impl<'a> Canonical<'a> {
    fn of(m: &'a Manifest) -> Canonical<'a> {
        Canonical {
            base_image: CanonicalBaseImage {
                by: m.base_image.by,
                resolved_id: &m.base_image.resolved_id,
                value: &m.base_image.value,
            },
            files: CanonicalFiles(&m.files),
            image: &m.image,
            packer_version: &m.packer_version,
            schema: m.schema,
            secrets: &m.secrets,
            target: &m.target,
            template_sha256: &m.template_sha256,
            variables: &m.variables,
        }
    }
}

/// `io::Write` into a running SHA-256 (also what `pin` streams a URL's content into).
#[derive(Default)]
pub struct HashWriter(pub Sha256);

impl HashWriter {
    /// The digest so far, lower-case hex.
    pub fn hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// HMAC-SHA256(key, name NUL value): not guessable offline without the key.
fn secret_digest(key: &SecretString, name: &str, value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What differs between an earlier manifest and this one, by input name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Changes {
    pub fn between(previous: &Manifest, current: &Manifest) -> Changes {
        let before: BTreeMap<String, String> = previous.inputs().into_iter().collect();
        let after: BTreeMap<String, String> = current.inputs().into_iter().collect();
        let mut changes = Changes::default();
        for (name, value) in &after {
            match before.get(name) {
                None => changes.added.push(name.clone()),
                Some(old) if old != value => changes.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        changes.removed = before
            .keys()
            .filter(|name| !after.contains_key(*name))
            .cloned()
            .collect();
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(resolved_id: Option<&str>) -> Manifest {
        Manifest {
            schema: SCHEMA,
            image: "uworker".into(),
            target: "smog".into(),
            template_sha256: "ab".repeat(32),
            files: vec![
                FileInput {
                    path: "scripts/10-base.sh".into(),
                    executable: true,
                    sha256: "cd".repeat(32),
                },
                FileInput {
                    path: "files/a \"quoted\" name".into(),
                    executable: false,
                    sha256: "ef".repeat(32),
                },
            ],
            variables: BTreeMap::from([
                ("worker_source".into(), "git+https://x/y.git#sub=src".into()),
                ("greeting".into(), "hello, \u{e9}\n".into()),
            ]),
            secrets: BTreeMap::from([
                ("UWORKER_JOB_API_PASSWORD".into(), None),
                ("UWORKER_JOB_API_USERNAME".into(), Some("01".repeat(32))),
            ]),
            base_image: BaseImage {
                by: BaseImageBy::Name,
                value: "Ubuntu 22.04".into(),
                resolved_id: resolved_id.map(str::to_string),
            },
            packer_version: "1.6.6".into(),
        }
    }

    /// The streamed form must be byte for byte the JSON of the manifest with every key
    /// sorted (what fingerprints have always hashed), or every image would rebuild.
    #[test]
    fn the_streamed_canonical_json_is_the_sorted_json() {
        for resolved in [None, Some("3f0c")] {
            let m = manifest(resolved);
            let sorted = serde_json::to_vec(&serde_json::to_value(&m).unwrap()).unwrap();
            let streamed = serde_json::to_vec(&Canonical::of(&m)).unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(sorted.clone()).unwrap()
            );
            assert_eq!(
                m.fingerprint().as_str(),
                format!("sha256:{}", hex::encode(Sha256::digest(&sorted)))
            );
        }
    }
}

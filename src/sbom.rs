//! An image's bill of materials (CycloneDX 1.5+ JSON) read as packages, and what changed
//! between two of them: packages added, removed, and changed from one version to
//! another. Pure: the caller reads the files (or the release assets).
//!
//! A package is known by its package URL without the version (`pkg:deb/debian/openssl
//! ?arch=amd64`, `pkg:pypi/requests`), so the same name in two ecosystems, or for two
//! architectures, stays two packages; a component without a purl by its type and name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The SBOM's name: in the work dir, on the host, next to the record (`build --out`).
pub const FILE_NAME: &str = "sbom.cdx.json";

/// The script that writes the SBOM on the host (`[[provision]] sbom = true`): bash,
/// python3's standard library and dpkg-query, nothing installed.
pub const HOST_SCRIPT: &str = include_str!("sbom.sh");

#[derive(Debug, Error)]
pub enum SbomError {
    #[error("cannot read the SBOM {}", .path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("not CycloneDX JSON")]
    Json(#[source] serde_json::Error),
    #[error(
        "`bomFormat` is `{0}`, not `CycloneDX`: pass the SBOM the build attached (sbom.cdx.json)"
    )]
    Format(String),
    #[error("image {image} has no `{SHA256_PROPERTY}` property: it was built without an SBOM (`[[provision]] sbom = true`) or before uworker-image made them")]
    NoSbom { image: String },
    #[error(
        "image {image} has no `uworker_fingerprint` property, so no release to find its SBOM in"
    )]
    NoFingerprint { image: String },
    #[error("reading the SBOM of image {image} from GitHub needs GITHUB_TOKEN and GITHUB_REPOSITORY (OWNER/NAME); GITHUB_API_URL for GitHub Enterprise")]
    NoGitHub { image: String },
    #[error(
        "the SBOM of image {image} is not found: {place} (was the release deleted, or the asset?)"
    )]
    NoAsset { image: String, place: String },
    #[error("the SBOM of image {image} ({asset}) has SHA-256 {actual}, but the image says {expected}: the asset is not the image's")]
    Digest {
        image: String,
        asset: String,
        expected: String,
        actual: String,
    },
}

impl crate::exit::Coded for SbomError {
    fn code(&self) -> crate::exit::Code {
        match self {
            SbomError::NoAsset { .. } => crate::exit::Code::External,
            SbomError::Read { .. }
            | SbomError::Json(_)
            | SbomError::Format(_)
            | SbomError::NoSbom { .. }
            | SbomError::NoFingerprint { .. }
            | SbomError::NoGitHub { .. }
            | SbomError::Digest { .. } => crate::exit::Code::BadInput,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    bom_format: String,
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    version: String,
    purl: Option<String>,
    #[serde(default)]
    properties: Vec<Property>,
}

#[derive(Deserialize)]
struct Property {
    name: String,
    #[serde(default)]
    value: String,
}

/// The property that says which kind of package a component is (`deb`, `pypi`, `kernel`,
/// `worker`), as the tool's SBOM script writes it.
pub const KIND_PROPERTY: &str = "uworker-image:kind";
/// The worker's pin: its commit, or `sha256:` and the digest of what was installed.
pub const PIN_PROPERTY: &str = "uworker-image:worker:pin";

impl Component {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }

    /// The tool's kind property, else the purl's type, else the component's type.
    fn package_kind(&self) -> String {
        if let Some(kind) = self.property(KIND_PROPERTY) {
            return kind.to_string();
        }
        self.purl
            .as_deref()
            .and_then(|p| p.strip_prefix("pkg:"))
            .and_then(|p| p.split_once('/'))
            .map_or_else(|| self.kind.clone(), |(kind, _)| kind.to_string())
    }

    /// The version a diff compares: with the worker's pin, a new commit of one version
    /// is a change.
    fn compared_version(&self) -> String {
        match self.property(PIN_PROPERTY) {
            Some(pin) if !pin.is_empty() => {
                let short: String = pin
                    .strip_prefix("sha256:")
                    .map_or(pin, |digest| digest)
                    .chars()
                    .take(12)
                    .collect();
                let prefix = if pin.starts_with("sha256:") {
                    "sha256:"
                } else {
                    ""
                };
                format!("{} ({prefix}{short})", self.version)
            }
            _ => self.version.clone(),
        }
    }
}

/// One package of an SBOM: its kind and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub kind: String,
    pub version: String,
}

/// What an SBOM holds: each package by its identity.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Packages(BTreeMap<String, Package>);

impl Packages {
    /// How many packages of each kind.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for package in self.0.values() {
            *counts.entry(package.kind.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// A package's identity: its purl without the version, or `TYPE/NAME`.
fn identity(component: &Component) -> String {
    match &component.purl {
        Some(purl) => {
            let (path, qualifiers) = purl.split_once('?').unwrap_or((purl, ""));
            let path = path.split_once('@').map_or(path, |(path, _)| path);
            // Only the architecture tells two builds of one package apart.
            let arch = qualifiers
                .split('&')
                .find(|q| q.starts_with("arch="))
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            format!("{path}{arch}")
        }
        None => format!("{}/{}", component.kind, component.name),
    }
}

/// The packages of CycloneDX JSON text.
pub fn read(text: &str) -> Result<Packages, SbomError> {
    let document: Document = serde_json::from_str(text).map_err(SbomError::Json)?;
    if document.bom_format != "CycloneDX" {
        return Err(SbomError::Format(document.bom_format));
    }
    Ok(Packages(
        document
            .components
            .iter()
            .map(|c| {
                let package = Package {
                    kind: c.package_kind(),
                    version: c.compared_version(),
                };
                (identity(c), package)
            })
            .collect(),
    ))
}

/// What the record says of an SBOM's text: its SHA-256 and its packages by kind.
pub fn describe(text: &str) -> Result<(String, BTreeMap<String, u64>), SbomError> {
    let counts = read(text)?.counts();
    Ok((sha256(text), counts))
}

/// The SHA-256 of an SBOM's bytes, as the record and the Glance property hold it.
pub fn sha256(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The Glance property that holds the SHA-256 of an image's SBOM.
pub const SHA256_PROPERTY: &str = "uworker_sbom_sha256";

/// The release asset of an image's SBOM: one per image, so every image of a fingerprint
/// (a `max_age` rebuild keeps it) keeps its own.
pub fn asset_name(image_id: &str) -> String {
    format!("sbom-{image_id}.cdx.json")
}

/// One package that changed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: String,
    pub package: String,
    pub from: String,
    pub to: String,
}

/// One package added or removed, with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub kind: String,
    pub package: String,
    pub version: String,
}

/// What the newer SBOM holds that the older did not, in the packages' order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub changed: Vec<Change>,
}

pub fn diff(old: &Packages, new: &Packages) -> Diff {
    let mut result = Diff::default();
    for (package, now) in &new.0 {
        match old.0.get(package) {
            None => result.added.push(Entry {
                kind: now.kind.clone(),
                package: package.clone(),
                version: now.version.clone(),
            }),
            Some(before) if before.version != now.version => result.changed.push(Change {
                kind: now.kind.clone(),
                package: package.clone(),
                from: before.version.clone(),
                to: now.version.clone(),
            }),
            Some(_) => {}
        }
    }
    for (package, before) in &old.0 {
        if !new.0.contains_key(package) {
            result.removed.push(Entry {
                kind: before.kind.clone(),
                package: package.clone(),
                version: before.version.clone(),
            });
        }
    }
    result
}

/// A package's identity as people read it: `openssl:amd64` (dpkg's way), `requests`,
/// `running kernel`.
pub fn display_name(package: &str) -> String {
    let (path, qualifiers) = package.split_once('?').unwrap_or((package, ""));
    let name = path.rsplit('/').next().unwrap_or(path);
    let arch = qualifiers
        .split('&')
        .find_map(|q| q.strip_prefix("arch="))
        .map(|arch| format!(":{}", crate::userinfo::percent_decode(arch)))
        .unwrap_or_default();
    format!("{}{arch}", crate::userinfo::percent_decode(name))
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// One line per package: `~ pkg:deb/debian/openssl?arch=amd64 3.0.11-1 -> 3.0.13-1`,
    /// `+` added, `-` removed; "no package changed" when none did.
    pub fn lines(&self) -> Vec<String> {
        if self.is_empty() {
            return vec!["no package changed".to_string()];
        }
        let changed = self
            .changed
            .iter()
            .map(|c| format!("~ {} {} -> {}", c.package, c.from, c.to));
        let added = self
            .added
            .iter()
            .map(|e| format!("+ {} {}", e.package, e.version));
        let removed = self
            .removed
            .iter()
            .map(|e| format!("- {} {}", e.package, e.version));
        changed.chain(added).chain(removed).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Chain;

    fn bom(components: &[(&str, &str, &str, Option<&str>)]) -> String {
        let components: Vec<serde_json::Value> = components
            .iter()
            .map(|(kind, name, version, purl)| {
                serde_json::json!({"type": kind, "name": name, "version": version, "purl": purl})
            })
            .collect();
        serde_json::json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "components": components,
        })
        .to_string()
    }

    const SSL: &str = "pkg:deb/debian/openssl@3.0.11-1?arch=amd64&distro=debian-12";
    const SSL_NEW: &str = "pkg:deb/debian/openssl@3.0.13-1?arch=amd64&distro=debian-12";

    #[test]
    fn a_rebuild_shows_the_updates_it_brought() {
        let old = read(&bom(&[
            ("library", "openssl", "3.0.11-1", Some(SSL)),
            (
                "library",
                "requests",
                "2.31.0",
                Some("pkg:pypi/requests@2.31.0"),
            ),
            (
                "library",
                "gone",
                "1",
                Some("pkg:deb/debian/gone@1?arch=all"),
            ),
            ("operating-system", "linux", "6.1.0-18", None),
        ]))
        .unwrap();
        let new = read(&bom(&[
            ("library", "openssl", "3.0.13-1", Some(SSL_NEW)),
            (
                "library",
                "requests",
                "2.31.0",
                Some("pkg:pypi/requests@2.31.0"),
            ),
            ("library", "fresh", "2", Some("pkg:pypi/fresh@2")),
            ("operating-system", "linux", "6.1.0-21", None),
        ]))
        .unwrap();
        let diff = diff(&old, &new);
        assert_eq!(
            diff.lines(),
            [
                "~ operating-system/linux 6.1.0-18 -> 6.1.0-21",
                "~ pkg:deb/debian/openssl?arch=amd64 3.0.11-1 -> 3.0.13-1",
                "+ pkg:pypi/fresh 2",
                "- pkg:deb/debian/gone?arch=all 1",
            ]
        );
        assert!(!diff.is_empty());
    }

    #[test]
    fn the_same_packages_are_no_change() {
        let text = bom(&[("library", "openssl", "3.0.11-1", Some(SSL))]);
        let diff = diff(&read(&text).unwrap(), &read(&text).unwrap());
        assert!(diff.is_empty());
        assert_eq!(diff.lines(), ["no package changed"]);
    }

    /// A diff of one kind of change alone is still a change.
    #[test]
    fn one_kind_of_change_alone_is_a_change() {
        let none = read(&bom(&[])).unwrap();
        let one = read(&bom(&[("library", "openssl", "3.0.11-1", Some(SSL))])).unwrap();
        let newer = read(&bom(&[("library", "openssl", "3.0.13-1", Some(SSL_NEW))])).unwrap();
        for (old, new, line) in [
            (&none, &one, "+ pkg:deb/debian/openssl?arch=amd64 3.0.11-1"),
            (&one, &none, "- pkg:deb/debian/openssl?arch=amd64 3.0.11-1"),
            (
                &one,
                &newer,
                "~ pkg:deb/debian/openssl?arch=amd64 3.0.11-1 -> 3.0.13-1",
            ),
        ] {
            let diff = diff(old, new);
            assert!(!diff.is_empty(), "{diff:?}");
            assert_eq!(diff.lines(), [line]);
        }
    }

    /// One name in two ecosystems, or for two architectures, is two packages.
    #[test]
    fn ecosystem_and_architecture_tell_packages_apart() {
        let packages = read(&bom(&[
            (
                "library",
                "six",
                "1.16.0-4",
                Some("pkg:deb/debian/python3-six@1.16.0-4?arch=all"),
            ),
            ("library", "six", "1.16.0", Some("pkg:pypi/six@1.16.0")),
            (
                "library",
                "libc6",
                "2.36",
                Some("pkg:deb/debian/libc6@2.36?arch=amd64"),
            ),
            (
                "library",
                "libc6",
                "2.36",
                Some("pkg:deb/debian/libc6@2.36?arch=i386"),
            ),
        ]))
        .unwrap();
        assert_eq!(packages.0.len(), 4, "{packages:?}");
        assert_eq!(packages.0["pkg:pypi/six"].version, "1.16.0");
        assert_eq!(
            packages.counts(),
            BTreeMap::from([("deb".to_string(), 3), ("pypi".to_string(), 1)])
        );
    }

    #[test]
    fn what_is_not_cyclonedx_is_refused_saying_what_to_pass() {
        let spdx = r#"{"bomFormat": "SPDX", "components": []}"#;
        let error = read(spdx).unwrap_err();
        assert!(error.to_string().contains("sbom.cdx.json"), "{error}");
        let error = read("{").unwrap_err();
        assert!(
            Chain(&error)
                .to_string()
                .starts_with("not CycloneDX JSON: EOF"),
            "{}",
            Chain(&error)
        );
    }

    /// The worker's pin is part of what is compared: a new commit of one version is a
    /// change; kinds come from the tool's property, else the purl's type.
    #[test]
    fn a_new_worker_commit_is_a_change_of_kind_worker() {
        let worker = |pin: &str| {
            serde_json::json!({"bomFormat": "CycloneDX", "components": [
                {"type": "application", "name": "uworker", "version": "0.3.0",
                 "purl": "pkg:pypi/uworker@0.3.0", "properties": [
                    {"name": KIND_PROPERTY, "value": "worker"},
                    {"name": PIN_PROPERTY, "value": pin}]},
                {"type": "operating-system", "name": "running kernel", "version": "6.1.0-18"},
                {"type": "library", "name": "six", "version": "1", "purl": "pkg:pypi/six@1"},
            ]})
            .to_string()
        };
        let old = read(&worker("a1b2c3d4e5f60718293a")).unwrap();
        let new = read(&worker("9e0d2b4c5a6f708192a3")).unwrap();
        let diff = diff(&old, &new);
        assert_eq!(
            diff.changed,
            [Change {
                kind: "worker".into(),
                package: "pkg:pypi/uworker".into(),
                from: "0.3.0 (a1b2c3d4e5f6)".into(),
                to: "0.3.0 (9e0d2b4c5a6f)".into(),
            }]
        );
        assert_eq!(
            new.counts(),
            BTreeMap::from([
                ("operating-system".to_string(), 1),
                ("pypi".to_string(), 1),
                ("worker".to_string(), 1)
            ])
        );
        // No pin recorded (a worker installed from an index): the version alone.
        assert_eq!(
            read(&worker("")).unwrap().0["pkg:pypi/uworker"].version,
            "0.3.0"
        );
        let hashed = read(&worker(&format!("sha256:{}", "ab".repeat(32)))).unwrap();
        assert_eq!(
            hashed.0["pkg:pypi/uworker"].version,
            "0.3.0 (sha256:abababababab)"
        );
    }

    /// What the record and Glance hold: the SHA-256 of the very bytes, and the counts.
    #[test]
    fn describe_gives_the_bytes_digest_and_the_counts_by_kind() {
        let text = bom(&[("library", "openssl", "3.0.11-1", Some(SSL))]);
        let (sha256, counts) = describe(&text).unwrap();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
        assert_eq!(sha256, hex::encode(digest));
        assert_eq!(sha256.len(), 64);
        assert_eq!(counts, BTreeMap::from([("deb".to_string(), 1)]));
        assert!(describe("{}").is_err());
    }

    #[test]
    fn display_names_read_as_dpkg_and_pip_spell_them() {
        assert_eq!(
            display_name("pkg:deb/debian/libstdc%2B%2B6?arch=amd64"),
            "libstdc++6:amd64"
        );
        assert_eq!(display_name("pkg:pypi/requests"), "requests");
        assert_eq!(
            display_name("operating-system/running kernel"),
            "running kernel"
        );
        assert_eq!(display_name("pkg:deb/debian/bad%zz"), "bad%zz");
    }
}

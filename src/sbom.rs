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
}

impl crate::exit::Coded for SbomError {
    fn code(&self) -> crate::exit::Code {
        crate::exit::Code::BadInput
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
}

/// What an SBOM holds: each package's version by its identity.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Packages(BTreeMap<String, String>);

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
            .map(|c| (identity(c), c.version.clone()))
            .collect(),
    ))
}

/// One package that changed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub package: String,
    pub from: String,
    pub to: String,
}

/// One package added or removed, with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub package: String,
    pub version: String,
}

/// What the newer SBOM holds that the older did not, in the packages' order.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub changed: Vec<Change>,
}

pub fn diff(old: &Packages, new: &Packages) -> Diff {
    let mut result = Diff::default();
    for (package, version) in &new.0 {
        match old.0.get(package) {
            None => result.added.push(Entry {
                package: package.clone(),
                version: version.clone(),
            }),
            Some(before) if before != version => result.changed.push(Change {
                package: package.clone(),
                from: before.clone(),
                to: version.clone(),
            }),
            Some(_) => {}
        }
    }
    for (package, version) in &old.0 {
        if !new.0.contains_key(package) {
            result.removed.push(Entry {
                package: package.clone(),
                version: version.clone(),
            });
        }
    }
    result
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
        assert_eq!(packages.0["pkg:pypi/six"], "1.16.0");
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
}

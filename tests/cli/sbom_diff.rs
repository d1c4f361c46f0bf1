//! `sbom-diff OLD NEW`: the packages a rebuild added, removed and changed, from two
//! CycloneDX files, as text or JSON; files that are not SBOMs are bad input.

use crate::common::*;

fn sbom(dir: &std::path::Path, name: &str, openssl: &str, extra: &str) -> String {
    let path = dir.join(name);
    let text = format!(
        r#"{{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": [
  {{"type": "library", "name": "openssl", "version": "{openssl}",
    "purl": "pkg:deb/debian/openssl@{openssl}?arch=amd64"}}{extra}]}}"#
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const WORKER: &str = r#",
  {"type": "application", "name": "uworker", "version": "9e0d2b4",
   "purl": "pkg:pypi/uworker@9e0d2b4"}"#;

fn sbom_diff(args: &[&str]) -> Run {
    let mut cmd = tool(&[]);
    cmd.arg("sbom-diff").args(args);
    run(cmd)
}

#[test]
fn the_diff_names_each_package_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let old = sbom(dir.path(), "old.json", "3.0.11-1", "");
    let new = sbom(dir.path(), "new.json", "3.0.13-1", WORKER);
    let r = sbom_diff(&[&old, &new]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        r.stdout,
        "~ pkg:deb/debian/openssl?arch=amd64 3.0.11-1 -> 3.0.13-1\n+ pkg:pypi/uworker 9e0d2b4\n"
    );
    let r = sbom_diff(&["--output", "json", &new, &old]);
    assert_eq!(r.code, 0, "{}", r.all());
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["removed"][0]["package"], "pkg:pypi/uworker");
    assert_eq!(json["changed"][0]["from"], "3.0.13-1");
    assert_eq!(json["added"], serde_json::json!([]));
    let r = sbom_diff(&[&old, &old]);
    assert_eq!(r.stdout, "no package changed\n");
}

#[test]
fn what_is_no_sbom_is_bad_input_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = sbom(dir.path(), "good.json", "1", "");
    let spdx = dir.path().join("spdx.json");
    std::fs::write(&spdx, r#"{"bomFormat": "SPDX"}"#).unwrap();
    let spdx = spdx.to_str().unwrap();
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    for (args, needle) in [
        (
            [good.as_str(), spdx],
            format!("{spdx}: `bomFormat` is `SPDX`"),
        ),
        (
            [missing, good.as_str()],
            format!("cannot read the SBOM {missing}: "),
        ),
    ] {
        let r = sbom_diff(&args);
        assert_eq!(r.code, 2, "{}", r.all());
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert!(r.stderr.contains(&needle), "{needle:?} in {}", r.stderr);
    }
}

/// `image:ID` reads an image's SBOM through the target's cloud: without credentials it
/// says so (exit 2) before anything else; a file beside it is still read as a file.
#[test]
fn an_image_side_needs_the_cloud_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let new = sbom(dir.path(), "new.json", "1", "");
    let mut cmd = tool(&[]);
    cmd.arg("--dir").arg(default_definition()).args([
        "sbom-diff",
        "image:0b5e7c1e-aaaa-4bbb-8ccc-000000000007",
        &new,
    ]);
    let r = run(cmd);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("sbom-diff image:ID"), "{}", r.stderr);
    assert!(r.stderr.contains("Glance"), "{}", r.stderr);
}

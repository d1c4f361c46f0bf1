//! Snapshots of what people read: the sticky pull-request comment, the job summary and
//! the release body, for a planned build with changed inputs, a skip and a new image.

use crate::common;

use common::snapshot_settings;
use serde_json::{json, Value};
use uworker_image::fingerprint::Manifest;
use uworker_image::record::{self, Record};
use uworker_image::report::markdown::{self, Context};
use uworker_image::report::{outputs, Baseline, PackageBaseline, Validation};

fn manifest(script_digest: &str, source: &str) -> Value {
    json!({
        "schema": 1, "image": "uworker", "target": "north", "template_sha256": "ab".repeat(32),
        "files": [
            {"path": "scripts/install-worker.sh", "executable": true, "sha256": script_digest},
            {"path": "files/uworker.service", "executable": false, "sha256": "cd".repeat(32)}
        ],
        "variables": {"worker_source": source},
        "secrets": {"UWORKER_JOB_API_PASSWORD": null, "UWORKER_JOB_API_ROOT": null},
        "base_image": {"by": "name", "value": "Ubuntu 24.04", "resolved_id": "base-2"},
        "packer_version": "1.6.6"
    })
}

const FINGERPRINT: &str = "sha256:5d41402abc4b2a76b9719d911017c592ae4f0c5d41402abc4b2a76b9719d9110";

fn subject(fields: Value) -> Record {
    let mut record = json!({
        "action": "build", "target": "north", "fingerprint": FINGERPRINT, "image_id": null,
        "reason": "no image has this fingerprint yet", "changes": null, "warnings": [],
        "manifest": manifest(&"11".repeat(32), "uworker==2.0"),
    });
    for (k, v) in fields.as_object().unwrap() {
        record[k] = v.clone();
    }
    record::read(&record.to_string()).unwrap()
}

fn latest_release() -> Option<(String, Manifest)> {
    let older = manifest(&"00".repeat(32), "uworker==1.9");
    Some((
        "image-0a1b2c3d4e5f".into(),
        serde_json::from_value(older).unwrap(),
    ))
}

fn context(event: &str) -> Context {
    Context {
        event: event.into(),
        commit: Some("9fceb02d0ae598e95dc970b74767f19372d61af8".into()),
        run_url: Some("https://github.com/o/r/actions/runs/4242".into()),
    }
}

#[test]
fn pull_request_comment_for_a_build_with_changed_inputs() {
    let subject = subject(
        json!({"warnings": ["worker config incomplete (UWORKER_JOB_API_PASSWORD unset): `validate` and `build` need them"]}),
    );
    let baseline = Baseline::choose(&subject, latest_release());
    let text = markdown::pr_comment(
        &subject,
        &context("pull request #7"),
        Validation::Passed,
        &baseline,
    );
    snapshot_settings().bind(|| insta::assert_snapshot!("report_comment_build", text));
}

#[test]
fn pull_request_comment_for_a_skip_from_a_fork_whose_validation_failed() {
    let subject = subject(json!({
        "action": "skip", "image_id": "6f0c1b5e-1111-4a5e-9d6e-000000000009",
        "reason": "image 6f0c1b5e-1111-4a5e-9d6e-000000000009 already has this fingerprint",
    }));
    let text = markdown::pr_comment(
        &subject,
        &context("pull request #8 (fork)"),
        Validation::Failed,
        &Baseline::None,
    );
    snapshot_settings().bind(|| insta::assert_snapshot!("report_comment_skip_failed", text));
}

/// A component as the tool's SBOM script writes it: its kind, name, version, purl and
/// (the worker's) pin.
fn component(
    kind: &str,
    name: &str,
    version: &str,
    purl: Option<&str>,
    pin: Option<&str>,
) -> Value {
    let mut properties = vec![json!({"name": "uworker-image:kind", "value": kind})];
    if let Some(pin) = pin {
        properties.push(json!({"name": "uworker-image:worker:pin", "value": pin}));
    }
    json!({"type": "library", "name": name, "version": version, "purl": purl, "properties": properties})
}

fn sbom(components: Vec<Value>) -> uworker_image::sbom::Packages {
    let text = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": components});
    uworker_image::sbom::read(&text.to_string()).unwrap()
}

/// A `max_age` rebuild: security updates of deb packages (more than fold into a list),
/// a new kernel, a worker on a new commit, a pypi package added and one removed.
fn package_diff() -> PackageBaseline {
    let worker = |commit: &str| {
        component(
            "worker",
            "uworker",
            "0.3.0",
            Some("pkg:pypi/uworker@0.3.0"),
            Some(commit),
        )
    };
    let kernel = |version: &str| component("kernel", "installed kernel", version, None, None);
    let pypi = |name: &str, version: &str| {
        component(
            "pypi",
            name,
            version,
            Some(&format!("pkg:pypi/{name}@{version}")),
            None,
        )
    };
    let deb = |name: &str, version: &str| {
        let purl = format!(
            "pkg:deb/ubuntu/{}@{version}?arch=amd64&distro=ubuntu-24.04",
            name.replace('+', "%2B")
        );
        component("deb", name, version, Some(&purl), None)
    };
    let mut old = vec![
        worker("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"),
        kernel("6.8.0-45-generic"),
        pypi("requests", "2.32.3"),
        pypi("six", "1.16.0"),
    ];
    let mut new = vec![
        worker("9e0d2b4c5a6f708192a3b4c5d6e7f80912345678"),
        kernel("6.8.0-49-generic"),
        pypi("requests", "2.32.3"),
        pypi("urllib3", "2.2.3"),
    ];
    let updated = [
        "libssl3t64",
        "openssl",
        "libc6",
        "libc-bin",
        "curl",
        "libcurl4t64",
        "tzdata",
        "libgnutls30t64",
        "libexpat1",
        "python3.12",
        "libpython3.12-stdlib",
        "libstdc++6",
    ];
    for (i, name) in updated.iter().enumerate() {
        old.push(deb(name, &format!("1.{i}-1ubuntu0.1")));
        new.push(deb(name, &format!("1.{i}-1ubuntu0.2")));
    }
    PackageBaseline::Image {
        image: "6f0c1b5e-1111-4a5e-9d6e-000000000007".into(),
        diff: uworker_image::sbom::diff(&sbom(old), &sbom(new)),
    }
}

#[test]
fn summary_and_release_body_of_a_new_image() {
    let subject = subject(json!({
        "built": true, "image_id": "6f0c1b5e-1111-4a5e-9d6e-000000000042",
        "image_name": "uworker-north-5d41402abc4b", "reason": "built 6f0c1b5e-1111-4a5e-9d6e-000000000042 in 2 attempt(s)",
        "sbom": {"file": "sbom.cdx.json", "sha256": "ef".repeat(32), "packages": {"deb": 12, "kernel": 1, "pypi": 2, "worker": 1}},
    }));
    let baseline = Baseline::choose(&subject, latest_release());
    let packages = package_diff();
    let notes = ["created release [image-5d41402abc4b](https://github.com/o/r/releases/tag/image-5d41402abc4b) with `image.json` and `sbom-6f0c1b5e-1111-4a5e-9d6e-000000000042.cdx.json`".to_string()];
    let summary = markdown::summary(
        &subject,
        &context("push to `main`"),
        Validation::Unknown,
        &baseline,
        &packages,
        &notes,
    );
    let body = markdown::release_body(&subject, &context("push to `main`"), &baseline, &packages);
    assert_eq!(
        markdown::release_name(&subject),
        "uworker north image-5d41402abc4b"
    );
    let outputs: String = outputs(&subject, &baseline)
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("report_summary_built", summary);
        insta::assert_snapshot!("report_release_body", body);
        insta::assert_snapshot!("report_outputs_built", outputs);
    });
}

#[test]
fn summary_of_a_skip() {
    let subject = subject(json!({
        "action": "skip", "image_id": "6f0c1b5e-1111-4a5e-9d6e-000000000009",
        "reason": "image 6f0c1b5e-1111-4a5e-9d6e-000000000009 already has this fingerprint",
        "changes": {"added": [], "removed": [], "changed": []},
    }));
    let notes = ["no new image: `6f0c1b5e-1111-4a5e-9d6e-000000000009` already serves this fingerprint (image-5d41402abc4b), no release made".to_string()];
    let text = markdown::summary(
        &subject,
        &context("manual dispatch on `main`"),
        Validation::Passed,
        &Baseline::choose(&subject, None),
        &PackageBaseline::None,
        &notes,
    );
    snapshot_settings().bind(|| insta::assert_snapshot!("report_summary_skip", text));
}

/// A plan whose worker branch moved against `--previous`: the comment and the summary
/// say "the worker moved OLD → NEW", known before any build; an input pinned and not
/// moved is listed with its commit.
#[test]
fn comment_and_summary_when_the_worker_moved() {
    let (old, new) = (
        "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        "9e0d2b4c0123456789abcdef0123456789abcdef",
    );
    let url = "git+https://github.com/Odin-SMR/molflow-microq-worker.git";
    let pin = |previous: Option<&str>| {
        json!([{
            "input": "worker_source", "kind": "git",
            "written": format!("{url}#subdirectory=src"),
            "resolved": format!("{url}@{new}#subdirectory=src"),
            "floating": "HEAD", "pinned": new, "previous": previous
        }])
    };
    let mut moved = subject(json!({
        "pins": pin(Some(old)),
        "reason": "the worker's default branch moved (a1b2c3d → 9e0d2b4); no image has this fingerprint yet",
        "changes": {"added": [], "removed": [], "changed": ["variable worker_source"]},
    }));
    moved.manifest.variables.insert(
        "worker_source".into(),
        format!("{url}@{new}#subdirectory=src"),
    );
    let comment = markdown::pr_comment(
        &moved,
        &context("pull request #9"),
        Validation::Passed,
        &Baseline::choose(&moved, None),
    );
    assert!(
        comment.contains("- the worker moved `a1b2c3d` → `9e0d2b4` (git `HEAD`)"),
        "{comment}"
    );
    let still = subject(json!({
        "pins": pin(None), "action": "skip", "image_id": "6f0c1b5e-1111-4a5e-9d6e-000000000009",
        "reason": "image 6f0c1b5e-1111-4a5e-9d6e-000000000009 already has this fingerprint",
    }));
    let summary = markdown::summary(
        &still,
        &context("push to `main`"),
        Validation::Unknown,
        &Baseline::None,
        &PackageBaseline::None,
        &[],
    );
    assert!(
        summary.contains("- `worker_source`: git `HEAD` → `9e0d2b4`"),
        "{summary}"
    );
    // In CI the baseline is the latest release: its manifest's commit is the old one.
    let release: Manifest = serde_json::from_value(manifest(
        &"11".repeat(32),
        &format!("{url}@{old}#subdirectory=src"),
    ))
    .unwrap();
    let unmoved = subject(json!({"pins": pin(None)}));
    let against_release = markdown::pr_comment(
        &unmoved,
        &context("pull request #9"),
        Validation::Passed,
        &Baseline::choose(&unmoved, Some(("image-0a1b2c3d4e5f".into(), release))),
    );
    assert!(
        against_release.contains("- the worker moved `a1b2c3d` → `9e0d2b4` (git `HEAD`)"),
        "{against_release}"
    );
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("report_comment_worker_moved", comment);
        insta::assert_snapshot!("report_summary_worker_pinned", summary);
    });
}

/// `UWORKER_IMAGE_RECORD` names the record for `report` as `--record` does, so a job sets
/// it once for `build --out` and the `report` step after it.
#[test]
fn report_reads_the_record_uworker_image_record_names() {
    let record = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/records/plan-0.1.json"
    );
    let mut named = common::tool(&[("UWORKER_IMAGE_RECORD", record)]);
    named.arg("report");
    let r = common::run(named);
    assert_eq!(r.code, 0, "{}", r.all());
    // Outside Actions it prints the summary of that record.
    assert!(r.stdout.contains("smog"), "{}", r.stdout);
    assert!(r.stdout.contains("bab1a43c44bc"), "{}", r.stdout);
    let mut unnamed = common::tool(&[]);
    unnamed.arg("report");
    let r = common::run(unnamed);
    assert_eq!(r.code, 2, "without it --record is missing: {}", r.all());
}

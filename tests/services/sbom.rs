//! The SBOM the tool's own script writes (`[[provision]] sbom = true`, src/sbom.sh), held
//! to CycloneDX 1.5's official JSON Schema by cyclonedx-python-lib's strict validator
//! (tests/harness/cyclonedx.sh): run straight on this machine with a venv that holds a
//! worker installed by pip from a git repository, and through `test` mode's real packer
//! and sshd (the file downloaded from the host, and gone from it).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::sshd::Sshd;
use common::*;
use serde_json::Value;

/// Every file valid against CycloneDX 1.5's schema, or the validator's first violation.
pub fn assert_valid_cyclonedx(files: &[&Path]) {
    let out = Command::new(repo().join("tests/harness/cyclonedx.sh"))
        .arg("validate")
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not valid CycloneDX 1.5:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The components of `kind` (the tool's `uworker-image:kind` property).
pub fn components<'a>(sbom: &'a Value, kind: &str) -> Vec<&'a Value> {
    sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| property(c, "uworker-image:kind") == Some(kind))
        .collect()
}

pub fn property<'a>(component: &'a Value, name: &str) -> Option<&'a str> {
    component["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["value"]
        .as_str()
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The worker stand-in in a git repository of its own, one commit.
fn worker_repository(dir: &Path) -> String {
    let repo_dir = dir.join("worker.git");
    ok(Command::new("cp")
        .arg("-r")
        .arg(repo().join("tests/fixtures/worker-standin"))
        .arg(&repo_dir));
    let git = |args: &[&str]| {
        ok(Command::new("git")
            .arg("-C")
            .arg(&repo_dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "the worker"]);
    git(&["rev-parse", "HEAD"]).trim().to_string()
}

/// The script on this machine, with a venv whose worker pip installed from a git URL:
/// every dpkg package, the venv's distributions, the kernel, and the worker with the
/// commit pip recorded; no URL credential (put into direct_url.json and the stamp); the
/// file 0600.
#[test]
fn the_script_lists_packages_kernel_and_the_workers_commit_as_valid_cyclonedx() {
    let tmp = tempfile::tempdir().unwrap();
    let commit = worker_repository(tmp.path());
    let venv = tmp.path().join("venv");
    ok(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    let url = format!("git+file://{}/worker.git", tmp.path().display());
    // As 35-worker.sh does: wheel, then the worker built without isolation (no deps:
    // the stand-in alone).
    ok(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        "wheel==0.45.1",
    ]));
    ok(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-index",
        "--no-deps",
        "--no-build-isolation",
        &url,
    ]));
    // A private repository's URL as it would read with a token in it.
    let secret = worker_url::TOKEN;
    let direct_url = ok(Command::new("sh").arg("-c").arg(format!(
        "ls {}/lib/python3*/site-packages/uworker_standin-*.dist-info/direct_url.json",
        venv.display()
    )));
    let direct_url = Path::new(direct_url.trim());
    let mut recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(direct_url).unwrap()).unwrap();
    assert_eq!(recorded["vcs_info"]["commit_id"], commit.as_str());
    recorded["url"] = format!("https://x-access-token:{secret}@github.com/o/worker.git").into();
    std::fs::write(direct_url, recorded.to_string()).unwrap();
    let stamp = tmp.path().join("installed-source");
    std::fs::write(
        &stamp,
        format!("requirement git+https://x-access-token:{secret}@github.com/o/worker.git\n"),
    )
    .unwrap();

    let out = tmp.path().join("sbom.cdx.json");
    let said = ok(Command::new(repo().join("src/sbom.sh"))
        .env("UWORKER_SBOM_FILE", &out)
        .env("UWORKER_SBOM_VENV", &venv)
        .env("UWORKER_SBOM_STAMP", &stamp));
    assert!(said.starts_with("sbom.sh: "), "{said}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    worker_url::assert_no_credentials("the SBOM", &text);
    assert!(!text.contains(secret), "{text}");
    assert_valid_cyclonedx(&[&out]);

    let sbom: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(sbom["specVersion"], "1.5");
    let debs = components(&sbom, "deb");
    assert!(debs.len() > 100, "{} deb packages", debs.len());
    let dpkg = debs
        .iter()
        .find(|c| c["name"] == "dpkg")
        .expect("dpkg itself");
    let arch = ok(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(
        property(dpkg, "uworker-image:deb:architecture"),
        Some(arch.trim())
    );
    assert_eq!(property(dpkg, "uworker-image:deb:source"), Some("dpkg"));
    let purl = dpkg["purl"].as_str().unwrap();
    assert!(
        purl.starts_with(&format!(
            "pkg:deb/debian/dpkg@{}?arch=",
            dpkg["version"].as_str().unwrap()
        )),
        "{purl}"
    );
    let kernels = components(&sbom, "kernel");
    let running = ok(Command::new("uname").arg("-r"));
    assert!(
        kernels
            .iter()
            .any(|k| k["name"] == "running kernel" && k["version"] == running.trim()),
        "{kernels:?}"
    );
    let pypi = components(&sbom, "pypi");
    assert!(
        pypi.iter()
            .any(|c| c["purl"].as_str().unwrap().starts_with("pkg:pypi/pip@")),
        "{pypi:?}"
    );
    let [worker] = components(&sbom, "worker")[..] else {
        panic!("one worker: {sbom:#}")
    };
    assert_eq!(worker["name"], "uworker-standin");
    assert_eq!(worker["version"], "1.0");
    assert_eq!(
        property(worker, "uworker-image:worker:commit"),
        Some(commit.as_str())
    );
    assert_eq!(
        property(worker, "uworker-image:worker:pin"),
        Some(commit.as_str())
    );
    assert_eq!(
        worker["externalReferences"][0]["url"],
        format!("git+https://github.com/o/worker.git@{commit}").as_str()
    );
    // What the tool's diff reads of it: the pin with the version.
    let packages = uworker_image::sbom::read(&text).unwrap();
    let counts = packages.counts();
    assert_eq!(counts["worker"], 1);
    assert_eq!(counts["deb"], debs.len() as u64);
}

/// `test` mode writes it too: the steps' SBOM from the test host (this machine, through
/// real packer and sshd), downloaded, kept by `--sbom FILE`, valid, and gone from the host.
#[test]
fn test_mode_brings_the_test_hosts_sbom_back() {
    let sshd = Sshd::prepare().start();
    let f = Fixture::new(
        "name = \"t\"\n[target.cloud]\nsource_image = \"id\"\nflavor = \"f\"\n\
         [[provision]]\ninline = [\"echo before\"]\n[[provision]]\nsbom = true\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    let kept = tmp.path().join("host.cdx.json");
    let work = tempfile::tempdir().unwrap();
    let mut cmd = tool(&worker_env());
    cmd.env("TMPDIR", work.path())
        .arg("--dir")
        .arg(f.path())
        .args(sshd.vars())
        .args(["test", "--sbom"])
        .arg(&kept);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("sbom.sh: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("test: SBOM: ") && r.stderr.contains(" deb, "),
        "{}",
        r.stderr
    );
    assert_valid_cyclonedx(&[&kept]);
    let sbom: Value = serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    assert!(components(&sbom, "deb").len() > 100);
    assert!(!components(&sbom, "kernel").is_empty());
    // No work dir is left (the SBOM went with it).
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

//! `worker_source` through the CLI: a local source directory or wheel (inside the
//! definition or anywhere else on this machine) becomes upload steps in the rendered
//! template, its content enters the fingerprint (its location does not), a value that is
//! neither an existing path nor a pip requirement is refused naming the variable, and
//! the credentials of a private repository's URL appear in no output.

use crate::common;

use std::path::Path;

use common::packer_standin::PackerStandIn;
use common::worker_url::*;
use common::*;

const DEF: &str = crate::definition_with_target_t!(
    "ws",
    r#"[variables]
worker_source = "git+https://github.com/Odin-SMR/molflow-microq-worker.git#subdirectory=src"
[[provision]]
inline = ["echo base"]
[[provision]]
script = "scripts/install.sh"
environment = { WORKER_SOURCE = "{{user `worker_source`}}" }
"#
);

fn fixture() -> Fixture {
    let f = Fixture::new(DEF);
    f.script("scripts/install.sh", "#!/bin/sh\necho \"$WORKER_SOURCE\"\n")
        .file("worker/setup.py", "from setuptools import setup\nsetup()\n")
        .file("worker/pkg/__init__.py", "")
        .file("dist/w-1.0-py3-none-any.whl", "zip bytes");
    f
}

fn template(def: &Path, extra: &[&str]) -> serde_json::Value {
    let r = run_tool(def, &[extra, &["render"]].concat(), &worker_env());
    assert_eq!(r.code, 0, "{}", r.all());
    serde_json::from_str(&r.stdout).unwrap()
}

/// The definition's steps: the rendered provisioners but the upload directory's first and
/// last step.
fn steps(t: &serde_json::Value) -> &[serde_json::Value] {
    let p = t["provisioners"].as_array().unwrap();
    &p[1..p.len() - 1]
}

fn fingerprint(def: &Path, extra: &[&str]) -> String {
    let r = run_tool(def, &[extra, &["fingerprint"]].concat(), &worker_env());
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout.lines().last().unwrap().to_string()
}

#[test]
fn a_requirement_renders_as_it_is() {
    let f = fixture();
    let t = template(f.path(), &[]);
    assert_eq!(steps(&t).len(), 2);
    assert!(t["variables"]["worker_source"]
        .as_str()
        .unwrap()
        .starts_with("git+https://"));
}

#[test]
fn a_local_directory_is_uploaded_before_the_step_that_uses_it() {
    let f = fixture();
    let t = template(f.path(), &["--var", "worker_source=worker"]);
    let p = steps(&t);
    assert_eq!(p.len(), 4, "{p:#?}");
    assert_eq!(
        p[1]["inline"],
        serde_json::json!([
            "rm -rf /tmp/uworker-worker-source",
            "mkdir -m 0700 /tmp/uworker-worker-source"
        ])
    );
    assert_eq!(p[2]["type"], "file");
    // From the private copy the fingerprint hashed (a run's var-file names it).
    assert_eq!(p[2]["source"], "{{user `worker_source_dir`}}/");
    assert_eq!(p[2]["destination"], "/tmp/uworker-worker-source");
    assert_eq!(
        p[3]["environment_vars"][0],
        "WORKER_SOURCE={{user `worker_source`}}"
    );
    assert_eq!(
        t["variables"]["worker_source"],
        "/tmp/uworker-worker-source"
    );

    let wheel = template(
        f.path(),
        &["--var", "worker_source=dist/w-1.0-py3-none-any.whl"],
    );
    assert_eq!(
        steps(&wheel)[2]["destination"],
        "/tmp/uworker-worker-source/w-1.0-py3-none-any.whl"
    );
}

#[test]
fn the_local_sources_content_enters_the_fingerprint_and_its_location_does_not() {
    let f = fixture();
    let local = ["--var", "worker_source=worker"];
    let requirement = fingerprint(f.path(), &[]);
    let first = fingerprint(f.path(), &local);
    assert_ne!(first, requirement);

    let moved = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", f.path().display()))
        .arg(moved.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert_eq!(fingerprint(moved.path(), &local), first, "another checkout");

    std::fs::write(f.path().join("worker/pkg/__init__.py"), "VERSION = 2\n").unwrap();
    assert_ne!(fingerprint(f.path(), &local), first, "changed content");

    let explain = run_tool(
        f.path(),
        &["--var", "worker_source=worker", "fingerprint", "--explain"],
        &worker_env(),
    );
    assert!(
        explain
            .stdout
            .contains("file worker_source:pkg/__init__.py"),
        "{}",
        explain.stdout
    );
}

#[test]
fn a_missing_path_or_a_non_requirement_is_refused_before_packer_runs() {
    let f = fixture();
    let marker = f.path().join("packer-ran");
    std::fs::create_dir(f.path().join("bin")).unwrap();
    let packer = PackerStandIn::new()
        .marker(&marker)
        .exit(1)
        .write(&f.path().join("bin/packer"));
    for (value, hint) in [
        ("./nowhere", "nothing exists at"),
        ("gone-1.0-py3-none-any.whl", "nothing exists at"),
        ("/nonexistent/worker", "nothing exists at"),
        (
            "hello world",
            "neither an existing local path nor a pip requirement",
        ),
        (
            "uworker @ nowhere",
            "neither an existing local path nor a pip requirement",
        ),
    ] {
        let var = format!("worker_source={value}");
        for command in ["validate", "build"] {
            let r = run_tool(
                f.path(),
                &["--packer", packer.to_str().unwrap(), "--var", &var, command],
                &worker_env(),
            );
            assert_eq!(r.code, 2, "{value}: {}", r.all());
            assert!(r.stderr.contains("worker_source"), "{}", r.stderr);
            assert!(r.stderr.contains(hint), "{value}: {}", r.stderr);
            assert!(!marker.exists(), "packer ran for {value}");
        }
    }
}

/// A worker source directory in a temp dir of its own, outside any definition.
fn outside_source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("worker/pkg")).unwrap();
    std::fs::write(dir.path().join("worker/setup.py"), "setup()\n").unwrap();
    std::fs::write(dir.path().join("worker/pkg/__init__.py"), "").unwrap();
    std::fs::write(dir.path().join("w-1.0-py3-none-any.whl"), "zip").unwrap();
    dir
}

#[test]
fn a_source_outside_the_definition_is_uploaded_and_fingerprinted_by_content() {
    let f = fixture();
    let source = outside_source();
    let worker = source.path().join("worker");
    let absolute = format!("worker_source={}", worker.display());
    let t = template(f.path(), &["--var", &absolute]);
    let p = steps(&t);
    assert_eq!(p.len(), 4, "{p:#?}");
    assert_eq!(p[2]["type"], "file");
    assert_eq!(p[2]["source"], "{{user `worker_source_dir`}}/");
    assert_eq!(p[2]["destination"], "/tmp/uworker-worker-source");
    assert_eq!(
        t["variables"]["worker_source"],
        "/tmp/uworker-worker-source"
    );
    assert_eq!(t["variables"]["worker_source_dir"], "");

    let out = tempfile::tempdir().unwrap();
    render_out(f.path(), out.path(), &worker_env(), &["--var", &absolute]);
    let values: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("variables.json")).unwrap())
            .unwrap();
    assert_eq!(
        values["worker_source_dir"],
        worker.canonicalize().unwrap().to_str().unwrap()
    );

    // Relative to the definition, through `..`: the same source, the same fingerprint.
    let up = "../".repeat(f.path().components().count());
    let relative = format!("worker_source={up}{}", worker.display());
    let first = fingerprint(f.path(), &["--var", &absolute]);
    assert_eq!(fingerprint(f.path(), &["--var", &relative]), first);
    let explain = run_tool(
        f.path(),
        &["--var", &absolute, "fingerprint", "--explain"],
        &worker_env(),
    );
    assert!(
        explain
            .stdout
            .contains("file worker_source:pkg/__init__.py")
            && !explain.stdout.contains(source.path().to_str().unwrap()),
        "{}",
        explain.stdout
    );
    // Its location does not count; its content does.
    let moved = outside_source();
    let moved_var = format!("worker_source={}", moved.path().join("worker").display());
    assert_eq!(fingerprint(f.path(), &["--var", &moved_var]), first);
    std::fs::write(worker.join("pkg/__init__.py"), "VERSION = 2\n").unwrap();
    assert_ne!(fingerprint(f.path(), &["--var", &absolute]), first);

    // A package file keeps its name on the host.
    let wheel = format!(
        "worker_source={}",
        source.path().join("w-1.0-py3-none-any.whl").display()
    );
    let t = template(f.path(), &["--var", &wheel]);
    assert_eq!(
        steps(&t)[2]["source"],
        "{{user `worker_source_dir`}}/w-1.0-py3-none-any.whl"
    );
    assert_eq!(
        t["variables"]["worker_source"],
        "/tmp/uworker-worker-source/w-1.0-py3-none-any.whl"
    );
}

#[test]
fn a_link_out_of_an_outside_source_is_refused() {
    let f = fixture();
    let source = outside_source();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("id_ed25519"), "PRIVATE KEY").unwrap();
    std::os::unix::fs::symlink(
        secret.path().join("id_ed25519"),
        source.path().join("worker/pkg/key"),
    )
    .unwrap();
    let var = format!("worker_source={}", source.path().join("worker").display());
    let r = run_tool(f.path(), &["--var", &var, "render"], &worker_env());
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("worker_source")
            && r.stderr.contains(&format!(
                "pkg/key links to {}",
                secret
                    .path()
                    .canonicalize()
                    .unwrap()
                    .join("id_ed25519")
                    .display()
            )),
        "{}",
        r.stderr
    );
}

#[test]
fn url_credentials_are_a_secret_in_every_output() {
    let f = fixture();
    let url = private_url();
    // The URL reaches the tool through its environment: never a command line (`--var`
    // with credentials is refused, below).
    let source = |vars: &[(&'static str, &'static str)], url: &str| -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("UWORKER_IMAGE_WORKER_SOURCE".to_string(), url.to_string())])
            .collect()
    };
    let with_url = source(&worker_env(), &url);
    let with_url = env_pairs(&with_url);
    let key = "k".repeat(32);
    let keyed_vars = {
        let mut keyed = source(&worker_env(), &url);
        keyed.push(("UWORKER_FINGERPRINT_KEY".into(), key.clone()));
        keyed
    };
    let keyed = env_pairs(&keyed_vars);

    let refused = run_tool(
        f.path(),
        &["--var", &format!("worker_source={url}"), "fingerprint"],
        &worker_env(),
    );
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(
        refused.stderr.contains("--var") && refused.stderr.contains("UWORKER_IMAGE_WORKER_SOURCE"),
        "{}",
        refused.stderr
    );
    assert_no_credentials("the refusal of --var", &refused.all());

    let r = run_tool(f.path(), &["fingerprint", "--explain"], &with_url);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_credentials("fingerprint --explain", &r.all());
    assert!(r.stdout.contains("variable worker_source"), "{}", r.stdout);
    assert!(
        r.stdout.contains("git+https://127.0.0.1:9/o/worker.git"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("secret worker_source.userinfo"),
        "{}",
        r.stdout
    );

    // The manifest: the URL without credentials, an HMAC of them under the key.
    let r = run_tool(f.path(), &["--output", "json", "fingerprint"], &keyed);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_credentials("the manifest", &r.all());
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["manifest"]["variables"]["worker_source"], PUBLIC_URL);
    let digest = doc["manifest"]["secrets"]["worker_source.userinfo"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(digest.len(), 64);
    // Another token: another HMAC and fingerprint under the key; without the key, the same.
    let other = url.replace("x%40y", "z");
    let fp = |url: &str, keyed: bool| {
        let mut vars = source(&worker_env(), url);
        if keyed {
            vars.push(("UWORKER_FINGERPRINT_KEY".into(), key.clone()));
        }
        let r = run_tool(f.path(), &["fingerprint"], &env_pairs(&vars));
        assert_eq!(r.code, 0, "{}", r.all());
        r.stdout.lines().last().unwrap().to_string()
    };
    assert_ne!(fp(&url, true), fp(&other, true));
    assert_eq!(fp(&url, false), fp(&other, false));

    // render: the template has no credentials; the 0600 var-file has the whole URL.
    let r = run_tool(f.path(), &["render"], &with_url);
    assert_no_credentials("render", &r.all());
    let out = tempfile::tempdir().unwrap();
    render_out(f.path(), out.path(), &with_url, &[]);
    assert_no_credentials(
        "template.json",
        &std::fs::read_to_string(out.path().join("template.json")).unwrap(),
    );
    let values = std::fs::read_to_string(out.path().join("variables.json")).unwrap();
    let values: serde_json::Value = serde_json::from_str(&values).unwrap();
    assert_eq!(values["worker_source"], url);
    assert_eq!(mode(&out.path().join("variables.json")), 0o600);

    // The record (what a release's image.json and the PR comment are made of).
    let record = out.path().join("record.json");
    let r = run_tool(
        f.path(),
        &[
            "--output",
            "json",
            "plan",
            "--out",
            record.to_str().unwrap(),
        ],
        &with_url,
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_credentials("plan", &r.all());
    assert_no_credentials("the record", &std::fs::read_to_string(&record).unwrap());
    let mut cmd = tool(&[]);
    cmd.args(["report", "--record", record.to_str().unwrap()]);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_credentials("the report", &r.all());

    // In the definition itself: the same.
    let g = Fixture::new(&DEF.replace(
        "git+https://github.com/Odin-SMR/molflow-microq-worker.git#subdirectory=src",
        &private_url().replace('"', "\\\""),
    ));
    g.script("scripts/install.sh", "#!/bin/sh\necho \"$WORKER_SOURCE\"\n");
    let r = run_tool(g.path(), &["render"], &worker_env());
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_credentials("render of the definition's default", &r.all());
    let r = run_tool(g.path(), &["fingerprint", "--explain"], &worker_env());
    assert_no_credentials("explain of the definition's default", &r.all());
}

/// A private repository's URL given without a command line: UWORKER_IMAGE_WORKER_SOURCE
/// (over the var-file, under `--var`) reaches the 0600 var-file whole, and no output.
#[test]
fn the_worker_source_can_come_from_the_environment() {
    let f = fixture();
    let url = private_url();
    let mut vars = worker_env();
    vars.push(("UWORKER_IMAGE_WORKER_SOURCE", url.as_str()));
    let out = tempfile::tempdir().unwrap();
    let r = render_out(f.path(), out.path(), &vars, &[]);
    assert_no_credentials("render --out", &r.all());
    let values: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("variables.json")).unwrap())
            .unwrap();
    assert_eq!(values["worker_source"], url);
    let r = run_tool(f.path(), &["fingerprint", "--explain"], &vars);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains(PUBLIC_URL), "{}", r.stdout);
    assert_no_credentials("fingerprint --explain", &r.all());
    // --var still wins.
    let out = tempfile::tempdir().unwrap();
    render_out(
        f.path(),
        out.path(),
        &vars,
        &["--var", "worker_source=worker"],
    );
    let values: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("variables.json")).unwrap())
            .unwrap();
    assert_eq!(values["worker_source"], "/tmp/uworker-worker-source");
}

/// pip has no private way to take a plain download URL's credentials (git has: a
/// credential file): such a URL is refused, without quoting it.
#[test]
fn credentials_in_a_non_git_url_are_refused_unquoted() {
    let f = fixture();
    let url = format!("https://{USER}:{TOKEN}@127.0.0.1:9/w-1.0-py3-none-any.whl");
    let mut vars = worker_env();
    vars.push(("UWORKER_IMAGE_WORKER_SOURCE", url.as_str()));
    let r = run_tool(f.path(), &["render"], &vars);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("UWORKER_IMAGE_WORKER_SOURCE")
            && r.stderr.contains("`git+https://` URLs only"),
        "{}",
        r.stderr
    );
    assert_no_credentials("the refusal", &r.all());
}

/// A packer stand-in for `test`: `version` as packer 1.6.6 answers it; `build` first
/// changes the source the way a race would (a file rewritten, another swapped for a link
/// to a secret), then copies what it would upload (the var-file's `worker_source_dir`)
/// to `uploaded`.
fn racing_packer(dir: &Path, source: &Path, secret: &Path, uploaded: &Path) -> String {
    let packer = dir.join("packer");
    let script = format!(
        r#"#!/bin/sh
if [ "$1" != build ]; then exec '{fixture}' "$@"; fi
for arg in "$@"; do case "$arg" in -var-file=*) vars="${{arg#-var-file=}}" ;; esac; done
from=$(sed -n 's/^ *"worker_source_dir": "\(.*\)",\{{0,1\}}$/\1/p' "$vars")
[ -n "$from" ] || exit 1
printf 'VERSION = 2\n' > '{source}/pkg/__init__.py'
rm '{source}/setup.py' && ln -s '{secret}' '{source}/setup.py'
cp -RL "$from/." '{uploaded}/'
exit 1
"#,
        fixture = repo().join("tests/fixtures/packer-1.6.6").display(),
        source = source.display(),
        secret = secret.display(),
        uploaded = uploaded.display(),
    );
    std::fs::write(&packer, script).unwrap();
    std::fs::set_permissions(&packer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    packer.display().to_string()
}

/// What was checked is what is uploaded: the source is read once, when the tool loads
/// it, and packer uploads that copy, so a change after the check (a rewrite, or a file
/// swapped for a link out of the source) never reaches the host.
#[test]
fn the_upload_is_the_source_as_it_was_checked_whatever_changes_after() {
    let f = fixture();
    let source = outside_source();
    let worker = source.path().join("worker");
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("id_ed25519"), "PRIVATE KEY\n").unwrap();
    let work = tempfile::tempdir().unwrap();
    let uploaded = work.path().join("uploaded");
    std::fs::create_dir(&uploaded).unwrap();
    let key = work.path().join("key");
    std::fs::write(&key, "k").unwrap();
    let packer = racing_packer(
        work.path(),
        &worker,
        &secret.path().join("id_ed25519"),
        &uploaded,
    );
    let var = format!("worker_source={}", worker.display());
    let key_var = format!("test_ssh_key={}", key.display());
    let args = [
        "--packer",
        &packer,
        "--var",
        &var,
        "--var",
        "test_host=127.0.0.1:9",
        "--var",
        &key_var,
    ];
    let explain = run_tool(
        f.path(),
        &[&args[2..4], &["fingerprint", "--explain"]].concat(),
        &worker_env(),
    );
    assert_eq!(explain.code, 0, "{}", explain.all());
    let r = run_tool(f.path(), &[&args[..], &["test"]].concat(), &worker_env());
    assert_eq!(r.code, 1, "{}", r.all());
    // The source did change under the run.
    assert_eq!(
        std::fs::read_to_string(worker.join("setup.py")).unwrap(),
        "PRIVATE KEY\n"
    );
    assert_eq!(
        std::fs::read_to_string(uploaded.join("setup.py")).unwrap(),
        "setup()\n"
    );
    assert_eq!(
        std::fs::read_to_string(uploaded.join("pkg/__init__.py")).unwrap(),
        ""
    );
    // What was uploaded is what the fingerprint hashed, file by file.
    for name in ["setup.py", "pkg/__init__.py"] {
        use sha2::Digest as _;
        let digest = hex::encode(sha2::Sha256::digest(
            std::fs::read(uploaded.join(name)).unwrap(),
        ));
        let line = format!("file worker_source:{name}");
        assert!(
            explain
                .stdout
                .lines()
                .any(|l| l.contains(&line) && l.contains(&format!("sha256:{digest}"))),
            "{name} ({digest}):\n{}",
            explain.stdout
        );
    }
}

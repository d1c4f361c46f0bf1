//! `worker_source` through the CLI: a local source directory or wheel becomes upload steps
//! in the rendered template, its content enters the fingerprint (its location does not),
//! and a local-looking path that does not exist is refused naming the variable.

mod common;

use std::path::Path;

use common::*;

const DEF: &str = r#"name = "ws"
[variables]
worker_source = "git+https://github.com/Odin-SMR/molflow-microq-worker.git#subdirectory=src"
[target.t]
source_image = "base-id"
flavor = "f"
[[provision]]
inline = ["echo base"]
[[provision]]
script = "scripts/install.sh"
environment = { WORKER_SOURCE = "{{user `worker_source`}}" }
"#;

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

fn fingerprint(def: &Path, extra: &[&str]) -> String {
    let r = run_tool(def, &[extra, &["fingerprint"]].concat(), &worker_env());
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout.lines().last().unwrap().to_string()
}

#[test]
fn a_requirement_renders_as_it_is() {
    let f = fixture();
    let t = template(f.path(), &[]);
    assert_eq!(t["provisioners"].as_array().unwrap().len(), 2);
    assert!(t["variables"]["worker_source"]
        .as_str()
        .unwrap()
        .starts_with("git+https://"));
}

#[test]
fn a_local_directory_is_uploaded_before_the_step_that_uses_it() {
    let f = fixture();
    let t = template(f.path(), &["--var", "worker_source=worker"]);
    let p = t["provisioners"].as_array().unwrap();
    assert_eq!(p.len(), 4, "{p:#?}");
    assert_eq!(
        p[1]["inline"],
        serde_json::json!([
            "rm -rf /tmp/uworker-worker-source",
            "mkdir -m 0700 /tmp/uworker-worker-source"
        ])
    );
    assert_eq!(p[2]["type"], "file");
    assert_eq!(p[2]["source"], "{{user `definition_dir`}}/worker/");
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
        wheel["provisioners"][2]["destination"],
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
        explain.stdout.contains("worker/pkg/__init__.py"),
        "{}",
        explain.stdout
    );
}

#[test]
fn a_missing_or_escaping_local_path_is_refused_naming_the_variable() {
    let f = fixture();
    // The definition directory itself, reached from outside it.
    let outside = format!(
        "../{}/worker",
        f.path().file_name().unwrap().to_str().unwrap()
    );
    for (value, hint) in [
        ("./nowhere", "nothing exists at"),
        ("gone-1.0-py3-none-any.whl", "nothing exists at"),
        (outside.as_str(), "leaves the definition directory"),
    ] {
        let var = format!("worker_source={value}");
        let r = run_tool(f.path(), &["--var", &var, "validate"], &worker_env());
        assert_eq!(r.code, 2, "{value}: {}", r.all());
        assert!(r.stderr.contains("worker_source"), "{}", r.stderr);
        assert!(r.stderr.contains(hint), "{value}: {}", r.stderr);
    }
}

//! `plan` pins a floating git `worker_source` (issue 28), through the CLI with the git
//! stand-in (tests/fixtures/git-ls-remote: each ref at the SHA-1 of "URL REF"); the real
//! git against a git server on loopback is tests/services/pin_git.rs.

use crate::common;

use common::worker_url::{assert_no_credentials, private_url};
use common::*;

const DEF: &str = crate::definition_with_target_t!(
    "pins",
    r#"[variables]
worker_source = "git+https://git.example/o/worker.git@main#subdirectory=src"
[[provision]]
inline = ["echo {{user `worker_source`}}"]
"#
);

const URL: &str = "https://git.example/o/worker.git";

/// The commit the stand-in lists for `url`'s `pattern`, as `sha1sum` makes it.
fn standin_commit(url: &str, pattern: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf '%s %s' \"$1\" \"$2\" | sha1sum")
        .args(["sh", url, pattern])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..40].to_string()
}

/// `fingerprint`'s line, with `args` before the command.
fn fingerprint(dir: &std::path::Path, args: &[&str]) -> String {
    let r = run_tool(dir, &[args, &["fingerprint"]].concat(), &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout.lines().last().unwrap().to_string()
}

fn json(run: &Run) -> serde_json::Value {
    assert_eq!(run.code, 0, "{}", run.all());
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn plan_pins_the_branch_to_its_commit_and_the_fingerprint_follows_it() {
    let f = Fixture::new(DEF);
    let commit = standin_commit(URL, "refs/heads/main");
    let doc = json(&run_tool(f.path(), &["--output", "json", "plan"], &[]));
    let pinned = format!("git+{URL}@{commit}#subdirectory=src");
    assert_eq!(doc["manifest"]["variables"]["worker_source"], pinned);
    assert_eq!(
        doc["pins"],
        serde_json::json!([{
            "input": "worker_source", "kind": "git",
            "written": format!("git+{URL}@main#subdirectory=src"),
            "resolved": pinned, "floating": "main", "pinned": commit, "previous": null
        }])
    );
    // The offline `fingerprint` uses the value as written: another fingerprint, and the
    // pinned value given as written is plan's again.
    let offline = fingerprint(f.path(), &[]);
    assert_ne!(doc["fingerprint"].as_str().unwrap(), offline);
    let var = format!("worker_source={pinned}");
    assert_eq!(
        doc["fingerprint"].as_str().unwrap(),
        fingerprint(f.path(), &["--var", &var])
    );
    // A value at a full commit is left as it is: nothing pinned, the same fingerprint.
    let again = json(&run_tool(
        f.path(),
        &["--output", "json", "--var", &var, "plan"],
        &[],
    ));
    assert_eq!(again["fingerprint"], doc["fingerprint"]);
    assert_eq!(again["pins"], serde_json::Value::Null);

    let text = run_tool(f.path(), &["plan"], &[]);
    assert_eq!(text.code, 0, "{}", text.all());
    let line = format!("worker_source: main → {}…\n", &commit[..8]);
    assert!(text.stdout.contains(&line), "{}", text.stdout);
    assert!(
        text.stderr
            .contains(&format!("pinned worker_source: main → {}…", &commit[..8])),
        "{}",
        text.stderr
    );
}

#[test]
fn a_moved_branch_is_the_reason_for_the_build() {
    let f = Fixture::new(DEF);
    let commit = standin_commit(URL, "refs/heads/main");
    let old = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    let before = json(&run_tool(
        f.path(),
        &[
            "--output",
            "json",
            "--var",
            &format!("worker_source=git+{URL}@{old}#subdirectory=src"),
            "plan",
        ],
        &[],
    ));
    let previous = f.path().join("previous.json");
    std::fs::write(&previous, before.to_string()).unwrap();
    let args = ["plan", "--previous", previous.to_str().unwrap()];
    let doc = json(&run_tool(
        f.path(),
        &[&["--output", "json"][..], &args].concat(),
        &[],
    ));
    assert_eq!(doc["pins"][0]["previous"], old);
    let moved = format!("a1b2c3d → {}", &commit[..7]);
    let reason = doc["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "the worker's branch moved ({moved}); no OpenStack credentials"
        )),
        "{reason}"
    );
    assert_eq!(
        doc["changes"]["changed"],
        serde_json::json!(["variable worker_source"])
    );
    let text = run_tool(f.path(), &args, &[]);
    assert!(
        text.stdout.contains(&format!(
            "worker_source: main → {}… (moved: {moved})\n",
            &commit[..8]
        )),
        "{}",
        text.stdout
    );
    // The same commit as before: no move to tell.
    std::fs::write(&previous, doc.to_string()).unwrap();
    let same = json(&run_tool(
        f.path(),
        &[&["--output", "json"][..], &args].concat(),
        &[],
    ));
    assert_eq!(same["pins"][0]["previous"], serde_json::Value::Null);
    assert!(same["reason"].as_str().unwrap().starts_with("no OpenStack"));
}

#[test]
fn an_unreachable_repository_stops_plan_naming_its_host_never_its_credentials() {
    let url = private_url().replace("127.0.0.1:9", "git.invalid");
    let f = Fixture::new(DEF);
    let env = [("UWORKER_IMAGE_WORKER_SOURCE", url.as_str())];
    for command in ["plan", "matrix"] {
        let r = run_tool(f.path(), &[command], &env);
        assert_eq!(r.code, 3, "{command}: {}", r.all());
        assert!(
            r.stderr.contains("git.invalid") && r.stderr.contains("pinning worker_source"),
            "{}",
            r.stderr
        );
        assert_no_credentials(command, &r.all());
        assert!(r.stdout.is_empty(), "nothing planned: {}", r.stdout);
    }
    // The offline commands do not ask.
    assert_eq!(run_tool(f.path(), &["render"], &env).code, 0);
    // No git at all: bad input, naming what to install.
    let r = run_tool(
        f.path(),
        &["plan"],
        &[("UWORKER_IMAGE_GIT", "/nonexistent/git")],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("install git"), "{}", r.stderr);
}

#[test]
fn a_private_repository_is_pinned_without_its_credentials_in_the_record() {
    let f = Fixture::new(DEF);
    let url = private_url();
    let out = f.path().join("plan.json");
    let r = run_tool(
        f.path(),
        &["plan", "--out", out.to_str().unwrap()],
        &[("UWORKER_IMAGE_WORKER_SOURCE", url.as_str())],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_credentials("plan", &r.all());
    let record = std::fs::read_to_string(&out).unwrap();
    assert_no_credentials("the record", &record);
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let commit = standin_commit("https://127.0.0.1:9/o/worker.git", "HEAD");
    assert_eq!(record["pins"][0]["floating"], "HEAD");
    assert_eq!(
        record["pins"][0]["resolved"],
        format!("git+https://127.0.0.1:9/o/worker.git@{commit}#subdirectory=src")
    );
    // The credentials count as a secret does, by name.
    assert!(record["manifest"]["secrets"]
        .as_object()
        .unwrap()
        .contains_key("worker_source.userinfo"));
}

//! Pinning a git worker source against a real git server on loopback
//! (common::git_server: `git http-backend` behind HTTP): the branch resolves to its
//! commit, moves one commit and resolves to the new one; tags, HEAD, a missing ref, a
//! private repository's credentials, and a host that is not there.

use std::time::Duration;

use uworker_image::error_chain::Chain;
use uworker_image::exit::{Code, Coded as _};
use uworker_image::pin::{self, Git, PinError};

use crate::common::git_server::GitServer;

fn git() -> Git {
    Git::new("git", Duration::from_secs(30))
}

fn pinned(value: &str) -> pin::Pin {
    pin::pin(value, &git()).unwrap().expect("a git source")
}

/// A `git` that runs the real one with GIT_TRACE writing to `trace`. Written by a shell,
/// so no descriptor of this process is open on it when it runs ("text file busy").
fn traced_git(dir: &std::path::Path, trace: &std::path::Path) -> std::path::PathBuf {
    let program = dir.join("git");
    let script = format!(
        "#!/bin/sh\nGIT_TRACE={} exec git \"$@\"\n",
        uworker_image::shell::quote(&trace.display().to_string())
    );
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf '%s' \"$2\" > \"$1\" && chmod 0755 \"$1\"")
        .arg("sh")
        .arg(&program)
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success());
    program
}

#[test]
fn a_branch_that_moves_one_commit_pins_to_the_new_commit() {
    let server = GitServer::start(None);
    let repository = server.repository_url();
    let first = server.head();
    let value = format!("git+{repository}@main#subdirectory=src");
    let pin = pinned(&value);
    assert_eq!(pin.commit, first);
    assert_eq!(pin.reference.as_deref(), Some("main"));
    assert_eq!(
        pin.value,
        format!("git+{repository}@{first}#subdirectory=src")
    );
    // No ref: the remote's HEAD, the same branch.
    let head = pinned(&format!("git+{repository}#subdirectory=src"));
    assert_eq!(head.commit, first);
    assert_eq!(head.reference, None);

    let second = server.commit("second");
    assert_ne!(second, first);
    let moved = pinned(&value);
    assert_eq!(moved.commit, second, "the branch's new commit");
    assert_eq!(
        moved.value,
        format!("git+{repository}@{second}#subdirectory=src")
    );
    assert_eq!(pinned(&format!("git+{repository}")).commit, second);

    // Smart HTTP, protocol v2, as against a forge.
    assert!(server
        .requests()
        .iter()
        .any(|r| r.target.ends_with("/info/refs?service=git-upload-pack")
            && r.header("git-protocol") == Some("version=2")));

    // The pinned value is left as it is, without a request.
    let asked = server.requests().len();
    assert_eq!(pinned(&pin.value).value, pin.value);
    assert_eq!(
        server.requests().len(),
        asked,
        "no request for a pinned value"
    );
}

#[test]
fn tags_resolve_to_their_commit_and_a_missing_ref_is_external() {
    let server = GitServer::start(None);
    let repository = server.repository_url();
    let first = server.head();
    server.tag("v1", true);
    server.tag("light", false);
    let second = server.commit("second");
    assert_eq!(
        pinned(&format!("git+{repository}@v1")).commit,
        first,
        "an annotated tag peeled to its commit"
    );
    assert_eq!(pinned(&format!("git+{repository}@light")).commit, first);
    assert_eq!(
        pinned(&format!("git+{repository}@refs/heads/main")).commit,
        second
    );

    let error = pin::pin(&format!("git+{repository}@nope"), &git()).unwrap_err();
    assert!(matches!(error, PinError::NoSuchRef { .. }), "{error:?}");
    assert_eq!(error.code(), Code::External);
    assert!(error.to_string().contains("`nope`"), "{error}");
}

#[test]
fn a_private_repository_takes_the_urls_credentials_and_never_shows_them() {
    let (user, password) = ("x-access-token", "S3cr@t/T0ken");
    let server = GitServer::start(Some((user, password)));
    let authority = server.url.trim_start_matches("http://").to_string();
    let with = |pass: &str| {
        format!("git+http://{user}:{pass}@{authority}/worker.git@main#subdirectory=src")
    };
    let pin = pinned(&with("S3cr%40t%2FT0ken"));
    assert_eq!(pin.commit, server.head());
    assert_eq!(
        pin.value,
        format!(
            "git+http://{user}:S3cr%40t%2FT0ken@{authority}/worker.git@{}#subdirectory=src",
            server.head()
        ),
        "the credentials stay in the value, for the install"
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.basic_auth() == Some((user.into(), password.into()))),
        "git sent the decoded pair"
    );
    assert!(requests.iter().all(|r| !r.target.contains("S3cr")));

    // No command line git ran held them: git's own trace of every program it started
    // (its remote helper, the credential helper) and of its own arguments.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let traced = Git::new(traced_git(dir.path(), &trace), Duration::from_secs(30));
    let again = pin::pin(&with("S3cr%40t%2FT0ken"), &traced)
        .unwrap()
        .unwrap();
    assert_eq!(again.commit, pin.commit);
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace.contains("remote-http"),
        "the trace follows git's children:\n{trace}"
    );
    assert!(
        trace.contains("f get"),
        "the credential helper ran:\n{trace}"
    );
    for form in ["S3cr", "T0ken", "%40t"] {
        assert!(!trace.contains(form), "{form} on a command line:\n{trace}");
    }

    // Wrong credentials: exit 3 naming the host, the password in no form.
    let error = pin::pin(&with("wr0ngPassw0rd"), &git()).unwrap_err();
    assert!(matches!(error, PinError::ListRefs { .. }), "{error:?}");
    assert_eq!(error.code(), Code::External);
    let shown = Chain(&error).to_string();
    assert!(shown.contains(&authority), "{shown}");
    assert!(!shown.contains("wr0ngPassw0rd"), "{shown}");

    // No credentials at all: git may not prompt; it fails at once.
    let error = pin::pin(&format!("git+http://{authority}/worker.git@main"), &git()).unwrap_err();
    assert!(matches!(error, PinError::ListRefs { .. }), "{error:?}");
}

#[test]
fn a_host_that_is_not_there_is_external_naming_it() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let value = format!("git+http://u:S3cretPass@127.0.0.1:{port}/worker.git");
    let error = pin::pin(&value, &git()).unwrap_err();
    assert_eq!(error.code(), Code::External);
    let shown = Chain(&error).to_string();
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(!shown.contains("S3cretPass"), "{shown}");
}

/// `plan` through the CLI with the real git: the worker source's branch pinned to its
/// commit in the record, the manifest and the text; after one commit, plan against the
/// first record names the move as its reason; against the second, nothing moved.
#[test]
fn plan_pins_the_worker_and_names_the_commit_it_moved_from() {
    use crate::common::{run_tool, Fixture, REAL_GIT};
    let server = GitServer::start(None);
    let repository = server.repository_url();
    let f = Fixture::new(&format!(
        "name = \"pins\"\n[target.t]\nsource_image = \"base-id\"\nflavor = \"f\"\n\
         [variables]\nworker_source = \"git+{repository}@main#subdirectory=src\"\n\
         [[provision]]\ninline = [\"echo {{{{user `worker_source`}}}}\"]\n"
    ));
    let plan = |previous: Option<&std::path::Path>| {
        let out = f.path().join("plan.json");
        let mut args = vec!["plan", "--out", out.to_str().unwrap()];
        if let Some(previous) = previous {
            args.extend(["--previous", previous.to_str().unwrap()]);
        }
        let run = run_tool(f.path(), &args, &[REAL_GIT]);
        assert_eq!(run.code, 0, "{}", run.all());
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        (run.stdout, record)
    };
    let first = server.head();
    let (text, record) = plan(None);
    assert_eq!(record["pins"][0]["pinned"], first.as_str());
    assert_eq!(
        record["manifest"]["variables"]["worker_source"],
        format!("git+{repository}@{first}#subdirectory=src")
    );
    assert!(
        text.contains(&format!("worker_source: main → {}…\n", &first[..8])),
        "{text}"
    );
    let before = f.path().join("before.json");
    std::fs::write(&before, record.to_string()).unwrap();

    let second = server.commit("second");
    let (text, record) = plan(Some(&before));
    assert_eq!(record["pins"][0]["pinned"], second.as_str());
    assert_eq!(record["pins"][0]["previous"], first.as_str());
    let moved = format!("{} → {}", &first[..7], &second[..7]);
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("the worker's branch moved ({moved});")),
        "{record}"
    );
    assert!(text.contains(&format!("(moved: {moved})")), "{text}");

    let after = f.path().join("after.json");
    std::fs::write(&after, record.to_string()).unwrap();
    let (_, record) = plan(Some(&after));
    assert_eq!(record["pins"][0]["previous"], serde_json::Value::Null);
    assert_eq!(record["changes"]["changed"], serde_json::json!([]));
}

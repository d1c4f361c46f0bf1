//! `build` around the packer run, against the real Keystone and Glance. (There is no Nova
//! here: a full build runs against a Compute stand-in in a later suite.)

use crate::common;

use common::loopback::{Answer, Server};
use common::openstack::*;
use common::*;

fn definition(source: &str, name: &str) -> Fixture {
    let f = Fixture::new(&format!(
        "name = \"{name}\"\n[target.t]\n{source}\nflavor = \"f\"\n[[provision]]\nscript = \"s.sh\"\n"
    ));
    f.script("s.sh", "#!/bin/sh\necho hi\n");
    f
}

fn vars(extra: &[(&'static str, String)]) -> Vec<(String, String)> {
    let mut v = os_env("appcred");
    v.extend(
        worker_env()
            .iter()
            .map(|(k, val)| (k.to_string(), val.to_string())),
    );
    v.extend(extra.iter().map(|(k, val)| (k.to_string(), val.clone())));
    v
}

/// A stand-in for the job service's `GET /token` (root: its URL and `/api`): 200 with a
/// token for the right basic auth, 401 otherwise.
fn job_service(user: &str, password: &str) -> Server {
    let expected = Some((user.to_string(), password.to_string()));
    Server::start("127.0.0.1", move |request| {
        if request.basic_auth() == expected
            && request.method == "GET"
            && request.target == "/api/token"
        {
            Answer::json(200, r#"{"token": "t0k"}"#)
        } else {
            Answer::json(401, "{}")
        }
    })
}

#[test]
fn an_existing_image_is_skipped_and_recorded() {
    let name = unique("skip");
    let f = definition("source_image = \"base\"", &name);
    let v = vars(&[]);
    let (fingerprint, image) = image_with_fingerprint_of(f.path(), &v, &format!("{name}-t-1"));
    let out = f.path().join("record.json");
    let r = run_tool(
        f.path(),
        &["build", "--out", out.to_str().unwrap()],
        &env_pairs(&v),
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        !r.stderr.contains("packer build"),
        "no packer run for a skip:\n{}",
        r.stderr
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(record["action"], "skip");
    assert_eq!(record["built"], false);
    assert_eq!(record["image_id"], image.id.as_str());
    assert_eq!(record["fingerprint"], fingerprint.as_str());
    assert_eq!(record["manifest"]["target"], "t");
    for secret in [NASTY_PASSWORD, NASTY_USERNAME, API_ROOT] {
        assert!(!std::fs::read_to_string(&out).unwrap().contains(secret));
    }
}

#[test]
fn a_missing_source_image_fails_before_packer() {
    let f = definition(
        "source_image = \"00000000-0000-0000-0000-00000000dead\"",
        &unique("pre"),
    );
    let r = run_tool(f.path(), &["build"], &env_pairs(&vars(&[])));
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("source_image") && r.stderr.contains("cannot be read in Glance"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("packer build"), "{}", r.stderr);
}

#[test]
fn worker_credentials_are_checked_against_the_job_service() {
    let base = create_image(&cloud(), &unique("base-"), &[], true);
    let f = definition(&format!("source_image = \"{}\"", base.id), &unique("job"));

    let refused = job_service("someone-else", "x");
    let v = vars(&[("UWORKER_JOB_API_ROOT", format!("{}/api", refused.url))]);
    let r = run_tool(
        f.path(),
        &["build", "--check-worker-credentials"],
        &env_pairs(&v),
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("job service refused"), "{}", r.stderr);
    assert!(!r.all().contains(NASTY_PASSWORD.lines().next().unwrap()));

    // Accepted: the build goes on to import the run's key pair, and this cloud's catalog
    // has no compute endpoint in its region (or, before any e2e scenario registered the
    // stand-in, no compute service at all): a failure in seconds, before packer starts.
    let accepting = job_service(NASTY_USERNAME, NASTY_PASSWORD);
    let v = vars(&[("UWORKER_JOB_API_ROOT", format!("{}/api", accepting.url))]);
    let r = run_tool(
        f.path(),
        &["build", "--check-worker-credentials", "--attempts", "2"],
        &env_pairs(&v),
    );
    assert!(
        r.stderr.contains("the job service accepted"),
        "{}",
        r.stderr
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("importing the run's SSH key")
            && (r.stderr.contains("endpoint of `compute`")
                || r.stderr.contains("no `compute` service")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("packer build"), "{}", r.stderr);
    assert!(!r.all().contains(NASTY_PASSWORD.lines().next().unwrap()));
}

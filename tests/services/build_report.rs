//! `build` reporting by itself inside GitHub Actions, against the real Keystone and Glance
//! (tests/harness/openstack.sh) and GitHub's OpenAPI description (Prism as a proxy in
//! front of the fake). A build that finds its image skips: no release, and the outputs
//! and summary name the image that serves.

use crate::common;

use common::github::{FakeGitHub, Job, Prism};
use common::openstack::*;
use common::*;

#[test]
fn build_in_actions_reports_a_skip_with_the_serving_image() {
    let name = unique("report");
    let f = Fixture::new(&format!(
        "name = \"{name}\"\n[target.t]\nsource_image = \"base\"\nflavor = \"f\"\n[[provision]]\nscript = \"s.sh\"\n"
    ));
    f.script("s.sh", "#!/bin/sh\necho hi\n");
    let mut vars = os_env("appcred");
    vars.extend(
        worker_env()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let (fingerprint, image) = image_with_fingerprint_of(f.path(), &vars, &format!("{name}-t-1"));

    let fake = FakeGitHub::start();
    let prism = Prism::proxy(&fake.url);
    let job = Job::push(&prism.url);
    let mut cmd = job.command();
    for (k, v) in &vars {
        cmd.env(k, v);
    }
    cmd.arg("--dir").arg(f.path()).arg("build");
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    job.assert_no_token(&r);
    for secret in [NASTY_PASSWORD, NASTY_USERNAME] {
        for text in [r.stdout.as_str(), &job.outputs(), &job.summary()] {
            assert!(!text.contains(secret), "a worker secret leaked");
        }
    }
    assert!(r.stderr.contains("::add-mask::"), "{}", r.stderr);
    let outputs = job.outputs();
    for line in [
        "action=skip\n".to_string(),
        "built=false\n".to_string(),
        format!("fingerprint={fingerprint}\n"),
        format!("image_id={}\n", image.id),
    ] {
        assert!(outputs.contains(&line), "no {line:?} in {outputs}");
    }
    let summary = job.summary();
    assert!(
        summary.contains(&format!("skipped: `{}` serves this fingerprint", image.id)),
        "{summary}"
    );
    assert!(fake.state.lock().unwrap().releases.is_empty());
    assert!(fake.seen().iter().all(|s| s.method == "GET"));
    prism.assert_conformant();
}

//! `report` (and `plan` reporting by itself) against GitHub's official OpenAPI
//! description: Prism's mock checks every request; Prism as a proxy in front of a
//! stateful fake checks the flows (release exists or not, comment exists or not, a
//! fork's 403, a 502 then success) and the fake's answers too.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::github::{FakeGitHub, Job, Prism, TOKEN};
use common::loopback::{Answer, Server};
use common::{default_definition, run, tool};
use serde_json::{json, Value};

/// A plan record of the repository's default definition, from the real `plan`.
fn plan_record() -> Value {
    let mut cmd = tool(&[]);
    cmd.arg("--dir")
        .arg(default_definition())
        .args(["plan", "--output", "json"]);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    serde_json::from_str(&r.stdout).unwrap()
}

/// A build record for the plan: what `build --out` writes after a successful build.
fn build_record(plan: &Value) -> Value {
    let mut record = plan.clone();
    let fields = json!({
        "schema": 1, "built": true, "image_id": "0b5e7c1e-aaaa-4bbb-8ccc-000000000042",
        "image_name": "uworker-smog-f33b2c8f0694", "reason": "built 0b5e7c1e in 1 attempt(s)",
        "packer_version": plan["manifest"]["packer_version"], "attempts": 1,
        "git_commit": "2222222222222222222222222222222222222222",
        "run_url": "https://github.com/o/r/actions/runs/77",
    });
    for (k, v) in fields.as_object().unwrap() {
        record[k] = v.clone();
    }
    record
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join("record.json")
}

#[test]
fn mock_every_request_of_a_release_and_a_comment_conforms() {
    let prism = Prism::mock();
    let plan = plan_record();

    let job = Job::push(&prism.url);
    let r = job.report(&build_record(&plan), &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    // GitHub's example release exists with this tag: updated, and image.json uploaded.
    assert!(
        r.stderr.contains("report: updated release image-"),
        "{}",
        r.stderr
    );
    assert!(job.outputs().contains("built=true\n"), "{}", job.outputs());

    let pr = Job::pull_request(&prism.url, 7, false);
    let r = pr.report(&plan, &["--validation", "success"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("report: posted the comment on #7"),
        "{}",
        r.stderr
    );

    let requests = prism.requests();
    for expected in [
        "GET /repos/o/r/releases",
        "PATCH /repos/o/r/releases/1",
        "POST /repos/o/r/releases/1/assets",
        "GET /repos/o/r/issues/7/comments",
        "POST /repos/o/r/issues/7/comments",
    ] {
        assert!(
            requests.iter().any(|r| r.starts_with(expected)),
            "no {expected} in {requests:#?}"
        );
    }
    prism.assert_conformant();
}

#[test]
fn release_is_created_once_then_updated_with_changes_against_the_latest_image() {
    let fake = FakeGitHub::start();
    let prism = Prism::proxy_logging(&fake.url);
    let plan = plan_record();
    let record = build_record(&plan);
    let target = plan["target"].as_str().unwrap();

    // The target's previous image: its record has another version of a script.
    let mut older = record.clone();
    let files = older["manifest"]["files"].as_array_mut().unwrap();
    files[0]["sha256"] = json!("0".repeat(64));
    let changed_file = format!("file {}", files[0]["path"].as_str().unwrap());
    fake.state.lock().unwrap().add_release(
        "image-000000000000",
        &format!("<!-- uworker-image:{target} -->\nolder"),
        &[("image.json", &older.to_string())],
    );
    // Newer releases of another target push it to the second page of the listing.
    for n in 0..120 {
        fake.state.lock().unwrap().add_release(
            &format!("image-other{n:07}"),
            "<!-- uworker-image:other -->\nnot this target's",
            &[("image.json", "{}")],
        );
    }

    let job = Job::push(&prism.url);
    let tag = format!("image-{}", &record["fingerprint"].as_str().unwrap()[7..19]);
    let r = job.report(&record, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), prism.log());
    assert!(
        r.stderr.contains(&format!("report: created release {tag}")),
        "{}",
        r.stderr
    );
    let again = job.report(&record, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again.stderr.contains("report: updated release image-"),
        "{}",
        again.stderr
    );

    let state = fake.state.lock().unwrap();
    let ours: Vec<_> = state.releases.iter().filter(|r| r.tag == tag).collect();
    assert_eq!(ours.len(), 1, "never a duplicate release");
    let release = ours[0];
    assert_eq!(
        release.assets.len(),
        1,
        "image.json replaced, not added twice"
    );
    assert_eq!(release.assets[0].name, "image.json");
    let attached: Value = serde_json::from_slice(&release.assets[0].content).unwrap();
    assert_eq!(attached, record, "the record is attached as it was written");
    for expected in [
        "0b5e7c1e-aaaa-4bbb-8ccc-000000000042",
        "uworker-smog-f33b2c8f0694",
        record["fingerprint"].as_str().unwrap(),
        "2222222222222222222222222222222222222222",
        "https://github.com/o/r/actions/runs/77",
        &format!("changed: `{changed_file}`"),
        "the latest image (`image-000000000000`)",
        &format!("<!-- uworker-image:{target} -->"),
    ] {
        assert!(
            release.body.contains(expected),
            "no {expected} in the body:\n{}",
            release.body
        );
    }
    drop(state);

    let outputs = job.outputs();
    for line in [
        "action=build\n",
        "built=true\n",
        "image_id=0b5e7c1e-aaaa-4bbb-8ccc-000000000042\n",
    ] {
        assert!(outputs.contains(line), "{outputs}");
    }
    assert!(
        outputs.contains(&format!("changed={changed_file}\n")),
        "{outputs}"
    );
    assert!(
        job.summary().contains("created release [image-"),
        "{}",
        job.summary()
    );
    prism.assert_conformant_but_storage();
}

#[test]
fn asset_downloads_follow_the_redirect_to_storage_without_the_token() {
    // Straight to the fake: Prism would follow the redirect itself.
    let fake = FakeGitHub::start();
    let plan = plan_record();
    let record = build_record(&plan);
    fake.state.lock().unwrap().add_release(
        "image-000000000000",
        "<!-- uworker-image:smog -->",
        &[("image.json", &record.to_string())],
    );
    let job = Job::pull_request(&fake.url, 3, false);
    let r = job.report(&plan, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let seen = fake.seen();
    let download = seen
        .iter()
        .find(|s| s.path.starts_with("/download/"))
        .expect("the record was downloaded");
    assert_eq!(
        download.authorization, None,
        "the token went to the storage host"
    );
    assert!(seen
        .iter()
        .filter(|s| s.path.starts_with("/repos/"))
        .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))));
    let comment = &fake.state.lock().unwrap().comments[0].body;
    assert!(
        comment.contains("No input changed against the latest image (`image-000000000000`)"),
        "{comment}"
    );
}

/// Storage on another host (127.0.0.2) that serves `content` to every GET and records
/// the Authorization header of each request.
fn storage_host(content: String) -> (Server, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = Server::start("127.0.0.2", move |request| {
        let authorization = request.header("authorization").map(str::to_string);
        record.lock().unwrap().push(authorization);
        Answer::new(200, content.clone()).header("Content-Type", "application/octet-stream")
    });
    (server, seen)
}

#[test]
fn the_token_never_follows_a_redirect_to_another_host() {
    // The asset API redirects to storage elsewhere (objects.githubusercontent.com): the
    // download goes there without the token. Within the API's own origin it keeps it.
    let plan = plan_record();
    let record = build_record(&plan).to_string();
    let (storage, at_storage) = storage_host(record.clone());
    for (where_to, expect_token) in [(Some(storage.url.clone()), false), (None, true)] {
        let fake = FakeGitHub::start();
        {
            let mut state = fake.state.lock().unwrap();
            state.add_release(
                "image-000000000000",
                "<!-- uworker-image:smog -->",
                &[("image.json", &record)],
            );
            // None here: the fake itself, at its own origin.
            state.storage = Some(where_to.clone().unwrap_or_else(|| fake.url.clone()));
        }
        let r = Job::pull_request(&fake.url, 3, false).report(&plan, &[]);
        assert_eq!(r.code, 0, "{}", r.all());
        let comment = fake.state.lock().unwrap().comments[0].body.clone();
        assert!(
            comment.contains("No input changed against the latest image (`image-000000000000`)"),
            "the record was read: {comment}"
        );
        let delivered: Vec<Option<String>> = if where_to.is_some() {
            at_storage.lock().unwrap().clone()
        } else {
            fake.seen()
                .into_iter()
                .filter(|s| s.path.starts_with("/download/"))
                .map(|s| s.authorization)
                .collect()
        };
        let token = format!("Bearer {TOKEN}");
        let expected = if expect_token { Some(token) } else { None };
        assert_eq!(delivered, [expected], "redirect to {where_to:?}");
    }
}

#[test]
fn sticky_comment_is_posted_then_edited_in_place() {
    let fake = FakeGitHub::start();
    let prism = Prism::proxy(&fake.url);
    let plan = plan_record();
    fake.state
        .lock()
        .unwrap()
        .add_comment(7, "an unrelated comment");
    fake.state
        .lock()
        .unwrap()
        .add_comment(7, "> <!-- uworker-image:smog -->\n> quoted by a reviewer");

    let job = Job::pull_request(&prism.url, 7, false);
    let r = job.report(&plan, &["--validation", "success"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = job.report(&plan, &["--validation", "failure"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("report: updated the comment on #7"),
        "{}",
        r.stderr
    );

    let state = fake.state.lock().unwrap();
    let ours: Vec<_> = state
        .comments
        .iter()
        .filter(|c| c.body.starts_with("<!-- uworker-image:smog -->"))
        .collect();
    assert_eq!(ours.len(), 1, "one sticky comment per target");
    let body = &ours[0].body;
    assert!(body.contains("❌ validation failed"), "{body}");
    assert!(
        body.contains(plan["fingerprint"].as_str().unwrap()),
        "{body}"
    );
    assert!(body.contains("a new image will be built"), "{body}");
    assert!(body.contains("No earlier image of this target"), "{body}");
    assert_eq!(state.comments.len(), 3);
    assert!(
        state.comments[1].body.ends_with("quoted by a reviewer"),
        "a reviewer's quote was edited"
    );
    drop(state);
    let patches = fake
        .seen()
        .iter()
        .filter(|s| s.method == "PATCH" && s.path.starts_with("/repos/o/r/issues/comments/"))
        .count();
    assert_eq!(patches, 1, "the second report edits with PATCH");
    prism.assert_conformant();
}

/// The comments of #`issue` whose body starts with the smog marker: (author, body).
fn marked(fake: &FakeGitHub, issue: u64) -> Vec<(String, String)> {
    fake.state
        .lock()
        .unwrap()
        .comments
        .iter()
        .filter(|c| c.issue == issue && c.body.starts_with("<!-- uworker-image:smog -->"))
        .map(|c| (c.author.clone(), c.body.clone()))
        .collect()
}

fn patched(fake: &FakeGitHub) -> Vec<String> {
    fake.seen()
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.path.clone())
        .collect()
}

#[test]
fn a_marker_comment_by_someone_else_is_neither_edited_nor_counted() {
    // Anyone may post the marker first, then edit their comment into "validation
    // passed". With GITHUB_TOKEN (GET /user refused), ours are github-actions[bot]'s.
    let fake = FakeGitHub::start();
    let prism = Prism::proxy(&fake.url);
    let planted = "<!-- uworker-image:smog -->\n### Worker image smog: ✅ validation passed";
    let theirs = fake
        .state
        .lock()
        .unwrap()
        .add_comment_by(7, planted, "mallory");
    let plan = plan_record();
    let job = Job::pull_request(&prism.url, 7, false);
    let r = job.report(&plan, &["--validation", "failure"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("report: posted the comment on #7"),
        "{}",
        r.stderr
    );
    let r = job.report(&plan, &["--validation", "failure"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("report: updated the comment on #7"),
        "{}",
        r.stderr
    );

    let comments = marked(&fake, 7);
    assert_eq!(comments.len(), 2, "{comments:?}");
    assert_eq!(comments[0], ("mallory".to_string(), planted.to_string()));
    assert_eq!(comments[1].0, "github-actions[bot]");
    assert!(
        comments[1].1.contains("❌ validation failed"),
        "{}",
        comments[1].1
    );
    let ours = fake.state.lock().unwrap().comments[1].id;
    assert_eq!(
        patched(&fake),
        [format!("/repos/o/r/issues/comments/{ours}")],
        "only our comment is edited (theirs is {theirs})"
    );
    assert!(fake
        .seen()
        .iter()
        .any(|s| s.method == "GET" && s.path == "/user"));
    prism.assert_conformant();
}

#[test]
fn a_personal_token_owns_its_users_comments_and_an_app_names_its_bot() {
    // A personal token: GET /user says who it is; the bot's marker comment is not ours.
    let fake = FakeGitHub::start();
    let prism = Prism::proxy(&fake.url);
    let plan = plan_record();
    {
        let mut state = fake.state.lock().unwrap();
        state.token_user = Some("octocat".into());
        state.add_comment_by(7, "<!-- uworker-image:smog -->\nold", "github-actions[bot]");
        state.add_comment_by(7, "<!-- uworker-image:smog -->\nold", "OctoCat");
    }
    let job = Job::pull_request(&prism.url, 7, false);
    let r = job.report(&plan, &["--validation", "success"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let comments = marked(&fake, 7);
    assert_eq!(comments.len(), 2, "{comments:?}");
    assert_eq!(comments[0].1, "<!-- uworker-image:smog -->\nold");
    assert!(
        comments[1].1.contains("| Validation | ✅ passed |"),
        "{comments:?}"
    );
    prism.assert_conformant();

    // An App token: GET /user is refused as for GITHUB_TOKEN, so the bot is named.
    let fake = FakeGitHub::start();
    fake.state.lock().unwrap().add_comment_by(
        7,
        "<!-- uworker-image:smog -->\nold",
        "uworker-app[bot]",
    );
    let job = Job::pull_request(&fake.url, 7, false)
        .with("UWORKER_IMAGE_COMMENT_AUTHOR", "uworker-app[bot]");
    let r = job.report(&plan, &["--validation", "success"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let comments = marked(&fake, 7);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].1.contains("| Validation | ✅ passed |"),
        "{comments:?}"
    );
    assert!(
        !fake.seen().iter().any(|s| s.path == "/user"),
        "a named author needs no lookup"
    );
}

#[test]
fn plan_reports_by_itself_in_actions_and_not_with_no_report() {
    let fake = FakeGitHub::start();
    let prism = Prism::proxy(&fake.url);
    let job = Job::pull_request(&prism.url, 9, false);
    let mut cmd = job.command();
    cmd.arg("--dir")
        .arg(default_definition())
        .args(["plan", "--output", "json", "--no-report"]);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(fake.seen().is_empty(), "--no-report sent requests");
    assert_eq!(job.outputs(), "");

    let mut cmd = job.command();
    cmd.arg("--dir")
        .arg(default_definition())
        .args(["plan", "--output", "json"]);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    job.assert_no_token(&r);
    let printed: Value = serde_json::from_str(&r.stdout).expect("stdout stays pure JSON");
    assert_eq!(printed["action"], "build");
    assert!(fake
        .state
        .lock()
        .unwrap()
        .comments
        .iter()
        .any(|c| c.issue == 9));
    assert!(
        job.outputs().contains("action=build\nbuilt=false\n"),
        "{}",
        job.outputs()
    );
    assert!(
        r.stderr.contains("::group::uworker-image: report smog"),
        "{}",
        r.stderr
    );
    prism.assert_conformant();
}

#[test]
fn a_forks_read_only_token_gets_a_warning_and_the_summary() {
    let fake = FakeGitHub::start();
    let prism = Prism::proxy(&fake.url);
    fake.state.lock().unwrap().read_only = true;
    let plan = plan_record();
    let job = Job::pull_request(&prism.url, 8, true);
    let r = job.report(&plan, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("::warning::no comment on #8: a fork's pull request gets a read-only token"),
        "{}",
        r.stderr
    );
    let summary = job.summary();
    assert!(summary.contains("this summary is the report"), "{summary}");
    assert!(
        summary.contains(plan["fingerprint"].as_str().unwrap()),
        "{summary}"
    );
    assert!(fake.state.lock().unwrap().comments.is_empty());
    prism.assert_conformant();
}

#[test]
fn a_502_is_retried_then_succeeds() {
    let fake = FakeGitHub::start();
    let prism = Prism::proxy(&fake.url);
    fake.state.lock().unwrap().fail(502, &[]);
    let plan = plan_record();
    let job = Job::pull_request(&prism.url, 5, false);
    let r = job.report(&plan, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("HTTP 502, attempt 1 of 5; retrying"),
        "{}",
        r.stderr
    );
    let seen = fake.seen();
    assert_eq!(
        seen[0].path, seen[1].path,
        "the failed request is sent again"
    );
    assert_eq!(fake.state.lock().unwrap().comments.len(), 1);
}

#[test]
fn failures_are_reported_with_exit_codes() {
    let fake = FakeGitHub::start();
    let prism = Prism::proxy(&fake.url);
    let plan = plan_record();
    let record = build_record(&plan);

    // Every attempt fails: exit 3, and the outputs and summary are still written.
    for _ in 0..5 {
        fake.state.lock().unwrap().fail(502, &[]);
    }
    let job = Job::push(&prism.url);
    let r = job.report(&record, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("GitHub answered HTTP 502"),
        "{}",
        r.stderr
    );
    assert!(job.outputs().contains("built=true\n"));
    assert!(
        job.summary().contains("❌ listing releases"),
        "{}",
        job.summary()
    );

    // A release without a token: bad configuration, exit 2.
    let job = Job::push(&prism.url).without("GITHUB_TOKEN");
    let r = job.report(&record, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("GITHUB_TOKEN is not set"), "{}", r.stderr);

    // A record that is not one.
    let job = Job::push(&prism.url);
    let r = job.report(&json!({"action": "build"}), &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains(&format!(
            "{}: not a record",
            record_path(job.dir.path()).display()
        )),
        "{}",
        r.stderr
    );
    let r = job.report(&plan, &["--validation", "maybe"]);
    assert_eq!(r.code, 2, "{}", r.all());
    let mut cmd = job.command();
    cmd.args(["report", "--record", "/nonexistent/record.json"]);
    let r = run(cmd);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("cannot read the record /nonexistent/record.json"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_skipped_build_makes_no_release_and_names_the_serving_image() {
    let fake = FakeGitHub::start();
    let mut plan = plan_record();
    plan["action"] = json!("skip");
    plan["image_id"] = json!("0b5e7c1e-0000-4000-8000-000000000001");
    let job = Job::push(&fake.url);
    let r = job.report(&plan, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let seen = fake.seen();
    assert!(
        seen.iter().all(|s| s.method == "GET"),
        "a skip writes nothing to GitHub: {seen:?}"
    );
    assert_eq!(seen.len(), 1, "one lookup of the latest image: {seen:?}");
    let outputs = job.outputs();
    assert!(outputs.contains("action=skip\nbuilt=false\n"), "{outputs}");
    assert!(
        outputs.contains("image_id=0b5e7c1e-0000-4000-8000-000000000001\n"),
        "{outputs}"
    );
    let summary = job.summary();
    assert!(
        summary.contains("skipped: `0b5e7c1e-0000-4000-8000-000000000001` serves this fingerprint"),
        "{summary}"
    );
    assert!(summary.contains("no release made"), "{summary}");
}

#[test]
fn secrets_are_masked_at_start_and_definition_errors_annotated() {
    let fixture = common::Fixture::new("name = \"x\"\nbogus_key = 1\n");
    let job = Job::push("http://127.0.0.1:9");
    let mut cmd = job.command();
    cmd.env("UWORKER_JOB_API_PASSWORD", common::NASTY_PASSWORD)
        .env("GITHUB_WORKSPACE", fixture.path())
        .arg("--dir")
        .arg(fixture.path())
        .arg("plan");
    let r = run(cmd);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("::error file=image.toml,line=2::"),
        "{}",
        r.stderr
    );

    let mut cmd = job.command();
    cmd.env("UWORKER_JOB_API_PASSWORD", common::NASTY_PASSWORD)
        .arg("--dir")
        .arg(default_definition())
        .args(["plan", "--no-report"]);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    // Each line of the multi-line password, and the token, before anything else.
    assert!(r.stderr.starts_with("::add-mask::"), "{}", r.stderr);
    for line in common::NASTY_PASSWORD.lines() {
        assert!(
            r.stderr.contains(&format!("::add-mask::{line}\n")),
            "{line} not masked: {}",
            r.stderr
        );
    }
    job.assert_no_token(&r);
}

#[test]
fn rate_limits_wait_as_github_says_and_give_up_when_too_long() {
    // Straight to the fake: the description lists no 403/429 for these operations.
    let fake = FakeGitHub::start();
    let plan = plan_record();
    let job = Job::pull_request(&fake.url, 4, false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    {
        let mut state = fake.state.lock().unwrap();
        state.fail(403, &[("Retry-After", "1")]);
        state.fail(
            429,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &now.to_string()),
            ],
        );
    }
    let started = std::time::Instant::now();
    let r = job.report(&plan, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert!(
        r.stderr
            .contains("HTTP 403, attempt 1 of 5; retrying in 1 s"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("HTTP 429, attempt 2 of 5"),
        "{}",
        r.stderr
    );
    assert_eq!(fake.state.lock().unwrap().comments.len(), 1);

    // A primary limit that resets in an hour: no hour-long wait, exit 3 at once.
    let reset = (now + 3600).to_string();
    fake.state.lock().unwrap().fail(
        403,
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ],
    );
    let started = std::time::Instant::now();
    let r = job.report(&plan, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("rate limited by GitHub for 3"),
        "{}",
        r.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// A CycloneDX SBOM as the tool's script writes it, of (kind, name, version, pin).
fn sbom_text(components: &[(&str, &str, &str, Option<&str>)]) -> String {
    let components: Vec<Value> = components
        .iter()
        .map(|(kind, name, version, pin)| {
            let mut properties = vec![json!({"name": "uworker-image:kind", "value": kind})];
            if let Some(pin) = pin {
                properties.push(json!({"name": "uworker-image:worker:pin", "value": pin}));
            }
            let purl = match *kind {
                "deb" => Some(format!("pkg:deb/debian/{name}@{version}?arch=amd64")),
                "pypi" | "worker" => Some(format!("pkg:pypi/{name}@{version}")),
                _ => None,
            };
            json!({"type": "library", "name": name, "version": version, "purl": purl,
                   "properties": properties})
        })
        .collect();
    serde_json::to_string_pretty(&json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": components,
    }))
    .unwrap()
}

/// Issue 28: the built image's SBOM goes to its release as `sbom-<image>.cdx.json`
/// (uploaded through the uploads operation Prism checks), and the release body and the
/// summary list the packages that changed against the previous image's SBOM, found
/// through the latest release's record and asset. An SBOM that is not the record's
/// (another SHA-256) is never attached.
#[test]
fn a_release_carries_the_sbom_and_the_package_diff_against_the_previous_image() {
    let fake = FakeGitHub::start();
    let prism = Prism::proxy_logging(&fake.url);
    let plan = plan_record();
    let mut record = build_record(&plan);
    let target = plan["target"].as_str().unwrap();
    let old_commit = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    let new_commit = "9e0d2b4c5a6f708192a3b4c5d6e7f80912345678";
    let old_sbom = sbom_text(&[
        ("worker", "uworker", "0.3.0", Some(old_commit)),
        ("kernel", "installed kernel", "6.1.0-18-amd64", None),
        ("deb", "openssl", "3.0.11-1~deb12u2", None),
        ("deb", "gone", "1.0", None),
    ]);
    let new_sbom = sbom_text(&[
        ("worker", "uworker", "0.3.0", Some(new_commit)),
        ("kernel", "installed kernel", "6.1.0-21-amd64", None),
        ("deb", "openssl", "3.0.13-1~deb12u1", None),
        ("pypi", "requests", "2.32.3", None),
    ]);
    let (sha256, packages) = uworker_image::sbom::describe(&new_sbom).unwrap();
    record["sbom"] = json!({"file": "sbom.cdx.json", "sha256": sha256, "packages": packages});
    let old_image = "0b5e7c1e-aaaa-4bbb-8ccc-000000000007";
    let mut older = record.clone();
    older["image_id"] = json!(old_image);
    fake.state.lock().unwrap().add_release(
        "image-000000000000",
        &format!("<!-- uworker-image:{target} -->\nolder"),
        &[
            ("image.json", &older.to_string()),
            (&format!("sbom-{old_image}.cdx.json"), &old_sbom),
        ],
    );

    let job = Job::push(&prism.url);
    std::fs::write(job.dir.path().join("sbom.cdx.json"), &new_sbom).unwrap();
    let r = job.report(&record, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), prism.log());
    let asset = "sbom-0b5e7c1e-aaaa-4bbb-8ccc-000000000042.cdx.json";
    let tag = format!("image-{}", &record["fingerprint"].as_str().unwrap()[7..19]);
    let state = fake.state.lock().unwrap();
    let release = state.releases.iter().find(|r| r.tag == tag).unwrap();
    let names: Vec<&str> = release.assets.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["image.json", asset]);
    assert_eq!(release.assets[1].content, new_sbom.as_bytes());
    let summary = job.summary();
    for text in [release.body.as_str(), summary.as_str()] {
        for expected in [
            format!("**Packages** against image `{old_image}` (3 changed, 1 added, 1 removed)"),
            "- `uworker` `0.3.0 (a1b2c3d4e5f6)` → `0.3.0 (9e0d2b4c5a6f)`".to_string(),
            "- `installed kernel` `6.1.0-18-amd64` → `6.1.0-21-amd64`".to_string(),
            "- `openssl:amd64` `3.0.11-1~deb12u2` → `3.0.13-1~deb12u1`".to_string(),
            "- added `requests` `2.32.3`".to_string(),
            "- removed `gone:amd64` `1.0`".to_string(),
        ] {
            assert!(text.contains(&expected), "no {expected} in:\n{text}");
        }
    }
    assert!(
        release.body.contains(&format!("attached as `{asset}`")),
        "{}",
        release.body
    );
    drop(state);
    prism.assert_conformant_but_storage();

    // The same record with an SBOM that is not the one it names: not attached, a warning.
    std::fs::write(job.dir.path().join("sbom.cdx.json"), &old_sbom).unwrap();
    fake.state.lock().unwrap().releases.retain(|r| r.tag != tag);
    let r = job.report(&record, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("::warning::the SBOM is not attached")
            || r.stderr.contains("the SBOM is not attached"),
        "{}",
        r.all()
    );
    let state = fake.state.lock().unwrap();
    let release = state.releases.iter().find(|r| r.tag == tag).unwrap();
    assert_eq!(release.assets.len(), 1, "only image.json");
}

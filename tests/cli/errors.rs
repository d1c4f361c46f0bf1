//! Bad input: a clear message naming the file, line or variable, exit 2, never a panic.

use crate::common;

use common::*;

const MINIMAL: &str = r#"name = "img"
[target.t]
source_image = "abc"
flavor = "f"
"#;

fn expect_bad_input(fixture: &Fixture, args: &[&str], vars: &[(&str, &str)], needles: &[&str]) {
    let r = run_tool(fixture.path(), args, vars);
    assert_eq!(r.code, 2, "expected exit 2 for {args:?}:\n{}", r.all());
    assert!(r.stdout.is_empty(), "nothing on stdout: {}", r.stdout);
    assert!(
        r.stderr.lines().any(|l| l.starts_with("error: ")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for needle in needles {
        let needle = needle.replace("DIR", fixture.path().to_str().unwrap());
        assert!(
            r.stderr.contains(&needle),
            "missing {needle:?} in:\n{}",
            r.stderr
        );
    }
}

#[test]
fn unknown_key_names_key_file_and_line() {
    let f = Fixture::new(&format!("{MINIMAL}flavour = \"typo\"\n"));
    expect_bad_input(
        &f,
        &["render"],
        &[],
        &["DIR/image.toml:5:", "unknown field `flavour`"],
    );
    let f = Fixture::new(&format!(
        "{MINIMAL}[[provision]]\nscript = \"a.sh\"\nsudoo = true\n"
    ));
    expect_bad_input(
        &f,
        &["render"],
        &[],
        &["DIR/image.toml:7:", "unknown field `sudoo`"],
    );
}

#[test]
fn invalid_toml() {
    let f = Fixture::new("name = \"img\"\n[target.t\n");
    expect_bad_input(&f, &["render"], &[], &["DIR/image.toml:2:"]);
}

#[test]
fn missing_definition_says_how_to_point_at_one() {
    let f = Fixture::new(MINIMAL);
    let r = run_tool(&f.path().join("nope"), &["render"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("nope/image.toml") && r.stderr.contains("--dir"),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_referenced_file() {
    let f = Fixture::new(&format!(
        "{MINIMAL}[[provision]]\nscript = \"scripts/missing.sh\"\n"
    ));
    expect_bad_input(
        &f,
        &["render"],
        &[],
        &["DIR/image.toml:5:", "`scripts/missing.sh` cannot be read"],
    );
}

#[test]
fn step_shapes() {
    for (step, needle) in [
        ("inline = [\"a\"]\nscript = \"a.sh\"", "exactly one of"),
        ("file = \"x\"", "needs `destination`"),
        ("script = \"../outside.sh\"", "stay inside"),
        (
            "inline = [\"a\"]\nonly = \"sometimes\"",
            "expected \"build\" or \"test\"",
        ),
        (
            "inline = [\"echo {{user `nope`}}\"]",
            "`{{user `nope`}}` names no variable",
        ),
        ("worker_config = \"relative\"", "absolute path"),
        // Secrets never go to a predictable path another local user may have made first.
        (
            "worker_config = \"/tmp/uworker.conf\"",
            "is in /tmp, which every local user can write",
        ),
        (
            "worker_config = \"/var/tmp/x\"",
            "write {{user `upload_dir`}}/uworker.conf",
        ),
        // However the path is written: doubled or `.` slashes, a directory on the way.
        (
            "worker_config = \"//tmp/./x\"",
            "is in /tmp, which every local user can write",
        ),
        (
            "worker_config = \"/dev/shm/sub/x\"",
            "is in /dev/shm, which every local user can write",
        ),
        (
            "worker_config = \"{{user `upload_dir`}}/../uworker.conf\"",
            "holds `..`",
        ),
        ("worker_config = \"/etc/../tmp/x\"", "holds `..`"),
    ] {
        let f = Fixture::new(&format!("{MINIMAL}[[provision]]\n{step}\n"));
        expect_bad_input(
            &f,
            &["render"],
            &[],
            &["DIR/image.toml:5:", "step 1", needle],
        );
    }
}

#[test]
fn invalid_floating_ip_in_definition_var_file_and_flag() {
    let f = Fixture::new(&format!("{MINIMAL}floating_ip = \"1.2.3\"\n"));
    expect_bad_input(
        &f,
        &["render"],
        &[],
        &["DIR/image.toml:2:", "`1.2.3` is not an IP address"],
    );
    let f = Fixture::new(MINIMAL);
    f.file(
        "vars.json",
        r#"{"openstack_free_floating_ip": "999.1.1.1"}"#,
    );
    let var_file = f.path().join("vars.json");
    expect_bad_input(
        &f,
        &["--var-file", var_file.to_str().unwrap(), "render"],
        &[],
        &["DIR/vars.json: openstack_free_floating_ip: `999.1.1.1` is not an IP address"],
    );
    expect_bad_input(
        &f,
        &["--var", "openstack_free_floating_ip=host.example", "render"],
        &[],
        &["--var: openstack_free_floating_ip"],
    );
}

#[test]
fn var_file_that_is_not_json_or_has_wrong_types() {
    let f = Fixture::new(MINIMAL);
    f.file("bad.json", "{\n  \"test_host\": \"h\",\n  oops\n}");
    f.file("types.json", r#"{"test_host": 22}"#);
    f.file("unknown.json", r#"{"flavor": "x"}"#);
    let path = |n: &str| f.path().join(n).to_str().unwrap().to_string();
    expect_bad_input(
        &f,
        &["--var-file", &path("bad.json"), "render"],
        &[],
        &["DIR/bad.json:3:"],
    );
    expect_bad_input(
        &f,
        &["--var-file", &path("types.json"), "render"],
        &[],
        &["`test_host` must be a string (found a number)"],
    );
    expect_bad_input(
        &f,
        &["--var-file", &path("unknown.json"), "render"],
        &[],
        &["unknown variable `flavor`", "openstack_free_floating_ip"],
    );
    expect_bad_input(
        &f,
        &["--var-file", &path("absent.json"), "render"],
        &[],
        &["DIR/absent.json"],
    );
    expect_bad_input(
        &f,
        &["--var", "novalue", "render"],
        &[],
        &["--var `novalue`: expected KEY=VALUE"],
    );
}

#[test]
fn worker_config_line_that_is_not_an_export() {
    let f = Fixture::new(MINIMAL);
    f.file(
        "w.conf",
        "export UWORKER_JOB_API_ROOT=http://h/api\nUWORKER_JOB_API_USERNAME=bob\n",
    );
    expect_bad_input(
        &f,
        &[
            "--worker-config",
            f.path().join("w.conf").to_str().unwrap(),
            "render",
        ],
        &[],
        &["DIR/w.conf:2: expected `export KEY=value`"],
    );
}

#[test]
fn missing_required_secret_names_the_variable() {
    let f = Fixture::new(MINIMAL);
    let vars = [
        ("UWORKER_JOB_API_ROOT", API_ROOT),
        ("UWORKER_JOB_API_USERNAME", "u"),
    ];
    expect_bad_input(
        &f,
        &["validate"],
        &vars,
        &["UWORKER_JOB_API_PASSWORD", "not set"],
    );
}

#[test]
fn malformed_job_api_root() {
    let f = Fixture::new(MINIMAL);
    let mut vars = worker_env();
    vars[0] = ("UWORKER_JOB_API_ROOT", "example.com/api");
    expect_bad_input(
        &f,
        &["validate"],
        &vars,
        &["UWORKER_JOB_API_ROOT", "http://"],
    );
}

#[test]
fn ambiguous_target_and_unknown_target() {
    let f = full_fixture();
    expect_bad_input(
        &f,
        &["fingerprint"],
        &[],
        &["2 targets (north, south)", "--target"],
    );
    expect_bad_input(
        &f,
        &["--target", "east", "plan"],
        &[],
        &["no target named `east`"],
    );
}

#[test]
fn weak_fingerprint_key() {
    let f = Fixture::new(MINIMAL);
    expect_bad_input(
        &f,
        &["fingerprint"],
        &[("UWORKER_FINGERPRINT_KEY", "short")],
        &["UWORKER_FINGERPRINT_KEY is too short"],
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let f = Fixture::new(MINIMAL);
    let r = run_tool(f.path(), &["render", "--nope"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
}

/// A shared, community or public image carries the worker password to other projects:
/// refused unless the definition says so, and the plan warns even then.
#[test]
fn an_image_other_projects_can_download_needs_consent_and_is_warned_about() {
    for visibility in ["public", "community", "shared"] {
        let f = Fixture::new(&format!("{MINIMAL}image_visibility = \"{visibility}\"\n"));
        for command in ["render", "validate", "plan"] {
            expect_bad_input(
                &f,
                &[command],
                &worker_env(),
                &[
                    "DIR/image.toml:2: [target.t]",
                    &format!("image_visibility `{visibility}` lets other projects download"),
                    "allow_shared_image_with_secrets = true",
                ],
            );
        }
        let f = Fixture::new(&format!(
            "{MINIMAL}image_visibility = \"{visibility}\"\nallow_shared_image_with_secrets = true\n"
        ));
        let r = run_tool(f.path(), &["plan"], &worker_env());
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(
            r.stdout.contains(&format!(
                "warning:     image_visibility `{visibility}`: other projects can download this image and the worker password in it"
            )),
            "{}",
            r.stdout
        );
        let r = run_tool(f.path(), &["--output", "json", "plan"], &worker_env());
        assert_eq!(r.code, 0, "{}", r.all());
        let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert!(
            plan["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with(&format!("image_visibility `{visibility}`")),
            "{plan:#}"
        );
    }
    // Private needs nothing and warns of nothing.
    let f = Fixture::new(&format!("{MINIMAL}image_visibility = \"private\"\n"));
    let r = run_tool(f.path(), &["--output", "json", "plan"], &worker_env());
    assert_eq!(r.code, 0, "{}", r.all());
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["warnings"], serde_json::json!([]), "{plan:#}");
}

#[test]
fn a_record_with_an_unknown_action_or_base_image_kind_names_the_file() {
    let f = Fixture::new(MINIMAL);
    let plan = include_str!("../fixtures/records/plan-0.1.json");
    for (name, from, to, needle) in [
        (
            "deploy.json",
            r#""action":"build""#,
            r#""action":"deploy""#,
            "action `deploy` is neither build nor skip",
        ),
        (
            "by.json",
            r#""by":"name""#,
            r#""by":"uuid""#,
            "unknown variant `uuid`, expected `id` or `name`",
        ),
    ] {
        let record = plan.replace(from, to);
        assert_ne!(record, plan, "{from} is in the fixture");
        f.file(name, &record);
        expect_bad_input(
            &f,
            &["report", "--record", f.path().join(name).to_str().unwrap()],
            &[],
            &[
                &format!("DIR/{name}: not a record of `plan --output json` or `build --out`"),
                needle,
            ],
        );
    }
}

/// `build`, `prune` and `sweep` say the same thing without cloud credentials: what they
/// need, and every way to give it (OS_CLOUD among them, which two of them once left out).
#[test]
fn every_command_that_needs_the_cloud_names_every_way_to_give_credentials() {
    let f = Fixture::new(MINIMAL);
    for (command, needs) in [
        ("build", "build needs Compute, Networking and Glance"),
        ("prune", "prune needs Glance"),
        ("sweep", "sweep needs Compute, Networking and Glance"),
    ] {
        expect_bad_input(
            &f,
            &[command],
            &worker_env(),
            &[
                "no OpenStack credentials in the environment",
                needs,
                "OS_CLOUD",
                "OS_AUTH_URL",
                "OS_APPLICATION_CREDENTIAL_ID",
                "--openrc FILE",
            ],
        );
    }
}

/// A bad `validate` outcome stops `plan` and `build` before anything runs, as it does
/// `report`: one parser for the flag and `UWORKER_IMAGE_VALIDATION`.
#[test]
fn a_bad_validation_outcome_is_refused_before_anything_runs() {
    let f = Fixture::new(MINIMAL);
    for command in ["plan", "build", "report"] {
        expect_bad_input(
            &f,
            &[command, "--record", "r.json"][..if command == "report" { 3 } else { 1 }],
            &[("UWORKER_IMAGE_VALIDATION", "ok")],
            &[
                "invalid value 'ok' for '--validation <OUTCOME>'",
                "success, failure, cancelled, skipped",
            ],
        );
    }
}

/// A record a newer release wrote: `report` refuses it naming the file (it would pass on
/// fields it cannot tell), `plan --previous` compares with its manifest all the same.
#[test]
fn a_newer_record_is_refused_by_report_and_serves_plan_previous() {
    let f = Fixture::new(MINIMAL);
    let mut record: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/records/build-0.1.json")).unwrap();
    record["schema"] = 99.into();
    f.file("newer.json", &record.to_string());
    let newer = f.path().join("newer.json");
    expect_bad_input(
        &f,
        &["report", "--record", newer.to_str().unwrap()],
        &[],
        &["DIR/newer.json: written by a newer uworker-image (record schema 99"],
    );
    let r = run_tool(
        f.path(),
        &[
            "--output",
            "json",
            "plan",
            "--previous",
            newer.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        plan["changes"]["changed"]
            .as_array()
            .unwrap()
            .contains(&"template".into()),
        "{}",
        r.stdout
    );
}

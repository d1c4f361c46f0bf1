//! Secrets with quotes, `$`, spaces and newlines: they reach the worker config byte for
//! byte and appear nowhere else (`validate`, which runs packer and shellcheck:
//! tests/services/secrets_validate.rs).

use crate::common;

use std::process::Command;

use common::*;

#[test]
fn generated_worker_config_sources_to_the_exact_values() {
    let fixture = full_fixture();
    let out = tempfile::tempdir().unwrap();
    let extra = "tab\there 'single' \"double\" \\ $(id) ${HOME}";
    let mut vars = worker_env();
    vars.push(("UWORKER_REGISTRY_URL", extra));
    render_out(fixture.path(), out.path(), &vars, &[]);
    let conf = out.path().join("uworker.conf");
    for shell in ["bash", "sh"] {
        for (key, expected) in &vars {
            // printf %s prints the value as the shell holds it after `.`.
            let got = Command::new(shell)
                .arg("-c")
                .arg(format!(". \"$1\" && printf %s \"${key}\""))
                .arg(shell)
                .arg(&conf)
                .env_clear()
                .output()
                .unwrap();
            assert!(got.status.success(), "{shell}: {got:?}");
            assert_eq!(
                String::from_utf8(got.stdout).unwrap(),
                *expected,
                "{shell} {key}"
            );
        }
    }
}

#[test]
fn no_output_and_no_public_file_contains_a_secret() {
    let fixture = full_fixture();
    let vars = worker_env();
    let out = tempfile::tempdir().unwrap();
    let runs = [
        run_tool(fixture.path(), &["render"], &vars),
        run_tool(
            fixture.path(),
            &["render", "--out", out.path().to_str().unwrap()],
            &vars,
        ),
        run_tool(
            fixture.path(),
            &["--target", "north", "fingerprint", "--explain"],
            &vars,
        ),
        run_tool(
            fixture.path(),
            &["--target", "north", "--output", "json", "fingerprint"],
            &vars,
        ),
        run_tool(fixture.path(), &["--target", "north", "plan"], &vars),
        run_tool(
            fixture.path(),
            &["--target", "north", "--output", "json", "plan"],
            &vars,
        ),
    ];
    let template = std::fs::read_to_string(out.path().join("template.json")).unwrap();
    assert_no_worker_secret(&runs);
    for secret in [NASTY_PASSWORD, NASTY_USERNAME, API_ROOT] {
        assert!(!template.contains(secret));
    }
    for r in &runs {
        assert_eq!(r.code, 0, "{}", r.all());
    }
}

/// Every parser that reads a file of secrets (an RC file, a worker config, a var-file,
/// clouds.yaml) and `--var` refuse bad input without printing what it holds: a password
/// written in the wrong place, with quotes, `$`, spaces or a line break in it, is never
/// in the message. Each still names the file and line, or the key, and exits 2.
#[test]
fn no_parser_error_quotes_a_secret() {
    let f = Fixture::new("name = \"img\"\n[target.t]\nsource_image = \"abc\"\nflavor = \"f\"\n");
    // Every secret holds "TopSecret"; the multi-line ones hold "Hunter2" on each line.
    let cases: Vec<(&str, &str, &[&str])> = vec![
        // The issue's own: a password set without `export`.
        ("openrc", "export OS_AUTH_URL=https://k.example/v3\nOS_PASSWORD=Hunter2-TopSecret\n", &["rc:2:", "OS_PASSWORD", "export"]),
        ("openrc", "OS_PASSWORD='Hunter2 \"TopSecret\" $x'\n", &["rc:1:", "OS_PASSWORD"]),
        ("openrc", "OS_PASSWORD=\"Hunter2 TopSecret\nHunter2 line\"\n", &["rc:1:"]),
        // A password pasted on a line of its own, with and without shell syntax in it.
        ("openrc", "export OS_USERNAME=u\nHunter2-TopSecret\n", &["rc:2:", "a command"]),
        ("openrc", "Hunter2TopSecret\n", &["rc:1:"]),
        ("openrc", "Hunter2 'TopSecret' $x\n", &["rc:1:"]),
        ("openrc", "export OS_PASSWORD Hunter2-TopSecret\n", &["rc:1:", "export"]),
        ("openrc", "export Hunter2 TopSecret=x\n", &["rc:1:", "not a variable name"]),
        ("openrc", "unset Hunter2-TopSecret\n", &["rc:1:", "unset"]),
        ("openrc", "export OS_PASSWORD='Hunter2 TopSecret\n", &["rc:1:", "never closed"]),
        ("openrc", "export OS_PASSWORD=\"Hunter2 $TopSecret\"\n", &["rc:1:", "OS_PASSWORD"]),
        ("openrc", "echo \"Hunter2 `TopSecret`\"\n", &["rc:1:"]),
        ("worker", "UWORKER_JOB_API_PASSWORD='Hunter2 TopSecret'\n", &["conf:1:", "export KEY=value"]),
        ("worker", "export Hunter2-TopSecret=x\n", &["conf:1:", "not a worker key"]),
        ("worker", "export UWORKER_X Hunter2-TopSecret\n", &["conf:1:"]),
        ("worker", "Hunter2 'TopSecret' $x\n", &["conf:1:"]),
        ("worker", "export UWORKER_X=\"Hunter2\nTopSecret $x\"\n", &["conf:1:", "UWORKER_X"]),
        ("worker", "export UWORKER_X='Hunter2 TopSecret\n", &["conf:1:", "never closed"]),
        ("worker", "export UWORKER_X='Hunter2 TopSecret' x\n", &["conf:1:", "UWORKER_X"]),
        ("worker", "export UWORKER_X='Hunter2TopSecret'\nexport UWORKER_X='Hunter2TopSecret'\n", &["conf:2:", "set twice"]),
        ("var-file", "{\"test_host\": \"ubuntu:Hunter2 'TopSecret' $x@host\"}", &["test_host", "`@`"]),
        ("var-file", "{\"worker_source\": \"Hunter2 \\\"TopSecret\\\" $x", &["vars.json:1:"]),
        ("var-file", "{\"worker_source\": \"Hunter2\nTopSecret\"}", &["vars.json:"]),
        ("var-file", "{\"nope\": \"Hunter2 TopSecret\"}", &["unknown variable `nope`"]),
        ("var-file", "{\"test_host\": [\"Hunter2 TopSecret\"]}", &["`test_host` must be a string"]),
        ("clouds", "clouds:\n  c:\n    auth:\n      password: !!int \"Hunter2 'TopSecret' $x\"\n", &["clouds.yaml", "not valid YAML"]),
        ("clouds", "clouds:\n  c:\n    auth:\n      password: {Hunter2TopSecret: x, Hunter2TopSecret: y}\n", &["clouds.yaml", "duplicate"]),
        ("clouds", "clouds:\n  c:\n    auth:\n      ? \"Hunter2 TopSecret\"\n      ? \"Hunter2 TopSecret\"\n", &["clouds.yaml", "duplicate"]),
        ("clouds", "clouds:\n  c:\n    auth:\n      password: \"Hunter2 'TopSecret' $x\n", &["clouds.yaml", "not valid YAML"]),
        ("clouds", "clouds:\n  c:\n    auth:\n      password: \"Hunter2\\qTopSecret\"\n", &["clouds.yaml", "not valid YAML"]),
        ("--var", "Hunter2-TopSecret", &["--var", "KEY=VALUE"]),
        ("--var", "=Hunter2 'TopSecret' $x", &["--var", "KEY=VALUE"]),
    ];
    let mut failures = Vec::new();
    for (parser, text, needles) in cases {
        let (file, flag, vars): (&str, Option<&str>, Vec<(&str, String)>) = match parser {
            "openrc" => ("project.rc", Some("--openrc"), vec![]),
            "worker" => ("worker.conf", Some("--worker-config"), vec![]),
            "var-file" => ("vars.json", Some("--var-file"), vec![]),
            "clouds" => (
                "clouds.yaml",
                None,
                vec![
                    ("OS_CLOUD", "c".to_string()),
                    (
                        "OS_CLIENT_CONFIG_FILE",
                        f.path().join("clouds.yaml").display().to_string(),
                    ),
                ],
            ),
            _ => ("", None, vec![]),
        };
        let mut args: Vec<String> = Vec::new();
        if parser == "--var" {
            args.extend(["--var".to_string(), text.to_string()]);
        } else {
            f.file(file, text);
            if let Some(flag) = flag {
                args.extend([flag.to_string(), f.path().join(file).display().to_string()]);
            }
        }
        args.push("render".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = run_tool(f.path(), &args, &vars);
        let leaked = ["TopSecret", "Hunter2"].iter().any(|s| r.all().contains(s));
        let missing: Vec<&&str> = needles.iter().filter(|n| !r.stderr.contains(**n)).collect();
        if r.code != 2 || leaked || !missing.is_empty() {
            failures.push(format!(
                "{parser} {text:?}: exit {}, leaked: {leaked}, missing {missing:?}: {}",
                r.code,
                r.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A runner's own UWORKER_* variables (the test suite's UWORKER_TEST_CACHE, since renamed UWORKER_IMAGE_TEST_CACHE, did it) are
/// not the worker's: they change neither the default definition's fingerprint nor the
/// worker config in the image, and one warning names them, never their values. Keys the
/// definition lists pass on, from the environment or a --worker-config file, as do the
/// command-mode keys and `[worker] pass_through`.
#[test]
fn stray_worker_variables_change_neither_the_image_nor_its_fingerprint() {
    let def = default_definition();
    let stray_value = "s3cret 'v' $x\nline two";
    let strays = [
        ("UWORKER_TEST_CACHE", "/var/cache/uworker-test"),
        ("UWORKER_FOO", stray_value),
    ];
    let worker = worker_env();
    let with_strays: Vec<(&str, &str)> = worker.iter().chain(&strays).copied().collect();
    let clean = run_tool(&def, &["fingerprint"], &worker);
    let stray = run_tool(&def, &["fingerprint"], &with_strays);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert_eq!(stray.code, 0, "{}", stray.all());
    assert_eq!(
        clean.stdout, stray.stdout,
        "stray UWORKER_* variables changed the fingerprint"
    );
    let warnings: Vec<&str> = stray
        .stderr
        .lines()
        .filter(|l| l.contains("not passed on"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stray.stderr);
    assert!(
        warnings[0].contains("UWORKER_FOO (environment), UWORKER_TEST_CACHE (environment)"),
        "{}",
        stray.stderr
    );
    assert!(!stray.all().contains("s3cret") && !stray.all().contains("uworker-test"));
    assert!(!clean.stderr.contains("not passed on"), "{}", clean.stderr);

    // The image's worker config: listed and command-mode keys only.
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("w.conf");
    std::fs::write(
        &file,
        "export UWORKER_REGISTRY_URL=r.example\nexport UWORKER_FROM_FILE=x\n",
    )
    .unwrap();
    let mut vars = with_strays.clone();
    vars.extend([
        ("UWORKER_JOB_CMD", "run-it"),
        ("UWORKER_JOB_API_PROJECT", "p"),
    ]);
    let rendered = render_out(
        &def,
        &out.path().join("out"),
        &vars,
        &["--worker-config", file.to_str().unwrap()],
    );
    let conf = std::fs::read_to_string(out.path().join("out/uworker.conf")).unwrap();
    for key in [
        "UWORKER_JOB_API_PASSWORD",
        "UWORKER_REGISTRY_URL",
        "UWORKER_JOB_CMD",
        "UWORKER_JOB_API_PROJECT",
    ] {
        assert!(conf.contains(&format!("export {key}=")), "{key}:\n{conf}");
    }
    for key in ["UWORKER_FOO", "UWORKER_TEST_CACHE", "UWORKER_FROM_FILE"] {
        assert!(!conf.contains(key), "{key}:\n{conf}");
    }
    assert!(
        rendered
            .stderr
            .contains(&format!("UWORKER_FROM_FILE ({})", file.display())),
        "{}",
        rendered.stderr
    );

    // `pass_through` lists what the definition does not otherwise name.
    let f = full_fixture();
    let toml = f.path().join("image.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let listed = text.replace(
        "optional = [\"UWORKER_REGISTRY_URL\"]",
        "optional = [\"UWORKER_REGISTRY_URL\"]\npass_through = [\"UWORKER_FOO\"]",
    );
    std::fs::write(&toml, &listed).unwrap();
    let out = tempfile::tempdir().unwrap();
    let rendered = render_out(f.path(), out.path(), &with_strays, &[]);
    let conf = std::fs::read_to_string(out.path().join("uworker.conf")).unwrap();
    assert!(conf.contains("export UWORKER_FOO='s3cret"), "{conf}");
    assert!(!conf.contains("UWORKER_TEST_CACHE"), "{conf}");
    assert!(
        rendered.stderr.contains("UWORKER_TEST_CACHE (environment)")
            && !rendered.stderr.contains("UWORKER_FOO"),
        "{}",
        rendered.stderr
    );
    std::fs::write(&toml, listed.replace("pass_through", "passthrough")).unwrap();
    let r = run_tool(f.path(), &["render"], &worker);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("unknown field `passthrough`"),
        "{}",
        r.stderr
    );
}

//! `--openrc FILE`: the dashboard's RC file read without running it, against the real
//! Keystone + Glance of tests/harness/openstack.sh; the password prompt on a real
//! terminal (tmux); refusals of what a shell would run.

use crate::common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::openstack::*;
use common::tmux::{wait_for_file, Tmux};
use common::*;

const V3_FIXTURE: &str = include_str!("../fixtures/openrc/v3.sh");
const V2_FIXTURE: &str = include_str!("../fixtures/openrc/v2.sh");

fn definition(name: &str) -> Fixture {
    let f = Fixture::new(&format!(
        "name = \"{name}\"\n[target.t]\nsource_image = \"base-id\"\nflavor = \"f\"\n[[provision]]\nscript = \"s.sh\"\n"
    ));
    f.script("s.sh", "#!/bin/sh\necho hi\n");
    f
}

fn rc_value(key: &str) -> String {
    openrc()
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("the harness sets {key}"))
        .1
        .clone()
}

/// The project's ID and its domain's, as the dashboard puts them in the file.
fn project_ids() -> (String, String) {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": rc_value("OS_USERNAME"),
            "domain": {"name": rc_value("OS_USER_DOMAIN_NAME")},
            "password": rc_value("OS_PASSWORD")}}},
        "scope": {"project": {"name": rc_value("OS_PROJECT_NAME"),
            "domain": {"name": rc_value("OS_PROJECT_DOMAIN_NAME")}}}}});
    let token: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{}/auth/tokens", rc_value("OS_AUTH_URL")))
        .json(&body)
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap();
    let project = &token["token"]["project"];
    (
        project["id"].as_str().unwrap().to_string(),
        project["domain"]["id"].as_str().unwrap().to_string(),
    )
}

/// The dashboard's v3 file (an exact rendering of Horizon's template) for the test cloud.
fn dashboard_v3_file(dir: &Path) -> PathBuf {
    let (project_id, domain_id) = project_ids();
    let text = V3_FIXTURE
        .replace(
            "https://keystone.example.org:5000/v3",
            &rc_value("OS_AUTH_URL"),
        )
        .replace("5d3f9b2c8a1e4f6b9c0d7e2a1b3c4d5e", &project_id)
        .replace("demo-project", &rc_value("OS_PROJECT_NAME"))
        .replace("demo-user", &rc_value("OS_USERNAME"))
        .replace(
            "OS_PROJECT_DOMAIN_ID=\"default\"",
            &format!("OS_PROJECT_DOMAIN_ID=\"{domain_id}\""),
        );
    assert!(text.contains(&project_id) && text.contains("read -sr OS_PASSWORD_INPUT"));
    let path = dir.join("ci-project-openrc.sh");
    std::fs::write(&path, text).unwrap();
    path
}

/// The dashboard's older v2 file (Horizon's openrc_v2.sh.template) for the test cloud:
/// `.../v2.0`, the tenant, no domains.
fn dashboard_v2_file(dir: &Path) -> PathBuf {
    let (project_id, _) = project_ids();
    let auth_url = rc_value("OS_AUTH_URL");
    let root = auth_url.strip_suffix("/v3").unwrap();
    let text = V2_FIXTURE
        .replace("https://keystone.example.org:5000", root)
        .replace("5d3f9b2c8a1e4f6b9c0d7e2a1b3c4d5e", &project_id)
        .replace("demo-project", &rc_value("OS_PROJECT_NAME"))
        .replace("demo-user", &rc_value("OS_USERNAME"));
    assert!(text.contains(&format!("{root}/v2.0")) && text.contains("OS_TENANT_ID"));
    let path = dir.join("ci-project-openrc-v2.sh");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_dashboards_files_with_os_password_set_look_up_and_skip() {
    let name = unique("rc");
    let f = definition(&name);
    let (fingerprint, image) =
        image_with_fingerprint_of(f.path(), &os_env("appcred"), &format!("{name}-t-1"));
    let dir = tempfile::tempdir().unwrap();
    let password = rc_value("OS_PASSWORD");
    for rc in [dashboard_v3_file(dir.path()), dashboard_v2_file(dir.path())] {
        let r = run_tool(
            f.path(),
            &["--openrc", rc.to_str().unwrap(), "--output", "json", "plan"],
            &[("OS_PASSWORD", &password)],
        );
        assert_eq!(r.code, 0, "{}: {}", rc.display(), r.all());
        let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(plan["action"], "skip", "{}", r.all());
        assert_eq!(plan["fingerprint"], fingerprint.as_str());
        assert_eq!(plan["image_id"], image.id.as_str());
        assert!(!r.all().contains(&password));
    }
    let rc = dashboard_v3_file(dir.path());

    // The same through UWORKER_IMAGE_OPENRC, with a wrong password in the environment:
    // the environment wins over the file, and Keystone says no.
    let r = run_tool(
        f.path(),
        &["plan"],
        &[
            ("UWORKER_IMAGE_OPENRC", rc.to_str().unwrap()),
            ("OS_PASSWORD", "not it"),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("HTTP 401"), "{}", r.stderr);
}

#[test]
fn without_a_terminal_the_prompt_fails_at_once_naming_os_password() {
    let f = definition(&unique("rc"));
    let dir = tempfile::tempdir().unwrap();
    let rc = dashboard_v3_file(dir.path());
    let mut cmd = tool(&[]);
    cmd.arg("--dir")
        .arg(f.path())
        .arg("--openrc")
        .arg(&rc)
        .arg("plan")
        // An open stdin that never delivers: the tool must not read it.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe; the child leaves the test's terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let _stdin = child.stdin.take();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("the tool waited for a password that cannot come");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("OS_PASSWORD") && stderr.contains("no controlling terminal"),
        "{stderr}"
    );
    assert!(stderr.contains(rc.to_str().unwrap()), "{stderr}");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

/// The pane's command: the tool (with `args` and only `vars` besides PATH and HOME)
/// with stdout and stderr in files, then its exit code and the terminal's settings after
/// it, then a pause so the screen can be read.
fn pane_command(dir: &Path, def: &Path, rc: &Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    use uworker_image::shell::quote;
    let q = |p: &Path| quote(p.to_str().unwrap());
    let mut env = vec![
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        ),
        (
            "HOME".to_string(),
            std::env::var("HOME").unwrap_or_default(),
        ),
        ("TERM".to_string(), "xterm".to_string()),
        // The tool's work directories go here, where a test sees what is left of them.
        ("TMPDIR".to_string(), dir.display().to_string()),
    ];
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| quote(&format!("{k}={v}")))
        .collect();
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    let d = |name: &str| q(&dir.join(name));
    let script = format!(
        "env -i {env} {bin} --dir {def} --openrc {rc} {args} >{out} 2>{err}\necho $? >{tmp}\nstty -a >{stty}\nmv {tmp} {code}\nsleep 600\n",
        env = env.join(" "),
        bin = q(Path::new(env!("CARGO_BIN_EXE_uworker-image"))),
        def = q(def),
        rc = q(rc),
        args = args.join(" "),
        out = d("out"),
        err = d("err"),
        tmp = d("code.tmp"),
        stty = d("stty"),
        code = d("code"),
    );
    std::fs::write(dir.join("run.sh"), script).unwrap();
    format!("sh {}", d("run.sh"))
}

/// The pane runs `plan --output json`.
fn pane_plan(dir: &Path, def: &Path, rc: &Path) -> String {
    pane_command(dir, def, rc, &["--output", "json", "plan"], &[])
}

fn prompt() -> String {
    format!(
        "Please enter your OpenStack Password for project {} as user {}:",
        rc_value("OS_PROJECT_NAME"),
        rc_value("OS_USERNAME")
    )
}

#[test]
fn the_password_is_asked_on_the_terminal_without_echo() {
    let name = unique("tty");
    let f = definition(&name);
    let (_, image) =
        image_with_fingerprint_of(f.path(), &os_env("appcred"), &format!("{name}-t-1"));
    let files = tempfile::tempdir().unwrap();
    let rc = dashboard_v3_file(files.path());
    let tmux = Tmux::start(&pane_plan(files.path(), f.path(), &rc));
    let password = rc_value("OS_PASSWORD");
    tmux.wait_for_screen(&prompt(), Duration::from_secs(20));
    tmux.type_text(&password);
    tmux.press("Enter");
    let code = wait_for_file(&files.path().join("code"), Duration::from_secs(60));
    let out = std::fs::read_to_string(files.path().join("out")).unwrap();
    let err = std::fs::read_to_string(files.path().join("err")).unwrap();
    assert_eq!(code, "0", "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["action"], "skip", "{out}{err}");
    assert_eq!(plan["image_id"], image.id.as_str());
    let screen = tmux.screen();
    assert!(screen.contains(&prompt()), "{screen}");
    for (what, text) in [("pane", &screen), ("stdout", &out), ("stderr", &err)] {
        assert!(!text.contains(&password), "the {what} shows the password");
    }
    assert_echo_restored(files.path());
}

fn assert_echo_restored(dir: &Path) {
    let stty = std::fs::read_to_string(dir.join("stty")).unwrap();
    let flags: Vec<&str> = stty.split_whitespace().collect();
    for flag in ["echo", "icanon", "isig"] {
        assert!(flags.contains(&flag), "{flag} not restored: {stty}");
    }
}

#[test]
fn a_wrong_typed_password_is_refused_by_keystone_and_shown_nowhere() {
    let f = definition(&unique("tty"));
    let files = tempfile::tempdir().unwrap();
    let rc = dashboard_v3_file(files.path());
    let tmux = Tmux::start(&pane_plan(files.path(), f.path(), &rc));
    tmux.wait_for_screen(&prompt(), Duration::from_secs(20));
    // Quotes, `$`, spaces and a typo erased with backspace.
    let wrong = "it's \"no\" $HOME pw";
    tmux.type_text(&format!("{wrong}X"));
    tmux.press("BSpace");
    tmux.press("Enter");
    let code = wait_for_file(&files.path().join("code"), Duration::from_secs(60));
    let err = std::fs::read_to_string(files.path().join("err")).unwrap();
    let out = std::fs::read_to_string(files.path().join("out")).unwrap();
    assert_eq!(code, "2", "{out}{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("OS_PASSWORD"),
        "{err}"
    );
    let screen = tmux.screen();
    for (what, text) in [("pane", &screen), ("stdout", &out), ("stderr", &err)] {
        assert!(!text.contains(wrong), "the {what} shows the password");
        assert!(!text.contains("$HOME pw"), "the {what} shows the password");
    }
    assert_echo_restored(files.path());
}

#[test]
fn ctrl_c_at_the_prompt_exits_130_and_gives_the_terminal_back() {
    let f = definition(&unique("tty"));
    let files = tempfile::tempdir().unwrap();
    let rc = dashboard_v3_file(files.path());
    let tmux = Tmux::start(&pane_plan(files.path(), f.path(), &rc));
    tmux.wait_for_screen(&prompt(), Duration::from_secs(20));
    tmux.type_text("half typ");
    tmux.press("C-c");
    let code = wait_for_file(&files.path().join("code"), Duration::from_secs(20));
    let err = std::fs::read_to_string(files.path().join("err")).unwrap();
    assert_eq!(code, "130", "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!tmux.screen().contains("half typ"));
    assert_echo_restored(files.path());
}

#[test]
fn what_a_shell_would_run_is_refused_with_the_file_and_line() {
    let f = definition(&unique("rc"));
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(dashboard_v3_file(dir.path())).unwrap();
    let line_no = base.lines().count() + 1;
    for (line, what) in [
        (
            "export OS_PASSWORD=$(pass show openstack)",
            "command substitution",
        ),
        ("curl -fsSL https://example.com/setup.sh | sh", "a pipe"),
        ("alias os='openstack --os-cloud ci'", "an alias"),
        (
            "os_token() { openstack token issue -f value -c id; }",
            "a function definition",
        ),
    ] {
        let rc = dir.path().join("refused-openrc.sh");
        std::fs::write(&rc, format!("{base}{line}\n")).unwrap();
        let r = run_tool(
            f.path(),
            &["--openrc", rc.to_str().unwrap(), "plan"],
            &[("OS_PASSWORD", "x")],
        );
        assert_eq!(r.code, 2, "{line}: {}", r.all());
        let located = format!("{}:{line_no}: ", rc.display());
        assert!(
            r.stderr.contains(&located) && r.stderr.contains(what),
            "{line}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!("`source {}`", rc.display())),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn the_typed_password_reaches_packer_through_its_environment() {
    // `validate` runs a full `packer validate`, in which packer logs in to Keystone
    // itself: only with the typed password in its environment does it succeed.
    let f = definition(&unique("tty"));
    let files = tempfile::tempdir().unwrap();
    let rc = dashboard_v3_file(files.path());
    let worker = worker_env();
    let tmux = Tmux::start(&pane_command(
        files.path(),
        f.path(),
        &rc,
        &["validate", "--no-shellcheck"],
        &worker,
    ));
    let password = rc_value("OS_PASSWORD");
    tmux.wait_for_screen(&prompt(), Duration::from_secs(20));
    tmux.type_text(&password);
    tmux.press("Enter");
    let code = wait_for_file(&files.path().join("code"), Duration::from_secs(120));
    let out = std::fs::read_to_string(files.path().join("out")).unwrap();
    let err = std::fs::read_to_string(files.path().join("err")).unwrap();
    assert_eq!(code, "0", "{out}{err}");
    assert!(out.contains("packer validate, full"), "{out}{err}");
    for text in [&out, &err, &tmux.screen()] {
        assert!(!text.contains(&password));
    }
    // Nothing of it left in a file of the run (the work directories are gone).
    let leftovers: Vec<_> = std::fs::read_dir(files.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut expected = vec![
        "ci-project-openrc.sh",
        "code",
        "err",
        "out",
        "run.sh",
        "stty",
    ];
    let mut found: Vec<&str> = leftovers.iter().map(String::as_str).collect();
    expected.sort();
    found.sort();
    assert_eq!(found, expected);
}

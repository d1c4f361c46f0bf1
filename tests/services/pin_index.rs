//! Pinning a requirement and a URL against a PEP 691 index on loopback
//! (common::package_index): `plan` takes the newest release that suits the image's Python,
//! not yanked, not a pre-release, with its sha256; a URL its content's sha256. An
//! artifact whose content changed under the same version then fails the install:
//! provision/scripts/35-worker.sh, run for real as root (in a private mount namespace,
//! with stand-ins for the venv's python and pip, as tests/services/worker_install.rs
//! runs it), refuses it before pip sees it.

use std::path::Path;

use crate::common::package_index::{sha256, PackageIndex};
use crate::common::{run_tool, Fixture};

const WHEEL_10: &str = "uworker-1.0-py3-none-any.whl";

/// uworker 1.0 (a wheel), 1.1 (needs Python 3.13), 1.2 (yanked), 2.0rc1 (a pre-release),
/// and a tarball served at a plain URL.
fn index() -> PackageIndex {
    let index = PackageIndex::start();
    index.publish("uworker", WHEEL_10, b"wheel 1.0", None, false);
    index.publish("uworker", "uworker-1.0.tar.gz", b"sdist 1.0", None, false);
    index.publish(
        "uworker",
        "uworker-1.1-py3-none-any.whl",
        b"wheel 1.1",
        Some(">=3.13"),
        false,
    );
    index.publish("uworker", "uworker-1.2.tar.gz", b"sdist 1.2", None, true);
    index.publish(
        "uworker",
        "uworker-2.0rc1-py3-none-any.whl",
        b"wheel 2.0rc1",
        None,
        false,
    );
    index.publish("other", "w-0.1.tar.gz", b"a tarball", None, false);
    index
}

fn definition(worker_source: &str, pins: &str) -> Fixture {
    Fixture::new(&format!(
        "name = \"pins\"\n[target.t]\nsource_image = \"base-id\"\nflavor = \"f\"\n\
         [variables]\nworker_source = \"{worker_source}\"\n{pins}\
         [[provision]]\ninline = [\"echo {{{{user `worker_source`}}}}\"]\n"
    ))
}

/// `plan --out`: the record, and the text on stdout.
fn plan(f: &Fixture, index: &PackageIndex) -> (serde_json::Value, String) {
    let out = f.path().join("plan.json");
    let simple = index.simple_url();
    let run = run_tool(
        f.path(),
        &["plan", "--out", out.to_str().unwrap()],
        &[("UWORKER_IMAGE_INDEX_URL", simple.as_str())],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let record = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    (record, run.stdout)
}

#[test]
fn plan_pins_a_requirement_to_the_newest_release_that_suits_and_its_sha256() {
    let index = index();
    let f = definition("uworker>=1.0", "");
    let (record, text) = plan(&f, &index);
    let hash = sha256(b"wheel 1.0");
    let pinned = format!("uworker @ {}#sha256={hash}", index.file_url(WHEEL_10));
    assert_eq!(record["manifest"]["variables"]["worker_source"], pinned);
    assert_eq!(record["pins"][0]["kind"], "requirement");
    assert_eq!(record["pins"][0]["floating"], ">=1.0");
    assert_eq!(record["pins"][0]["pinned"], format!("1.0 sha256:{hash}"));
    assert!(
        text.contains(&format!(
            "worker_source: >=1.0 → 1.0 (sha256 {}…)",
            &hash[..12]
        )),
        "{text}"
    );
    // The image's Python 3.13 suits 1.1; a pre-release only when asked for.
    let f = definition("uworker>=1.0", "[pins]\npython = \"3.13\"\n");
    assert_eq!(
        plan(&f, &index).0["pins"][0]["pinned"],
        format!("1.1 sha256:{}", sha256(b"wheel 1.1"))
    );
    let f = definition("uworker>=2.0rc1", "");
    assert_eq!(
        plan(&f, &index).0["pins"][0]["pinned"],
        format!("2.0rc1 sha256:{}", sha256(b"wheel 2.0rc1"))
    );
    // [pins] index_url serves as the environment's does.
    let f = definition(
        "uworker<1.1",
        &format!("[pins]\nindex_url = \"{}\"\n", index.simple_url()),
    );
    let run = run_tool(
        f.path(),
        &["--output", "json", "plan"],
        &[("UWORKER_IMAGE_INDEX_URL", "")],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("1.0 sha256:{hash}")),
        "{}",
        run.stdout
    );

    // A plain URL: the sha256 of its content.
    let url = index.file_url("w-0.1.tar.gz");
    let f = definition(&url, "");
    let (record, _) = plan(&f, &index);
    assert_eq!(
        record["manifest"]["variables"]["worker_source"],
        format!("{url}#sha256={}", sha256(b"a tarball"))
    );
    assert_eq!(record["pins"][0]["kind"], "url");

    // Nothing that suits: exit 3, naming the index's host.
    let f = definition("uworker>=3", "");
    let simple = index.simple_url();
    let run = run_tool(
        f.path(),
        &["plan"],
        &[("UWORKER_IMAGE_INDEX_URL", simple.as_str())],
    );
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("127.0.0.1:"), "{}", run.stderr);
}

struct Install {
    ok: bool,
    output: String,
    /// pip's arguments, one line per call.
    pip: String,
}

/// provision/scripts/35-worker.sh as root with WORKER_SOURCE `value`, in a private mount
/// namespace (tmpfs over /opt, /run and /tmp, whose leftovers are listed after); python3
/// is the real one but for `-m venv`, which makes a venv of stand-ins.
/// Where the namespace sees the test's work dir (on its own /run tmpfs, outside /tmp).
const INSIDE: &str = "/run/uworker-pin-test";

fn install(value: &str) -> Install {
    // Outside /tmp, which the namespace covers with its own tmpfs.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let pip_log = work.path().join("pip.log");
    let python3 = format!(
        r#"#!/bin/sh
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/sh\nexit 0\n' >"$3/bin/python"
  printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>{INSIDE}/pip.log\ntouch "$(dirname "$0")/uworker"; chmod +x "$(dirname "$0")/uworker"\n' >"$3/bin/pip"
  chmod +x "$3/bin/python" "$3/bin/pip"
  exit 0
fi
exec /usr/bin/python3 "$@"
"#
    );
    let path = bin.join("python3");
    std::fs::write(&path, python3).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("provision/scripts/35-worker.sh");
    // The work dir and the script may be below /tmp (a checkout there): the work dir is
    // bound at INSIDE, and the script copied into it, before /tmp gets its own tmpfs.
    let output = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c"])
        .arg(format!(
            "mount -t tmpfs none /opt && mount -t tmpfs none /run && mkdir -p {inside} \
               && mount --bind {work} {inside} && cp {script} {inside}/35-worker.sh \
               && mount -t tmpfs none /tmp || exit 9
            bash {inside}/35-worker.sh; status=$?
            echo \"artifacts left: $(find /tmp -name 'uworker-artifact*' | wc -l)\"; exit $status",
            inside = INSIDE,
            work = work.path().display(),
            script = script.display()
        ))
        .env(
            "PATH",
            format!("{INSIDE}/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        )
        .env("WORKER_SOURCE", value)
        .output()
        .unwrap();
    Install {
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        pip: std::fs::read_to_string(pip_log).unwrap_or_default(),
    }
}

#[test]
fn an_artifact_changed_under_the_same_version_fails_the_install() {
    let index = index();
    let f = definition("uworker>=1.0", "");
    let (record, _) = plan(&f, &index);
    let pinned = record["manifest"]["variables"]["worker_source"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = sha256(b"wheel 1.0");

    let good = install(&pinned);
    assert!(good.ok, "{}", good.output);
    assert!(
        good.output
            .contains(&format!("{WHEEL_10} matches its pinned sha256")),
        "{}",
        good.output
    );
    // pip installs the checked copy, its hash in the URL again for pip's own check.
    let installed = good
        .pip
        .lines()
        .find(|l| l.contains(WHEEL_10))
        .unwrap_or_else(|| panic!("pip never got the wheel: {}", good.pip));
    assert!(
        installed.contains("uworker @ file:///tmp/uworker-artifact.")
            && installed.ends_with(&format!("/{WHEEL_10}#sha256={hash}")),
        "{installed}"
    );
    assert!(
        good.output.ends_with("artifacts left: 0\n"),
        "{}",
        good.output
    );

    // The same version's file now serves other bytes: the index still lists the old hash,
    // so plan pins the same value, and the install refuses it; pip never runs on it.
    index.tamper(WHEEL_10, b"wheel 1.0, rebuilt");
    let (again, _) = plan(&f, &index);
    assert_eq!(again["fingerprint"], record["fingerprint"]);
    let bad = install(&pinned);
    assert!(!bad.ok, "{}", bad.output);
    assert!(
        bad.output.contains(&format!(
            "has sha256 {}, not the pinned {hash}",
            sha256(b"wheel 1.0, rebuilt")
        )),
        "{}",
        bad.output
    );
    assert!(!bad.pip.contains(WHEEL_10), "pip ran on it: {}", bad.pip);
    assert!(bad.output.contains("artifacts left: 0\n"), "{}", bad.output);
}

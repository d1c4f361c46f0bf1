//! action/install.sh for real: releases served from a loopback HTTP server (python3's
//! http.server) at GITHUB_SERVER_URL, packed by scripts/package-release.sh as the release
//! workflow packs them. A release binary is installed only when its `.sha256` is the one
//! line naming exactly its asset and the hash matches; a cached binary is re-hashed
//! before reuse; the workflow's own binary (input `binary`) is checked against its hash;
//! a build from source runs cargo with a scrubbed environment; secrets in the install
//! step's environment are named in a warning, never printed.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use common::*;

/// GitHub's release downloads as a loopback server (python3's http.server on 127.0.0.1, on
/// a port it picks, serving `root`), with GitHub's redirects of `latest`:
/// `OWNER/REPO/releases/latest` to `.../releases/tag/TAG` and
/// `.../releases/latest/download/ASSET` to `.../releases/download/TAG/ASSET`, where TAG is
/// what the file `root/OWNER/REPO/releases/latest` says (no file: 404). Each request's path
/// is logged, one a line.
struct FileServer {
    child: Child,
    url: String,
    log: tempfile::NamedTempFile,
}

const GITHUB_RELEASES: &str = r#"
import http.server, os, re, sys
root, log = sys.argv[1], sys.argv[2]
class Releases(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=root, **kwargs)
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        latest = re.fullmatch(r"/([^/]+)/([^/]+)/releases/latest(?:/download/(.+))?", self.path)
        if latest is None:
            return super().do_GET()
        owner, repo, asset = latest.groups()
        try:
            with open(os.path.join(root, owner, repo, "releases", "latest")) as f:
                tag = f.read().strip()
        except OSError:
            return self.send_error(404)
        where = f"download/{tag}/{asset}" if asset else f"tag/{tag}"
        self.send_response(302)
        self.send_header("Location", f"http://{self.headers['Host']}/{owner}/{repo}/releases/{where}")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Releases)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// python3 itself, not a wrapper (a pyenv shim) that would outlive the kill in `drop`.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", "import sys; print(sys.executable)"]);
        let r = run(cmd);
        assert_eq!(r.code, 0, "{}", r.all());
        PathBuf::from(r.stdout.trim())
    })
}

impl FileServer {
    fn start(root: &Path) -> FileServer {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(python())
            .arg("-c")
            .arg(GITHUB_RELEASES)
            .arg(root)
            .arg(log.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port in {line:?}"));
        FileServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The paths asked for since the last call.
    fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.log.path()).unwrap();
        std::fs::write(self.log.path(), "").unwrap();
        text.lines().map(str::to_string).collect()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where GitHub's `latest` of `repository` (OWNER/REPO) leads from now on.
fn set_latest(root: &Path, repository: &str, tag: &str) {
    let releases = root.join(repository).join("releases");
    std::fs::create_dir_all(&releases).unwrap();
    std::fs::write(releases.join("latest"), tag).unwrap();
}

const ASSET: &str = "uworker-image-x86_64-unknown-linux-musl.tar.gz";

/// A release as the release workflow lays it out (OWNER/REPO/releases/download/TAG/),
/// packed by its own script.
fn publish(root: &Path, tag: &str, tamper: bool) {
    publish_binary(
        root,
        "owner/uworker-image",
        tag,
        Path::new(env!("CARGO_BIN_EXE_uworker-image")),
    );
    if tamper {
        let dir = root.join("owner/uworker-image/releases/download").join(tag);
        let sum_file = dir.join(format!("{ASSET}.sha256"));
        let mut sum = std::fs::read_to_string(&sum_file).unwrap();
        sum.replace_range(0..4, "0000");
        std::fs::write(sum_file, sum).unwrap();
    }
}

/// `binary` (named uworker-image) released as `repository`'s `tag`.
fn publish_binary(root: &Path, repository: &str, tag: &str, binary: &Path) {
    let dir = root.join(repository).join("releases/download").join(tag);
    let mut cmd = Command::new(repo().join("scripts/package-release.sh"));
    cmd.arg(binary).arg("x86_64-unknown-linux-musl").arg(&dir);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(PathBuf::from(r.stdout.trim()), dir.join(ASSET));
}

/// A stand-in uworker-image in `dir` that says `version` (a release another binary than
/// the tool).
fn stand_in_binary(dir: &Path, version: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("uworker-image");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho 'uworker-image {version}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

#[test]
fn packaging_refuses_what_is_not_a_binary_and_a_target() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    for (args, message) in [
        (
            vec![
                "/nonexistent/uworker-image",
                "x86_64-unknown-linux-gnu",
                out,
            ],
            "is not an executable",
        ),
        (
            vec!["/bin/sh", "x86_64-unknown-linux-gnu", out],
            "is not named uworker-image",
        ),
        (
            vec![env!("CARGO_BIN_EXE_uworker-image"), "x86_64; rm -rf", out],
            "is not a target triple",
        ),
        (vec![env!("CARGO_BIN_EXE_uworker-image")], "usage:"),
    ] {
        let mut cmd = Command::new(repo().join("scripts/package-release.sh"));
        cmd.args(&args);
        let r = run(cmd);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
    }
    assert_eq!(
        std::fs::read_dir(out).unwrap().count(),
        0,
        "nothing written"
    );
}

fn install(server: &FileServer, action_ref: &str, version: &str, tmp: &Path) -> Run {
    install_with(server, action_ref, version, tmp, &[])
}

/// install.sh as the action's install step runs it, plus `vars` in its environment.
fn install_with(
    server: &FileServer,
    action_ref: &str,
    version: &str,
    tmp: &Path,
    vars: &[(&str, &str)],
) -> Run {
    install_from(
        server,
        "owner/uworker-image",
        action_ref,
        version,
        tmp,
        vars,
    )
}

/// install.sh of the action `repository` (OWNER/REPO) used at `action_ref`.
fn install_from(
    server: &FileServer,
    repository: &str,
    action_ref: &str,
    version: &str,
    tmp: &Path,
    vars: &[(&str, &str)],
) -> Run {
    // Where the runner unpacks a used action: .../_actions/OWNER/REPO/REF (empty here:
    // a build from source has nothing to build).
    let action_path = tmp.join("_actions").join(repository).join(action_ref);
    std::fs::create_dir_all(&action_path).unwrap();
    let path = match vars.iter().find(|(k, _)| *k == "PATH") {
        Some((_, path)) => path.to_string(),
        None => std::env::var("PATH").unwrap(),
    };
    let mut cmd = Command::new(repo().join("action/install.sh"));
    cmd.env_clear()
        .envs(vars.iter().copied())
        .env("PATH", path)
        .env("HOME", std::env::var_os("HOME").unwrap())
        .env("GITHUB_ACTION_PATH", &action_path)
        .env("GITHUB_SERVER_URL", &server.url)
        .env("RUNNER_TOOL_CACHE", tmp.join("toolcache"))
        .env("RUNNER_TEMP", tmp)
        .env("GITHUB_PATH", tmp.join("github_path"))
        .env("UWORKER_IMAGE_ACTION_VERSION", version);
    run(cmd)
}

/// Where install.sh keeps `repository`'s release `tag` fetched from `server`.
fn release_dir(tmp: &Path, server: &FileServer, repository: &str, tag: &str) -> PathBuf {
    tmp.join("toolcache/uworker-image/release")
        .join(server.url.trim_start_matches("http://"))
        .join(repository)
        .join(tag)
}

#[test]
fn the_action_installs_a_checked_release_binary() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.9", false);
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    let r = install(&server, "v9.9.9", "", tmp.path());
    assert_eq!(r.code, 0, "{}", r.all());
    let installed = PathBuf::from(r.stdout.trim());
    assert_eq!(
        installed,
        release_dir(tmp.path(), &server, "owner/uworker-image", "v9.9.9").join("bin/uworker-image")
    );
    let mut cmd = Command::new(&installed);
    cmd.arg("--version");
    let version = run(cmd);
    assert!(
        version.stdout.starts_with("uworker-image "),
        "{}",
        version.all()
    );
    let path = std::fs::read_to_string(tmp.path().join("github_path")).unwrap();
    assert_eq!(path.trim(), installed.parent().unwrap().to_str().unwrap());
    assert!(
        r.stderr.contains(&format!(
            "downloading {}/owner/uworker-image/releases/download/v9.9.9/{ASSET}",
            server.url
        )),
        "{}",
        r.stderr
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("uworker-image-download"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A second step of the same job reuses the binary without downloading it again, once
    // the cached asset has the hash the release's .sha256 says now.
    let release = "/owner/uworker-image/releases/download/v9.9.9";
    server.requests();
    let again = install(&server, "v9.9.9", "", tmp.path());
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(again.stdout, r.stdout);
    assert!(!again.stderr.contains("downloading"), "{}", again.stderr);
    assert_eq!(
        server.requests(),
        [format!("{release}/{ASSET}.sha256")],
        "{}",
        again.stderr
    );
}

#[test]
fn a_release_binary_with_a_wrong_checksum_is_refused() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.8", true);
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    let r = install(&server, "v9.9.8", "", tmp.path());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    assert!(
        !release_dir(tmp.path(), &server, "owner/uworker-image", "v9.9.8")
            .join("bin/uworker-image")
            .exists()
    );
    assert!(!tmp.path().join("github_path").exists());
}

/// A release whose asset is there but its checksum is not: refused, and no build from
/// source instead (that fallback is for a version with no release at all).
#[test]
fn a_release_binary_without_its_checksum_is_refused() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.7", false);
    std::fs::remove_file(
        www.path()
            .join("owner/uworker-image/releases/download/v9.9.7")
            .join(format!("{ASSET}.sha256")),
    )
    .unwrap();
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    let r = install(&server, "v9.9.7", "", tmp.path());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("{ASSET} has no {ASSET}.sha256 beside it")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("building from source"), "{}", r.stderr);
    assert!(!tmp.path().join("github_path").exists());
}

#[test]
fn without_a_release_the_action_builds_from_its_own_source() {
    let www = tempfile::tempdir().unwrap();
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    // A branch ref has no release: the download fails and cargo builds the action's
    // source. Here the source is a package with no code, so cargo's own error ends it.
    let source = tmp.path().join("_actions/owner/uworker-image/main");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(
        source.join("Cargo.toml"),
        "[package]\nname = \"not-the-tool\"\nversion = \"0.0.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    let r = install(&server, "main", "", tmp.path());
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("no release asset for main: falling back to a build from source")
            && r.stderr.contains(&format!(
                "building from source: cargo install --locked --path {}",
                source.display()
            ))
            && r.stderr.contains("no targets specified in the manifest"),
        "{}",
        r.stderr
    );
    assert!(!tmp.path().join("github_path").exists());

    // `source` skips the download; a source without Cargo.toml is named as such.
    let r = install(&server, "v1.0.0", "source", tmp.path());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!r.stderr.contains("downloading"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("has no Cargo.toml: cannot build uworker-image from source"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_build_from_source_installs_once_per_source() {
    let www = tempfile::tempdir().unwrap();
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in source tree that builds in seconds (the real one takes minutes): what is
    // tested is the action's fallback, not the tool's compilation.
    let source = tmp
        .path()
        .join("_actions/owner/uworker-image/feature-branch");
    std::fs::create_dir_all(source.join("src")).unwrap();
    std::fs::write(
        source.join("Cargo.toml"),
        "[package]\nname = \"uworker-image\"\nversion = \"0.0.1\"\nedition = \"2021\"\n",
    )
    .unwrap();
    let main = "fn main() { println!(\"uworker-image 0.0.1 (from source)\"); }\n";
    std::fs::write(source.join("src/main.rs"), main).unwrap();
    std::fs::write(
        source.join("Cargo.lock"),
        "version = 4\n\n[[package]]\nname = \"uworker-image\"\nversion = \"0.0.1\"\n",
    )
    .unwrap();

    let r = install(&server, "feature-branch", "", tmp.path());
    assert_eq!(r.code, 0, "{}", r.all());
    let installed = PathBuf::from(r.stdout.trim());
    assert!(installed.starts_with(tmp.path().join("toolcache/uworker-image")));
    assert!(
        r.stderr.contains("uworker-image 0.0.1 (from source)"),
        "{}",
        r.stderr
    );
    let path = std::fs::read_to_string(tmp.path().join("github_path")).unwrap();
    assert_eq!(path.trim(), installed.parent().unwrap().to_str().unwrap());

    // The same source again: reused. A changed source: built anew, elsewhere.
    let again = install(&server, "feature-branch", "", tmp.path());
    assert_eq!(again.stdout, r.stdout, "{}", again.all());
    assert!(
        !again.stderr.contains("building from source"),
        "{}",
        again.stderr
    );
    std::fs::write(
        source.join("src/main.rs"),
        main.replace("0.0.1 (", "0.0.1 (changed, "),
    )
    .unwrap();
    let changed = install(&server, "feature-branch", "", tmp.path());
    assert_eq!(changed.code, 0, "{}", changed.all());
    assert_ne!(changed.stdout, r.stdout);
    assert!(
        changed.stderr.contains("(changed, from source)"),
        "{}",
        changed.stderr
    );
}

// ---- what a release's .sha256 may say ----------------------------------------------

/// The SHA-256 of the empty file: a `.sha256` line for /dev/null always checks out.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn sha256_hex(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout.split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_sha256_file_must_be_one_line_naming_exactly_the_asset() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.6", false);
    let release = www
        .path()
        .join("owner/uworker-image/releases/download/v9.9.6");
    let good = sha256_hex(&release.join(ASSET));
    let server = FileServer::start(www.path());
    let cases = [
        // `sha256sum --check` accepts each of the first three without ever hashing the
        // asset: they name another file.
        (
            format!("{EMPTY_SHA256}  /dev/null\n"),
            "names `/dev/null`, not uworker-image-x86_64-unknown-linux-musl.tar.gz",
        ),
        (
            format!("{good}  {ASSET}\n{EMPTY_SHA256}  /dev/null\n"),
            "has more than one line",
        ),
        (
            format!("{EMPTY_SHA256}  /dev/null\n{good}  {ASSET}\n"),
            "has more than one line",
        ),
        (
            format!("{good}  ./{ASSET}\n"),
            "names `./uworker-image-x86_64",
        ),
        (format!("{good}\n"), "is not `<64 hex digits>  "),
        (String::new(), "is not `<64 hex digits>  "),
        (
            format!("{}  {ASSET}\n", good.to_uppercase()),
            "is not `<64 hex",
        ),
        (
            format!("{EMPTY_SHA256}  {ASSET}\n"),
            "checksum mismatch for",
        ),
    ];
    for (sum, message) in &cases {
        std::fs::write(release.join(format!("{ASSET}.sha256")), sum).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let r = install(&server, "v9.9.6", "", tmp.path());
        assert_eq!(r.code, 1, "{sum:?}: {}", r.all());
        assert!(
            r.stderr.contains(message) && r.stderr.contains("refusing"),
            "{sum:?}: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("building from source"),
            "a refused release is no reason to build: {}",
            r.stderr
        );
        assert!(
            !release_dir(tmp.path(), &server, "owner/uworker-image", "v9.9.6")
                .join("bin")
                .exists()
        );
        assert!(!tmp.path().join("github_path").exists());
    }
    // Both forms sha256sum writes are accepted, with or without the last newline.
    for sum in [
        format!("{good}  {ASSET}\n"),
        format!("{good} *{ASSET}\n"),
        format!("{good}  {ASSET}"),
    ] {
        std::fs::write(release.join(format!("{ASSET}.sha256")), &sum).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let r = install(&server, "v9.9.6", "", tmp.path());
        assert_eq!(r.code, 0, "{sum:?}: {}", r.all());
    }
}

/// `binary` packed as a release asset in `dir` (what an attacker with write access to the
/// runner's tool cache would leave there).
fn pack_asset(binary: &Path, dir: &Path) {
    let mut cmd = Command::new("tar");
    cmd.arg("-czf")
        .arg(dir.join(ASSET))
        .arg("-C")
        .arg(binary.parent().unwrap())
        .arg("uworker-image");
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn a_cached_binary_is_checked_against_its_release_before_it_is_used() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.5", false);
    let server = FileServer::start(www.path());
    let tmp = tempfile::tempdir().unwrap();
    let r = install(&server, "v9.9.5", "", tmp.path());
    assert_eq!(r.code, 0, "{}", r.all());
    let installed = PathBuf::from(r.stdout.trim());
    let cache = installed.parent().unwrap().parent().unwrap().to_path_buf();
    let original = std::fs::read(&installed).unwrap();

    // Another job on a self-hosted runner swaps the cached binary and rewrites the hash
    // recorded beside it; then the asset too, a tarball of its own binary.
    let ran = tmp.path().join("the-swapped-binary-ran");
    let swapped = format!(
        "#!/bin/sh\ntouch '{}'\necho uworker-image 6.6.6\n",
        ran.display()
    );
    let swap = |asset_too: bool| {
        std::fs::write(&installed, &swapped).unwrap();
        std::fs::write(cache.join("uworker-image.sha256"), sha256_hex(&installed)).unwrap();
        if asset_too {
            pack_asset(&installed, &cache);
        }
    };
    for asset_too in [false, true] {
        swap(asset_too);
        let r = install(&server, "v9.9.5", "", tmp.path());
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(!ran.exists(), "the swapped binary ran: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "{} is not owner/uworker-image's v9.9.5",
                cache.display()
            )) && r.stderr.contains("downloading"),
            "{}",
            r.stderr
        );
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            original,
            "installed again"
        );
    }

    // Swapped again while the release's .sha256 is out of reach: never used, the step
    // fails (and builds nothing instead).
    swap(true);
    let sum = www
        .path()
        .join("owner/uworker-image/releases/download/v9.9.5")
        .join(format!("{ASSET}.sha256"));
    std::fs::remove_file(&sum).unwrap();
    let r = install(&server, "v9.9.5", "", tmp.path());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("cannot check the cached uworker-image against its release")
            && r.stderr.contains("refusing it"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("building from source"), "{}", r.stderr);
    assert!(!ran.exists(), "the swapped binary ran");
    let path = std::fs::read_to_string(tmp.path().join("github_path")).unwrap();
    assert_eq!(
        path.lines().count(),
        3,
        "only the three good installs: {path}"
    );
}

/// The tag names a directory of the tool cache: one that climbs out is refused before
/// anything there is looked at, let alone removed.
#[test]
fn a_version_that_is_not_a_tag_is_refused() {
    let server = FileServer::start(tempfile::tempdir().unwrap().path());
    let tmp = tempfile::tempdir().unwrap();
    let precious = tmp.path().join("toolcache/uworker-image/precious");
    std::fs::create_dir_all(&precious).unwrap();
    for version in ["../../../../precious", "v1 2", "/v1", "v1//x", "v1/"] {
        let r = install(&server, "v1.0.0", version, tmp.path());
        assert_eq!(r.code, 1, "{version}: {}", r.all());
        assert!(
            r.stderr.contains(&format!(
                "input version: `{version}` is not a release tag: refusing it"
            )),
            "{version}: {}",
            r.stderr
        );
        assert!(server.requests().is_empty(), "{version}");
        assert!(!r.stderr.contains("building from source"), "{}", r.stderr);
        assert!(precious.exists());
    }
}

#[test]
fn a_forks_release_of_the_same_tag_is_never_reused_for_upstreams() {
    let www = tempfile::tempdir().unwrap();
    let fork_bin = stand_in_binary(&www.path().join("fork-build"), "6.6.6 (fork build)");
    publish_binary(www.path(), "fork/uworker-image", "v9.9.3", &fork_bin);
    publish(www.path(), "v9.9.3", false);
    let server = FileServer::start(www.path());
    // One self-hosted runner's tool cache, two repositories' actions at the same tag.
    let tmp = tempfile::tempdir().unwrap();
    let fork = install_from(&server, "fork/uworker-image", "v9.9.3", "", tmp.path(), &[]);
    assert_eq!(fork.code, 0, "{}", fork.all());
    assert!(
        fork.stderr.contains("6.6.6 (fork build)"),
        "{}",
        fork.stderr
    );

    let upstream = install(&server, "v9.9.3", "", tmp.path());
    assert_eq!(upstream.code, 0, "{}", upstream.all());
    assert!(
        upstream.stderr.contains(&format!(
            "downloading {}/owner/uworker-image/releases/download/v9.9.3/{ASSET}",
            server.url
        )) && !upstream.stderr.contains("fork build"),
        "the fork's binary was reused: {}",
        upstream.stderr
    );
    assert_ne!(upstream.stdout, fork.stdout);
    assert_eq!(
        std::fs::read(upstream.stdout.trim()).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_uworker-image")).unwrap()
    );

    // Each keeps its own: the fork's again is the fork's, from the cache.
    let again = install_from(&server, "fork/uworker-image", "v9.9.3", "", tmp.path(), &[]);
    assert_eq!(again.stdout, fork.stdout, "{}", again.all());
    assert!(!again.stderr.contains("downloading"), "{}", again.stderr);
}

#[test]
fn latest_is_resolved_to_its_tag_and_refreshed_when_it_moves() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.1", false);
    let newer = stand_in_binary(&www.path().join("newer-build"), "9.9.2 (newer)");
    publish_binary(www.path(), "owner/uworker-image", "v9.9.2", &newer);
    set_latest(www.path(), "owner/uworker-image", "v9.9.1");
    let server = FileServer::start(www.path());
    // A self-hosted runner: the tool cache outlives the job.
    let tmp = tempfile::tempdir().unwrap();
    let first = install(&server, "v1", "latest", tmp.path());
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(!first.stderr.contains("(newer)"), "{}", first.stderr);

    set_latest(www.path(), "owner/uworker-image", "v9.9.2");
    let second = install(&server, "v1", "latest", tmp.path());
    assert_eq!(second.code, 0, "{}", second.all());
    assert!(
        second.stderr.contains("uworker-image 9.9.2 (newer)"),
        "latest moved to v9.9.2 but was not refreshed: {}",
        second.stderr
    );
    for (r, tag) in [(&first, "v9.9.1"), (&second, "v9.9.2")] {
        assert_eq!(
            PathBuf::from(r.stdout.trim()),
            release_dir(tmp.path(), &server, "owner/uworker-image", tag).join("bin/uworker-image")
        );
    }

    // Where it was: the cached v9.9.2, checked, not downloaded.
    server.requests();
    let third = install(&server, "v1", "latest", tmp.path());
    assert_eq!(third.stdout, second.stdout, "{}", third.all());
    assert_eq!(
        server.requests(),
        [
            "/owner/uworker-image/releases/latest".to_string(),
            format!("/owner/uworker-image/releases/download/v9.9.2/{ASSET}.sha256")
        ]
    );

    // A `latest` that leads to no plain tag of the repository: refused, nothing built.
    set_latest(
        www.path(),
        "owner/uworker-image",
        "v9.9.2/../../../other/repo",
    );
    let r = install(&server, "v1", "latest", tmp.path());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("not a tag of owner/uworker-image: refusing it")
            && !r.stderr.contains("building from source"),
        "{}",
        r.stderr
    );
}

// ---- the workflow's own binary (input `binary`) ---------------------------------------

#[test]
fn the_workflows_own_binary_is_installed_only_with_its_hash() {
    let server = FileServer::start(tempfile::tempdir().unwrap().path());
    let tmp = tempfile::tempdir().unwrap();
    // An artifact as download-artifact leaves it: mode 0644.
    let artifact = tmp.path().join("artifact/uworker-image");
    std::fs::create_dir_all(artifact.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_uworker-image"), &artifact).unwrap();
    std::fs::set_permissions(
        &artifact,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let sha = sha256_hex(&artifact);
    let artifact_str = artifact.to_str().unwrap();

    for (want, message) in [
        (EMPTY_SHA256.to_string(), "not e3b0c442"),
        (
            "abc".to_string(),
            "input binary-sha256: `abc` is not 64 lowercase hex digits",
        ),
        (sha.to_uppercase(), "is not 64 lowercase hex digits"),
    ] {
        let r = install_with(
            &server,
            "v1.2.3",
            "",
            tmp.path(),
            &[
                ("UWORKER_IMAGE_ACTION_BINARY", artifact_str),
                ("UWORKER_IMAGE_ACTION_BINARY_SHA256", &want),
            ],
        );
        assert_eq!(r.code, 1, "{want}: {}", r.all());
        assert!(r.stderr.contains(message), "{want}: {}", r.stderr);
        assert!(!tmp.path().join("github_path").exists());
    }
    let r = install_with(
        &server,
        "v1.2.3",
        "",
        tmp.path(),
        &[("UWORKER_IMAGE_ACTION_BINARY", "/nonexistent/uworker-image")],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r
        .stderr
        .contains("input binary: /nonexistent/uworker-image is not a file"));

    let r = install_with(
        &server,
        "v1.2.3",
        "",
        tmp.path(),
        &[
            ("UWORKER_IMAGE_ACTION_BINARY", artifact_str),
            ("UWORKER_IMAGE_ACTION_BINARY_SHA256", &sha),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let installed = PathBuf::from(r.stdout.trim());
    assert_eq!(
        installed,
        tmp.path().join(format!(
            "toolcache/uworker-image/binary-{sha}/bin/uworker-image"
        ))
    );
    assert!(
        r.stderr.contains("uworker-image "),
        "ran --version: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("downloading") && !r.stderr.contains("building"));
    let mode = std::fs::metadata(&installed).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o755
    );

    // The cached copy swapped, and a hash recorded beside it to match: it is checked
    // against the artifact's hash, and installed again from the artifact.
    let cache = installed.parent().unwrap().parent().unwrap();
    std::fs::write(&installed, "#!/bin/sh\necho uworker-image 6.6.6\n").unwrap();
    std::fs::write(cache.join("uworker-image.sha256"), sha256_hex(&installed)).unwrap();
    let again = install_with(
        &server,
        "v1.2.3",
        "",
        tmp.path(),
        &[
            ("UWORKER_IMAGE_ACTION_BINARY", artifact_str),
            ("UWORKER_IMAGE_ACTION_BINARY_SHA256", &sha),
        ],
    );
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again
            .stderr
            .contains(&format!("not {sha}: not using it, installing again"))
            && !again.stderr.contains("6.6.6"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&artifact).unwrap()
    );
}

// ---- secrets stay out of installing -----------------------------------------------------

#[test]
fn cargo_builds_without_the_steps_secrets_and_the_step_is_warned() {
    let server = FileServer::start(tempfile::tempdir().unwrap().path());
    let tmp = tempfile::tempdir().unwrap();
    // A source whose build script records the environment cargo gave it: what every
    // build script and proc-macro of the ~285 real dependencies would see.
    let source = tmp.path().join("_actions/owner/uworker-image/a-branch");
    std::fs::create_dir_all(source.join("src")).unwrap();
    let seen = tmp.path().join("build-script-env");
    std::fs::write(
        source.join("Cargo.toml"),
        "[package]\nname = \"uworker-image\"\nversion = \"0.0.2\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        source.join("Cargo.lock"),
        "version = 4\n\n[[package]]\nname = \"uworker-image\"\nversion = \"0.0.2\"\n",
    )
    .unwrap();
    std::fs::write(
        source.join("build.rs"),
        format!(
            "fn main() {{ let all: Vec<String> = std::env::vars().map(|(k, v)| format!(\"{{k}}={{v}}\")).collect(); std::fs::write({:?}, all.join(\"\\n\")).unwrap(); }}\n",
            seen.to_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(
        source.join("src/main.rs"),
        "fn main() { println!(\"uworker-image 0.0.2\"); }\n",
    )
    .unwrap();

    let secrets = [
        ("OS_APPLICATION_CREDENTIAL_SECRET", NASTY_PASSWORD),
        ("OS_PASSWORD", "os pass $word"),
        ("UWORKER_JOB_API_PASSWORD", NASTY_PASSWORD),
        ("UWORKER_REGISTRY_PASSWORD", "reg'istry\"pw"),
        ("GITHUB_TOKEN", "ghs_0123456789abcdefTOKEN"),
        ("AWS_SECRET_ACCESS_KEY", "aws secret"),
        (
            "UWORKER_IMAGE_WORKER_SOURCE",
            "git+https://x-access-token:ghp_w0rker@h/o/w.git",
        ),
    ];
    let mut vars: Vec<(&str, &str)> = secrets.to_vec();
    vars.push(("UWORKER_IMAGE_DIR", "provision"));
    // The action's token for gh: never cargo's, and no warning (the action passes it).
    vars.push(("UWORKER_IMAGE_ACTION_GITHUB_TOKEN", "ghs_for_gh_only"));
    vars.push(("CARGO_TERM_COLOR", "never"));
    let r = install_with(&server, "a-branch", "source", tmp.path(), &vars);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("uworker-image 0.0.2"), "{}", r.stderr);

    let env = std::fs::read_to_string(&seen).expect("the build script ran");
    for (name, value) in secrets {
        assert!(
            !env.contains(&format!("{name}=")),
            "{name} reached the build script"
        );
        assert!(
            !env.contains(value),
            "{name}'s value reached the build script"
        );
        assert!(!r.all().contains(value), "{name}'s value was printed");
    }
    assert!(
        !env.contains("ghs_for_gh_only"),
        "the action's token reached cargo"
    );
    assert!(env.contains("\nPATH=") || env.starts_with("PATH="), "{env}");
    assert!(
        env.contains("CARGO_TERM_COLOR=never"),
        "cargo's own settings pass: {env}"
    );

    let warning = r
        .stderr
        .lines()
        .find(|l| l.starts_with("::warning"))
        .unwrap_or_else(|| panic!("no warning: {}", r.stderr));
    for name in [
        "OS_APPLICATION_CREDENTIAL_SECRET",
        "OS_PASSWORD",
        "UWORKER_JOB_API_PASSWORD",
        "UWORKER_REGISTRY_PASSWORD",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "UWORKER_IMAGE_WORKER_SOURCE",
    ] {
        assert!(warning.contains(name), "{name} not named: {warning}");
    }
    assert!(
        !warning.contains("UWORKER_IMAGE_DIR") && !warning.contains("UWORKER_IMAGE_ACTION"),
        "{warning}"
    );
    assert!(
        warning.contains("Using it from another repository"),
        "{warning}"
    );

    // A clean step: no warning.
    let r = install_with(&server, "a-branch", "source", tmp.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stderr.contains("::warning"), "{}", r.stderr);
}

// ---- build provenance, with gh when it is installed --------------------------------------

/// A stand-in `gh` first on PATH (the real one needs GitHub): records its arguments and
/// whether it got the token, and exits with `code`.
fn stand_in_gh(dir: &Path, code: i32) -> String {
    let bin = dir.join("gh-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("gh.log");
    std::fs::write(
        bin.join("gh"),
        format!(
            "#!/bin/sh\necho \"$* token=${{GH_TOKEN:-none}} host=${{GH_HOST:-none}}\" >>'{}'\nexit {code}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("gh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

#[test]
fn a_release_binary_needs_its_provenance_attestation_when_gh_is_there() {
    let www = tempfile::tempdir().unwrap();
    publish(www.path(), "v9.9.4", false);
    let server = FileServer::start(www.path());
    let host = server.url.trim_start_matches("http://").to_string();

    // Without gh: the checksum alone, said so.
    let tmp = tempfile::tempdir().unwrap();
    let r = install(&server, "v9.9.4", "", tmp.path());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("gh is not installed: the build provenance"),
        "{}",
        r.stderr
    );

    // gh verifies: installed; gh refuses: refused, and no build from source instead.
    for (code, installs) in [(0, true), (1, false)] {
        let tmp = tempfile::tempdir().unwrap();
        let path = stand_in_gh(tmp.path(), code);
        let r = install_with(
            &server,
            "v9.9.4",
            "",
            tmp.path(),
            &[
                ("PATH", &path),
                ("UWORKER_IMAGE_ACTION_GITHUB_TOKEN", "ghs_readonly"),
            ],
        );
        let log = std::fs::read_to_string(tmp.path().join("gh.log")).unwrap();
        let line = log.lines().next().unwrap();
        assert!(
            line.starts_with("attestation verify ")
                && line.contains(&format!(
                    "/{ASSET} --repo owner/uworker-image --signer-workflow owner/uworker-image/.github/workflows/release.yml --source-ref refs/tags/v9.9.4 token=ghs_readonly host={host}"
                )),
            "{log}"
        );
        if installs {
            assert_eq!(r.code, 0, "{}", r.all());
        } else {
            assert_eq!(r.code, 1, "{}", r.all());
            assert!(
                r.stderr.contains(&format!(
                    "the build provenance attestation of {ASSET} does not verify for owner/uworker-image: refusing it"
                )),
                "{}",
                r.stderr
            );
            assert!(!r.stderr.contains("building from source"), "{}", r.stderr);
            assert!(
                !release_dir(tmp.path(), &server, "owner/uworker-image", "v9.9.4")
                    .join("bin")
                    .exists()
            );
        }
    }

    // gh without a token to ask GitHub with: not verified, said so.
    let tmp = tempfile::tempdir().unwrap();
    let path = stand_in_gh(tmp.path(), 1);
    let r = install_with(&server, "v9.9.4", "", tmp.path(), &[("PATH", &path)]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("no github-token for gh"), "{}", r.stderr);
    assert!(!tmp.path().join("gh.log").exists());
}

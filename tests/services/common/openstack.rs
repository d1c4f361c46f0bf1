//! The real Keystone + Glance of tests/harness/openstack.sh, started once per test binary
//! (the script reuses running services and a cached venv), and a few helpers to make
//! images the way a build leaves them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use reqwest::Method;
use uworker_image::env::Env;
use uworker_image::http::retry::Retry;
use uworker_image::openstack::client::Cloud;
use uworker_image::openstack::credentials::Credentials;
use uworker_image::openstack::glance::{Glance, Image};

/// The RC file the harness wrote (the services started on first use).
fn rc_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new(harness())
            .arg("start")
            .output()
            .expect("the harness runs");
        assert!(
            out.status.success(),
            "starting Keystone + Glance failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/openstack.sh")
}

fn read_rc(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The OS_* variables of the test cloud's RC file.
pub fn openrc() -> &'static Vec<(String, String)> {
    static RC: OnceLock<Vec<(String, String)>> = OnceLock::new();
    RC.get_or_init(|| read_rc(rc_path()))
}

/// The OS_* variables of the cloud's admin (who sees every project's images).
pub fn admin_env() -> Vec<(String, String)> {
    read_rc(&rc_path().with_file_name("admin-openrc.sh"))
}

/// The Compute stand-in's service user (JSON), as the harness wrote it.
pub fn nova_service_credentials() -> PathBuf {
    rc_path().with_file_name("nova-service.json")
}

/// OS_AUTH_URL of a second Keystone whose tokens live 20 seconds (same users, catalog
/// and keys), started on first use.
pub fn short_token_auth_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        rc_path();
        let out = Command::new(harness())
            .arg("start-short-tokens")
            .output()
            .expect("the harness runs");
        assert!(
            out.status.success(),
            "starting the short-token Keystone failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// The second region of the test cloud (`openstack.sh start-second-region`): its name and
/// its own Glance's URL, started on first use.
pub fn second_region_glance() -> &'static (String, String) {
    static REGION: OnceLock<(String, String)> = OnceLock::new();
    REGION.get_or_init(|| {
        rc_path();
        let out = Command::new(harness())
            .arg("start-second-region")
            .arg(super::compute::REGION_TWO)
            .output()
            .expect("the harness runs");
        assert!(
            out.status.success(),
            "starting the second region's Glance failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (region, url) = text.trim().split_once(' ').expect("REGION URL");
        (region.to_string(), url.to_string())
    })
}

/// The RC variables for one login method: "password" or "appcred".
pub fn os_env(method: &str) -> Vec<(String, String)> {
    openrc()
        .iter()
        .filter(|(k, _)| match method {
            "password" => !k.starts_with("OS_APPLICATION_CREDENTIAL"),
            _ => !matches!(
                k.as_str(),
                "OS_USERNAME" | "OS_PASSWORD" | "OS_PROJECT_NAME"
            ),
        })
        .cloned()
        .collect()
}

pub use super::env_pairs;

/// The test cloud, as its application credential.
pub fn cloud() -> Cloud {
    connect(&os_env("appcred"))
}

/// Logged in to the cloud that the OS_* variables `vars` name (an RC file's, a region's).
pub fn connect(vars: &[(String, String)]) -> Cloud {
    connect_with(vars, Retry::default())
}

/// `connect`, retrying each call as `retry` says.
pub fn connect_with(vars: &[(String, String)], retry: Retry) -> Cloud {
    let env = Env::from_pairs(vars.iter().cloned());
    let credentials = Credentials::from_env(&env).unwrap().unwrap();
    Cloud::connect(&credentials, retry).unwrap()
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{:x}{:x}", std::process::id(), nanos)
}

/// Creates an image with string `properties`; with `data`, uploads it (status active).
pub fn create_image(cloud: &Cloud, name: &str, properties: &[(&str, &str)], data: bool) -> Image {
    let mut body =
        serde_json::json!({ "name": name, "disk_format": "raw", "container_format": "bare" });
    for (k, v) in properties {
        body[*k] = serde_json::json!(v);
    }
    create_image_with(cloud, &body, data.then(|| vec![7u8; 512]))
}

/// Creates the image `body` describes; with `data`, uploads it (status active).
pub fn create_image_with(cloud: &Cloud, body: &serde_json::Value, data: Option<Vec<u8>>) -> Image {
    let glance = Glance::new(cloud).unwrap();
    let base = cloud.endpoint("image").unwrap();
    let created: Image = cloud
        .call(Method::POST, &format!("{base}/v2/images"), |r| r.json(body))
        .unwrap()
        .json()
        .unwrap();
    if let Some(data) = data {
        cloud
            .call(
                Method::PUT,
                &format!("{base}/v2/images/{}/file", created.id),
                |r| {
                    r.header("Content-Type", "application/octet-stream")
                        .body(data.clone())
                },
            )
            .unwrap();
    }
    glance.get(&created.id).unwrap()
}

/// The definition's fingerprint (from `plan`) and an active image `name` carrying it,
/// as a build leaves it: the next `build` finds it and skips.
pub fn image_with_fingerprint_of(
    definition: &Path,
    vars: &[(String, String)],
    name: &str,
) -> (String, Image) {
    let plan = super::run_tool(definition, &["--output", "json", "plan"], &env_pairs(vars));
    assert_eq!(plan.code, 0, "{}", plan.all());
    let fingerprint = serde_json::from_str::<serde_json::Value>(&plan.stdout).unwrap()
        ["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let image = create_image(
        &cloud(),
        name,
        &[("uworker_fingerprint", &fingerprint)],
        true,
    );
    (fingerprint, image)
}

/// Glance's created_at has one-second resolution: wait so the next image is newer.
pub fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// The harness's state directory (tests/harness/openstack.sh: UWORKER_IMAGE_TEST_OPENSTACK).
fn state_dir() -> std::path::PathBuf {
    std::env::var("UWORKER_IMAGE_TEST_OPENSTACK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("uworker-image-openstack"))
}

/// An image left `saving` for good, made the way a dead upload leaves one in the real
/// Glance: its data upload starts (Glance marks it `saving` before reading any data), then
/// the glance-api worker is killed mid-upload (uWSGI's master starts a new one). Takes
/// about 8 s. Only for a test that holds Glance alone (the e2e scenarios run one at a time).
pub fn image_stuck_saving(cloud: &Cloud, name: &str, properties: &[(&str, &str)]) -> Image {
    use std::io::Write;
    let created = create_image(cloud, name, properties, false);
    assert_eq!(created.status, "queued");
    let base = cloud.endpoint("image").unwrap();
    let url = reqwest::Url::parse(&base).unwrap();
    let address = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let token = appcred_token();
    let mut upload = std::net::TcpStream::connect(&address).unwrap();
    write!(
        upload,
        "PUT {}/v2/images/{}/file HTTP/1.1\r\nHost: {address}\r\nX-Auth-Token: {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n",
        url.path().trim_end_matches('/'),
        created.id
    )
    .unwrap();
    upload.write_all(&[7u8; 65536]).unwrap();
    // Glance has read the headers and marked the image `saving` when it reads the data.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let master = std::fs::read_to_string(state_dir().join("run/glance.pid")).unwrap();
    let master = master.trim();
    let workers =
        std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap();
    assert!(!workers.trim().is_empty(), "glance-api has no worker");
    for worker in workers.split_whitespace() {
        super::procs::signal(worker.parse().unwrap(), libc::SIGKILL).unwrap();
    }
    drop(upload);
    // uWSGI's master starts a new worker; Glance answers again after a few seconds.
    let glance = Glance::new(cloud).unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match glance.get(&created.id) {
            Ok(image) => {
                assert_eq!(image.status, "saving", "{image:?}");
                return image;
            }
            Err(e) => assert!(std::time::Instant::now() < until, "Glance is back: {e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A token of the test cloud's application credential, for a raw HTTP request.
fn appcred_token() -> String {
    let env = Env::from_pairs(os_env("appcred"));
    let auth_url = env
        .get("OS_AUTH_URL")
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let body = serde_json::json!({"auth": {"identity": {
    "methods": ["application_credential"],
    "application_credential": {
        "id": env.get("OS_APPLICATION_CREDENTIAL_ID").unwrap(),
        "secret": env.get("OS_APPLICATION_CREDENTIAL_SECRET").unwrap(),
    }}}});
    let response = reqwest::blocking::Client::new()
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{:?}", response.status());
    response.headers()["X-Subject-Token"]
        .to_str()
        .unwrap()
        .to_string()
}

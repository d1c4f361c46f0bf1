//! The Compute (Nova) stand-in of tests/harness/compute.sh, started once per test binary
//! beside the real Keystone + Glance, and registered in Keystone's catalog (with the image
//! service) in a region of its own, so suites that expect no compute service are unaffected.
//! It lives as long as the test binary: it stops, destroying every host it booted, when
//! its stdin (held here) closes.
//!
//! Environment: UWORKER_IMAGE_TEST_COMPUTE_NET (default 127.0.3): the /24 of loopback addresses
//! it serves on (.1), gives its servers (.10-.99) and its floating IPs (.200-.250).
//! A second stand-in (`second_compute`, the regions scenarios) serves a second region of
//! the same cloud, with its own Glance, on UWORKER_IMAGE_TEST_COMPUTE_NET_TWO (127.0.4).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;
use uworker_image::openstack::client::Cloud;

use super::openstack::{nova_service_credentials, openrc, os_env};
use super::systemd_host::Ssh;

/// The catalog region that has a compute service (and the image service).
pub const REGION: &str = "RegionE2E";
/// The second region: its own Glance (`openstack.sh start-second-region`) and stand-in.
pub const REGION_TWO: &str = "RegionTwo";

pub struct Compute {
    pub url: String,
    /// The catalog region it serves.
    pub region: &'static str,
    http: reqwest::blocking::Client,
    /// Held open for the binary's lifetime: the stand-in stops when it closes.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

fn harness(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/harness")
        .join(name)
}

fn net() -> String {
    std::env::var("UWORKER_IMAGE_TEST_COMPUTE_NET").unwrap_or_else(|_| "127.0.3".into())
}

fn net_two() -> String {
    std::env::var("UWORKER_IMAGE_TEST_COMPUTE_NET_TWO").unwrap_or_else(|_| "127.0.4".into())
}

/// Address `.host` of the suite's loopback /24 (.2-.9 and .100-.199 are free for tests).
pub fn address(host: u8) -> String {
    format!("{}.{host}", net())
}

fn rc(key: &str) -> String {
    openrc()
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{key} missing from the test cloud's RC file"))
}

/// The stand-in, started on first use.
pub fn compute() -> &'static Compute {
    static COMPUTE: OnceLock<Compute> = OnceLock::new();
    COMPUTE.get_or_init(|| start(REGION, &net(), "compute"))
}

/// The second region's stand-in, its Glance started first; on first use.
pub fn second_compute() -> &'static Compute {
    static COMPUTE: OnceLock<Compute> = OnceLock::new();
    COMPUTE.get_or_init(|| {
        super::openstack::second_region_glance();
        start(REGION_TWO, &net_two(), "compute-two")
    })
}

/// A stand-in serving `region` on the loopback /24 `net`, its state in `state_name`.
fn start(region: &'static str, net: &str, state_name: &str) -> Compute {
    let auth_url = rc("OS_AUTH_URL");
    let base = std::env::var("UWORKER_IMAGE_TEST_OPENSTACK").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("uworker-image-openstack")
            .display()
            .to_string()
    });
    let state = Path::new(&base).join(state_name);
    std::fs::create_dir_all(&state).unwrap();
    let url_file = state.join("url");
    let _ = std::fs::remove_file(&url_file);
    let log = std::fs::File::create(state.join("standin.out")).unwrap();
    let mut child = Command::new(harness("compute.sh"))
        .arg("run")
        .args(["--listen", &format!("{net}.1")])
        .arg("--url-file")
        .arg(&url_file)
        .arg("--state")
        .arg(&state)
        .args(["--keystone", &auth_url, "--region", region])
        .arg("--host-script")
        .arg(harness("systemd-host.sh"))
        .args(["--addresses", &format!("{net}.10-{net}.99")])
        .args(["--floating-addresses", &format!("{net}.200-{net}.250")])
        .arg("--service-credentials")
        .arg(nova_service_credentials())
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("tests/harness/compute.sh runs");
    let stdin = child.stdin.take().unwrap();
    // The first run installs nova's venv (about a minute).
    let until = Instant::now() + Duration::from_secs(600);
    let url = loop {
        if let Ok(text) = std::fs::read_to_string(&url_file) {
            break text.trim().to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let _ = std::fs::File::open(state.join("standin.out"))
                .and_then(|mut f| f.read_to_string(&mut out));
            panic!("the Compute stand-in exited ({status}) before serving:\n{out}");
        }
        assert!(Instant::now() < until, "the Compute stand-in did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    for (kind, name, endpoint) in [
        ("compute", "nova", format!("{url}/v2.1")),
        // Packer's openstack builder wants a network endpoint even without floating IPs.
        ("network", "neutron", format!("{url}/networking")),
    ] {
        let out = Command::new(harness("openstack.sh"))
            .args(["register", region, kind, name, &endpoint])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "registering {kind} in Keystone failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Compute {
        url,
        region,
        http: reqwest::blocking::Client::new(),
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    }
}

/// What the stand-in saw and holds: servers, key pairs, running containers, every call,
/// schema violations, calls it does not implement, its own failures.
#[derive(Debug)]
pub struct Report(pub Value);

impl Report {
    pub fn list(&self, key: &str) -> &Vec<Value> {
        self.0[key].as_array().unwrap()
    }

    pub fn calls(&self, operation: &str) -> Vec<&Value> {
        self.list("calls")
            .iter()
            .filter(|c| c["operation"] == operation)
            .collect()
    }

    /// The HTTP status of each call of `operation`, in the order they came.
    pub fn statuses(&self, operation: &str) -> Vec<u64> {
        self.calls(operation)
            .iter()
            .map(|c| c["status"].as_u64().unwrap())
            .collect()
    }

    /// Nothing left behind, nothing off-spec: the end state of every scenario.
    pub fn assert_clean(&self) {
        for key in [
            "servers",
            "keypairs",
            "containers",
            "floating_ips",
            "violations",
            "unimplemented",
            "errors",
        ] {
            assert!(
                self.list(key).is_empty(),
                "the Compute stand-in reports {key}: {:#}",
                self.0[key]
            );
        }
    }
}

impl Compute {
    fn control(&self, path: &str) -> String {
        format!("{}/_standin/{path}", self.url)
    }

    pub fn report(&self) -> Report {
        let response = self.http.get(self.control("report")).send().unwrap();
        assert!(response.status().is_success());
        Report(response.json().unwrap())
    }

    /// Waits (up to `within`) until no server, key pair or container is left: a cancelled
    /// packer may exit while the stand-in still tears the host down.
    pub fn settled_report(&self, within: Duration) -> Report {
        let until = Instant::now() + within;
        loop {
            let report = self.report();
            let busy = ["servers", "keypairs", "containers", "floating_ips"]
                .iter()
                .any(|k| !report.list(k).is_empty());
            if !busy || Instant::now() >= until {
                return report;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Forgets calls, violations and faults: the start of a scenario.
    pub fn reset(&self) {
        let response = self.http.post(self.control("reset")).send().unwrap();
        assert!(response.status().is_success());
    }

    /// Makes every server and key pair the stand-in holds `seconds` older (a run that
    /// died hours ago, without waiting hours).
    pub fn age(&self, seconds: u64) {
        let response = self
            .http
            .post(self.control("age"))
            .json(&json!({ "seconds": seconds }))
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{:?}", response.text());
    }

    /// `create_500`: HTTP 500 on the next N server creates; `boot_error`: the next N
    /// servers go to ERROR; `list_500`: HTTP 500 on the next N server lists.
    pub fn inject(&self, faults: Value) {
        let response = self
            .http
            .post(self.control("faults"))
            .json(&faults)
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{:?}", response.text());
    }

    /// The application credential's OS_* variables, in the region with compute.
    pub fn os_env(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = os_env("appcred")
            .into_iter()
            .filter(|(k, _)| k != "OS_REGION_NAME")
            .collect();
        vars.push(("OS_REGION_NAME".into(), self.region.into()));
        vars
    }
}

/// Faults as JSON, e.g. `faults(&[("create_500", 1)])`.
pub fn faults(list: &[(&str, u32)]) -> Value {
    let mut map = serde_json::Map::new();
    for (name, count) in list {
        map.insert(name.to_string(), json!(count));
    }
    Value::Object(map)
}

/// A server of the stand-in booted through Nova's API as a user boots one: an ed25519 key
/// pair of its own imported first, the key reaching the host only through cloud-init.
/// Reached over SSH as `ubuntu` on its fixed address. Deleted, with its key pair, when
/// dropped.
pub struct StandInServer<'a> {
    cloud: &'a Cloud,
    compute_url: String,
    pub id: String,
    pub name: String,
    pub keypair: String,
    /// The key pair's public key (`ssh-ed25519 AAAA... comment`).
    pub public_key: String,
    pub ssh: Ssh,
    _keys: TempDir,
}

impl<'a> StandInServer<'a> {
    /// Imports a key pair named after `name`, creates the server from `image_id` (flavor
    /// 1) with `user_data` (if any), and waits until it is ACTIVE and takes the key.
    pub fn boot(
        cloud: &'a Cloud,
        image_id: &str,
        name: &str,
        user_data: Option<&str>,
    ) -> StandInServer<'a> {
        let compute_url = cloud.endpoint("compute").unwrap();
        let keys = tempfile::tempdir().unwrap();
        let key = keys.path().join("id_ed25519");
        super::sshd::keygen(&key);
        let public_key = std::fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        let keypair = super::openstack::unique("standin-server-");
        let body = json!({ "keypair": { "name": keypair, "public_key": public_key } });
        cloud
            .call(Method::POST, &format!("{compute_url}/os-keypairs"), |r| {
                r.json(&body)
            })
            .unwrap();
        let mut server = json!({
            "name": name, "imageRef": image_id, "flavorRef": "1", "key_name": keypair,
        });
        if let Some(data) = user_data {
            server["user_data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
        }
        let body = json!({ "server": server });
        let created: Value = cloud
            .call(Method::POST, &format!("{compute_url}/servers"), |r| {
                r.json(&body)
            })
            .unwrap()
            .json()
            .unwrap();
        let mut this = StandInServer {
            cloud,
            id: created["server"]["id"].as_str().unwrap().to_string(),
            compute_url,
            name: name.to_string(),
            keypair,
            public_key,
            ssh: Ssh {
                address: String::new(),
                port: 22,
                user: "ubuntu".into(),
                key,
            },
            _keys: keys,
        };
        this.ssh.address = this.wait_active();
        this.wait_for_login();
        this
    }

    /// GET /servers/{id}: the server's JSON.
    pub fn show(&self) -> Value {
        self.cloud
            .get_json::<Value>(&format!("{}/servers/{}", self.compute_url, self.id))
            .unwrap()["server"]
            .clone()
    }

    /// Its fixed address, once ACTIVE.
    fn wait_active(&self) -> String {
        let until = Instant::now() + Duration::from_secs(300);
        loop {
            let server = self.show();
            match server["status"].as_str().unwrap() {
                "ACTIVE" => {
                    let address = &server["addresses"]["private"][0]["addr"];
                    return address.as_str().unwrap().to_string();
                }
                "BUILD" => {}
                other => panic!("server {} went {other}: {server:#}", self.id),
            }
            assert!(
                Instant::now() < until,
                "server {} never became ACTIVE",
                self.id
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// sshd answers once the host boots; cloud-init writes the key before sshd starts,
    /// but a login is what proves it.
    fn wait_for_login(&self) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.ssh.run(&["true"], "");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < until,
                "the key of server {} never logged in: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for StandInServer<'_> {
    fn drop(&mut self) {
        let server = format!("{}/servers/{}", self.compute_url, self.id);
        let keypair = format!("{}/os-keypairs/{}", self.compute_url, self.keypair);
        for url in [server, keypair] {
            let deleted = self.cloud.call(Method::DELETE, &url, |r| r);
            assert!(
                deleted.is_ok() || std::thread::panicking(),
                "DELETE {url}: {deleted:?}"
            );
        }
    }
}

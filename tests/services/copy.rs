//! `copy_of` targets against the suite's real Keystone and two real Glances: target `one`
//! in RegionOne (the environment's region), a copy of it in RegionTwo (the second Glance,
//! `openstack.sh start-second-region`). The source's image is uploaded here as a build
//! leaves it (marked, verified, with random bytes); `build --target` of the copy streams
//! it across and proves it.
//!
//! Between the tool and the copy's Glance the network is made to misbehave with a
//! loopback proxy (`common::proxy`) registered in Keystone as the image service of a
//! region of its own (`RegionFlip`, `RegionSlow`) in front of the second Glance: the tool
//! finds it in the catalog as it finds any region, and no test-only switch is needed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::common::openstack::{
    cloud, create_image_with, env_pairs, os_env, second_region_glance, unique,
};
use crate::common::proxy::{register_region, Mode, Proxy};
use crate::common::{procs, run_tool, tool, Fixture};
use uworker_image::openstack::client::Cloud;
use uworker_image::openstack::glance::{Glance, Image};

const REGION_ONE: &str = "RegionOne";

/// The second Glance's region and URL, started on first use.
fn region_two() -> (&'static str, &'static str) {
    let (region, url) = second_region_glance();
    (region.as_str(), url.as_str())
}

/// A definition `name` whose target `one` is built in the environment's region and
/// whose target `copy` copies it into `region`.
fn definition(name: &str, region: &str) -> Fixture {
    Fixture::new(&format!(
        "name = \"{name}\"\n\
         [target.one]\n\
         source_image = \"9d1e9ab0-5f57-4c6e-9a8a-0a1b2c3d4e5f\"\n\
         flavor = \"c1.small\"\n\
         [target.copy]\n\
         copy_of = \"one\"\n\
         region = \"{region}\"\n\
         image_tags = [\"copied\"]\n\
         metadata = {{ purpose = \"east\" }}\n\
         [worker]\nrequired = []\n"
    ))
}

fn vars() -> Vec<(String, String)> {
    os_env("password")
}

/// `--output json ARGS` of the tool in the test cloud's environment.
fn json(def: &Fixture, args: &[&str]) -> (i32, serde_json::Value, String) {
    let vars = vars();
    let all = [&["--output", "json"], args].concat();
    let run = run_tool(def.path(), &all, &env_pairs(&vars));
    let value = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run.code, value, run.all())
}

/// Random bytes (xorshift: no two images alike, no dependency).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The source's image as a build leaves it: active, `data` uploaded, marked with the
/// definition, target `one`, `fingerprint` and `status`.
fn source_image(
    cloud: &Cloud,
    name: &str,
    fingerprint: &str,
    status: &str,
    data: Vec<u8>,
) -> Image {
    let body = serde_json::json!({
        "name": format!("{name}-one-20261207-000000"),
        "disk_format": "raw", "container_format": "bare", "min_disk": 1,
        "uworker_image": name, "uworker_target": "one",
        "uworker_fingerprint": fingerprint, "uworker_status": status,
        "os_distro": "debian", "os_version": "12",
    });
    create_image_with(cloud, &body, Some(data))
}

/// Every image of definition `name` in `cloud`'s Glance, whatever its status.
fn images_of(cloud: &Cloud, name: &str) -> Vec<Image> {
    Glance::new(cloud)
        .unwrap()
        .list(&[("uworker_image", name)], |_| true)
        .unwrap()
}

/// The images of one definition in both regions, deleted when the test ends.
struct Images {
    name: String,
    one: Cloud,
    two: Cloud,
}

impl Drop for Images {
    fn drop(&mut self) {
        for cloud in [&self.one, &self.two] {
            for image in images_of(cloud, &self.name) {
                let _ = Glance::new(cloud).unwrap().delete(&image.id);
            }
        }
    }
}

/// A definition copying into `region`, its source's image (`size` random bytes, marked
/// `status`) in RegionOne, and the guard that deletes both regions' images.
fn scenario(prefix: &str, region: &str, size: usize, status: &str) -> (Fixture, Images, Image) {
    let (two_region, _) = region_two();
    let name = unique(prefix);
    let def = definition(&name, region);
    let (code, plan, out) = json(&def, &["--target", "one", "plan"]);
    assert_eq!(code, 0, "{out}");
    let fingerprint = plan["fingerprint"].as_str().unwrap().to_string();
    let one = cloud();
    let two = one.in_region(Some(two_region));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let source = source_image(&one, &name, &fingerprint, status, random_bytes(size, seed));
    (def, Images { name, one, two }, source)
}

/// The image's bytes as its Glance serves them.
fn download(cloud: &Cloud, id: &str) -> Vec<u8> {
    let base = cloud.endpoint("image").unwrap();
    cloud
        .call(Method::GET, &format!("{base}/v2/images/{id}/file"), |r| r)
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec()
}

/// `build --target copy ARGS` of `def` in the background, past its line saying the copy
/// started (the destination image exists then): the child and its stderr so far.
#[allow(clippy::zombie_processes)] // the caller signals and waits for the child
fn copy_started(
    def: &Fixture,
    args: &[&str],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStderr>,
    String,
) {
    let vars = vars();
    let mut cmd = tool(&env_pairs(&vars));
    cmd.arg("--dir")
        .arg(def.path())
        .args(["--target", "copy", "build"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains("attempt 1 of") {
            return (child, stderr, seen);
        }
    }
}

#[test]
fn a_copy_is_streamed_on_a_miss_proven_and_marked_and_skipped_on_a_hit() {
    let (two_region, _) = region_two();
    let (def, images, source) =
        scenario("copy-miss-", two_region, 3 * 1024 * 1024 + 17, "verified");

    // The copy's plan looks for the source's fingerprint in the copy's region.
    let (code, plan, out) = json(&def, &["--target", "copy", "plan"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(plan["action"], "build", "{plan:#}");
    assert_eq!(plan["target"], "copy");
    assert_eq!(
        plan["fingerprint"],
        source.property("uworker_fingerprint").unwrap()
    );
    assert!(
        plan["reason"]
            .as_str()
            .unwrap()
            .contains("copies target `one`"),
        "{plan:#}"
    );

    let started = Instant::now();
    let (code, record, out) = json(&def, &["--target", "copy", "build"]);
    eprintln!("copy of 3 MiB: {:?}", started.elapsed());
    assert_eq!(code, 0, "{out}");
    assert_eq!(record["built"], true, "{record:#}");
    let copy_id = record["image_id"].as_str().unwrap().to_string();
    let from = format!("{}@{REGION_ONE}", source.id);
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("copied from {from}")),
        "{record:#}"
    );
    let regions: Vec<(&str, &str, &str)> = record["region_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["target"].as_str().unwrap(),
                r["region"].as_str().unwrap(),
                r["image_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        regions,
        [
            ("one", REGION_ONE, source.id.as_str()),
            ("copy", two_region, copy_id.as_str())
        ]
    );

    // In the second Glance: the same bytes, as Glance itself hashed them, and the marks.
    let copy = Glance::new(&images.two).unwrap().get(&copy_id).unwrap();
    assert_eq!(copy.status, "active");
    for key in [
        "os_hash_algo",
        "os_hash_value",
        "disk_format",
        "container_format",
    ] {
        assert_eq!(copy.property(key), source.property(key), "{key}");
    }
    assert_eq!(copy.properties["size"], source.properties["size"]);
    assert_eq!(copy.properties["min_disk"], 1);
    let marks = [
        (
            "uworker_fingerprint",
            source.property("uworker_fingerprint").unwrap(),
        ),
        ("uworker_image", images.name.as_str()),
        ("uworker_target", "copy"),
        ("uworker_copied_from", from.as_str()),
        ("uworker_status", "verified"),
        ("os_distro", "debian"),
        ("purpose", "east"),
    ];
    for (key, value) in marks {
        assert_eq!(copy.property(key), Some(value), "{key}: {copy:#?}");
    }
    let short = &source.property("uworker_fingerprint").unwrap()["sha256:".len()..][..12];
    assert!(copy.tags.contains(&"copied".to_string()), "{:?}", copy.tags);
    assert!(
        copy.tags
            .iter()
            .any(|t| t.starts_with("uworker-") && short.starts_with(&t["uworker-".len()..])),
        "{:?}",
        copy.tags
    );
    assert_eq!(
        download(&images.two, &copy_id),
        download(&images.one, &source.id)
    );
    // Nothing else was left in the copy's region.
    assert_eq!(images_of(&images.two, &images.name).len(), 1);

    // A hit: the second build finds the copy and skips.
    let (code, again, out) = json(&def, &["--target", "copy", "build"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(again["action"], "skip", "{again:#}");
    assert_eq!(again["image_id"], copy_id.as_str());
    assert_eq!(images_of(&images.two, &images.name).len(), 1);

    // prune, in the copy's region: an older copy goes, the current one (of the source's
    // fingerprint) stays even with --keep 0.
    let old = create_image_with(
        &images.two,
        &serde_json::json!({
            "name": format!("{}-copy-20200101-000000", images.name),
            "disk_format": "raw", "container_format": "bare",
            "uworker_image": images.name, "uworker_target": "copy",
            "uworker_fingerprint": "sha256:00",
        }),
        Some(vec![1u8; 64]),
    );
    let (code, decisions, out) = json(&def, &["--target", "copy", "prune", "--keep", "0"]);
    assert_eq!(code, 0, "{out}");
    let deleted: Vec<&str> = decisions
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["delete"] == true)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, [old.id.as_str()], "{decisions:#}");
    let left: Vec<String> = images_of(&images.two, &images.name)
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(left, std::slice::from_ref(&copy_id));
}

#[test]
fn only_a_verified_source_is_copied_and_a_missing_one_is_named() {
    let (two_region, _) = region_two();
    let (def, images, source) = scenario("copy-candidate-", two_region, 4096, "candidate");
    let (code, _, out) = json(&def, &["--target", "copy", "build"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "image {} is candidate, and only a verified image is copied",
            source.id
        )),
        "{out}"
    );
    assert!(images_of(&images.two, &images.name).is_empty());
    // No source image at all: the copy names the build to run first.
    Glance::new(&images.one)
        .unwrap()
        .delete(&source.id)
        .unwrap();
    let (code, _, out) = json(&def, &["--target", "copy", "build"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("build target `one` first"), "{out}");
    assert!(images_of(&images.two, &images.name).is_empty());
}

#[test]
fn a_bit_flipped_on_the_way_to_the_copy_is_caught_and_the_copy_deleted() {
    let (_, url_two) = region_two();
    let proxy = Proxy::start(url_two, Mode::FlipBit { at: 1_000_003 });
    register_region("RegionFlip", &proxy.url);
    let (def, images, source) = scenario("copy-flip-", "RegionFlip", 2 * 1024 * 1024, "verified");
    let (code, record, out) = json(&def, &["--target", "copy", "build"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        proxy.flipped.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{out}"
    );
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "of image {} is not its bytes (the copy's hash against the source's: sha512",
            source.id
        )) && reason.contains("the copy was deleted"),
        "{out}"
    );
    assert_eq!(record["built"], false, "{record:#}");
    // Deleted: nothing of the definition in the second Glance, whatever its status.
    assert!(images_of(&images.two, &images.name).is_empty(), "{out}");
}

#[test]
fn a_cancel_mid_stream_leaves_no_copy_behind() {
    let (_, url_two) = region_two();
    // 32 MiB at 4 MB/s: about 8 s of upload, stopped after the first bytes.
    let proxy = Proxy::start(
        url_two,
        Mode::Throttle {
            bytes_per_second: 4_000_000,
        },
    );
    register_region("RegionSlow", &proxy.url);
    let (def, images, _source) =
        scenario("copy-cancel-", "RegionSlow", 32 * 1024 * 1024, "verified");
    let (mut child, mut stderr, mut seen) = copy_started(&def, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.uploaded.load(std::sync::atomic::Ordering::SeqCst) < 1024 * 1024 {
        assert!(Instant::now() < deadline, "no bytes moved:\n{seen}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = Instant::now();
    procs::signal(child.id() as i32, libc::SIGINT).unwrap();
    let status = child.wait().unwrap();
    let took = stopped.elapsed();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    seen.push_str(&rest);
    eprintln!("SIGINT mid-stream: {status:?} after {took:?}\n{seen}");
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let moved = proxy.uploaded.load(std::sync::atomic::Ordering::SeqCst);
    assert!(moved < 32 * 1024 * 1024, "the whole image went: {moved}");
    assert!(
        seen.contains("stopped by a signal; the half-made copy was deleted"),
        "{seen}"
    );
    assert!(images_of(&images.two, &images.name).is_empty(), "{seen}");
}

#[test]
fn a_copy_half_uploaded_by_a_dead_run_is_swept_in_its_region_once_its_deadline_passed() {
    // sweep lists servers and key pairs too: the second region gets its Compute stand-in.
    crate::common::compute::second_compute();
    let (two_region, _) = region_two();
    let (def, images, _source) = scenario("copy-sweep-", two_region, 64 * 1024 * 1024, "verified");
    let vars = vars();
    // A run whose deadline is 8 s away, killed (SIGKILL: no cleanup) as its copy starts.
    let killed_at = Instant::now();
    let (mut child, _stderr, seen) = copy_started(&def, &["--timeout", "8s"]);
    procs::signal(child.id() as i32, libc::SIGKILL).unwrap();
    child.wait().unwrap();
    let left = images_of(&images.two, &images.name);
    assert_eq!(left.len(), 1, "{left:?}\n{seen}");
    let half = &left[0];
    assert!(
        ["queued", "saving", "uploading"].contains(&half.status.as_str()),
        "{half:?}"
    );
    assert!(half.property("uworker_run_id").is_some(), "{half:?}");
    assert!(half.property("uworker_deadline").is_some(), "{half:?}");

    let sweep = |what: &str| {
        let run = run_tool(
            def.path(),
            &["--target", "copy", "--output", "json", "sweep"],
            &env_pairs(&vars),
        );
        assert_eq!(run.code, 0, "{what}: {}", run.all());
        run.all()
    };
    // Its run's deadline has not passed: spared.
    let early = sweep("before the deadline");
    assert!(early.contains("has not passed"), "{early}");
    assert_eq!(images_of(&images.two, &images.name).len(), 1);
    // Past it: swept, in the copy's region.
    if let Some(wait) = Duration::from_secs(10).checked_sub(killed_at.elapsed()) {
        std::thread::sleep(wait);
    }
    let late = sweep("after the deadline");
    assert!(late.contains(&half.id), "{late}");
    assert!(images_of(&images.two, &images.name).is_empty(), "{late}");
}

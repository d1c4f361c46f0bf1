//! A Glance image copied to another region's Glance (`openstack::image_copy`, what
//! `build` does for a `copy_of` target), against the suite's two loopback Glances:
//! throughput and this process's peak RSS, with `curl | curl` over the same loopback as
//! the reference.
//!
//!     tests/harness/openstack.sh start && tests/harness/openstack.sh start-second-region
//!     cargo bench --bench copy_regions [-- --mib 512,1024 --region RegionTwo]
//!
//! Reads the harness's openrc.sh (UWORKER_IMAGE_TEST_OPENSTACK, as the suite does). For
//! each size: a source image of random bytes uploaded (streamed) in the openrc's region,
//! copied into `--region`, then the same bytes by `curl | curl` into another image there;
//! all three deleted. The peak RSS is measured over the copy alone (VmHWM reset through
//! /proc/self/clear_refs before it): it must not grow with the image.

use std::io::Read;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::blocking::Body;
use reqwest::Method;
use uworker_image::env::Env;
use uworker_image::http::retry::Retry;
use uworker_image::openstack::client::Cloud;
use uworker_image::openstack::credentials::Credentials;
use uworker_image::openstack::glance::{Glance, Image};
use uworker_image::openstack::image_copy::{self, Job, Limits};

/// Random bytes, generated as they are read (xorshift64): no buffer of the image's size.
struct RandomBytes {
    left: u64,
    state: u64,
}

impl Read for RandomBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize / 8 * 8;
        let n = if n == 0 {
            self.left.min(buf.len() as u64) as usize
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let bytes = self.state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn status_kib(key: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} in /proc/self/status"))?;
    Ok(line.split_whitespace().nth(1).context("a value")?.parse()?)
}

/// Resets VmHWM to the current RSS (Linux: "5" to clear_refs).
fn reset_peak() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")
}

fn openrc() -> Result<Vec<(String, String)>> {
    let dir = std::env::var("UWORKER_IMAGE_TEST_OPENSTACK").unwrap_or_else(|_| {
        format!(
            "{}/uworker-image-openstack",
            std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())
        )
    });
    let text = std::fs::read_to_string(format!("{dir}/openrc.sh"))
        .with_context(|| format!("{dir}/openrc.sh: start the harness first"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.starts_with("OS_APPLICATION_CREDENTIAL"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// An image of `size` random bytes in `cloud`'s Glance, uploaded as a stream.
fn source(cloud: &Cloud, size: u64, seed: u64) -> Result<Image> {
    let glance = Glance::new(cloud)?;
    let image = glance.create(&serde_json::json!({
        "name": format!("bench-copy-{size}"), "disk_format": "raw", "container_format": "bare",
    }))?;
    let transfers = cloud.for_transfers(Duration::from_secs(120))?;
    let reader = RandomBytes {
        left: size,
        state: seed | 1,
    };
    transfers.send_once(Method::PUT, &glance.file_url(&image.id), |r| {
        r.header("Content-Type", "application/octet-stream")
            .body(Body::sized(reader, size))
    })?;
    Ok(glance.get(&image.id)?)
}

/// A token of the openrc's login, for curl.
fn token(vars: &[(String, String)]) -> Result<String> {
    let get = |k: &str| {
        vars.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": get("OS_USERNAME"), "domain": {"name": get("OS_USER_DOMAIN_NAME")},
        "password": get("OS_PASSWORD")}}},
        "scope": {"project": {"name": get("OS_PROJECT_NAME"), "domain": {"name": get("OS_PROJECT_DOMAIN_NAME")}}}}});
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/auth/tokens", get("OS_AUTH_URL")))
        .json(&body)
        .send()?;
    Ok(response
        .headers()
        .get("X-Subject-Token")
        .context("no token")?
        .to_str()?
        .to_string())
}

fn main() -> Result<()> {
    let mut sizes: Vec<u64> = vec![512, 1024];
    let mut region = "RegionTwo".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mib" => {
                sizes = args
                    .next()
                    .context("--mib N[,N...]")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--region" => region = args.next().context("--region NAME")?,
            _ => {} // --bench from cargo
        }
    }
    let vars = openrc()?;
    let credentials = Credentials::from_env(&Env::from_pairs(vars.iter().cloned()))
        .map_err(|e| anyhow::anyhow!("openrc.sh: {e}"))?
        .context("no credentials in openrc.sh")?;
    let one = Cloud::connect(&credentials, Retry::default())?;
    let two = one.in_region(Some(&region));
    let token = token(&vars)?;
    println!(
        "copy between two loopback Glances ({} -> {region}); peak RSS over the copy alone",
        one.region().unwrap_or("default")
    );
    for mib in sizes {
        let size = mib * 1024 * 1024;
        let seed = Instant::now().elapsed().as_nanos() as u64 ^ size;
        let uploaded = Instant::now();
        let image = source(&one, size, seed)?;
        let upload_secs = uploaded.elapsed().as_secs_f64();
        let job = Job {
            source: &one,
            image: &image,
            destination: &two,
            name: format!("bench-copy-{size}-tool"),
            visibility: None,
            properties: vec![],
            tags: vec![],
        };
        let rss_before = status_kib("VmRSS:")?;
        reset_peak()?;
        let started = Instant::now();
        let copied = image_copy::copy(
            &job,
            &Limits::until(Instant::now() + Duration::from_secs(3600)),
            Arc::new(|| false),
            Arc::new(|line: &str| eprintln!("{line}")),
        );
        let tool_secs = started.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM:")?;
        let copy = copied?;

        // The reference: curl | curl, the same bytes into a new image of region two.
        let glance_two = Glance::new(&two)?;
        let target = glance_two.create(&serde_json::json!({
            "name": format!("bench-copy-{size}-curl"), "disk_format": "raw", "container_format": "bare",
        }))?;
        let from = Glance::new(&one)?.file_url(&image.id);
        let to = glance_two.file_url(&target.id);
        let started = Instant::now();
        let status = Command::new("bash")
            .args([
                "-o",
                "pipefail",
                "-c",
                "curl -sfS -H \"X-Auth-Token: $TOKEN\" \"$FROM\" | curl -sfS -o /dev/null -X PUT -H \"X-Auth-Token: $TOKEN\" -H 'Content-Type: application/octet-stream' -T - \"$TO\"",
            ])
            .env("TOKEN", &token)
            .env("FROM", &from)
            .env("TO", &to)
            .status()?;
        let curl_secs = started.elapsed().as_secs_f64();
        if !status.success() {
            bail!("curl | curl failed: {status}");
        }
        let curl_copy = glance_two.get(&target.id)?;
        let same = curl_copy.property("os_hash_value") == image.property("os_hash_value")
            && copy.property("os_hash_value") == image.property("os_hash_value");
        let mb = size as f64 / 1e6;
        println!(
            "{mib} MiB: tool {tool_secs:.1} s ({:.1} MB/s), curl | curl {curl_secs:.1} s ({:.1} MB/s), ratio {:.2}; peak RSS {:.1} MiB (RSS before {:.1} MiB); source upload {upload_secs:.1} s; hashes equal: {same}",
            mb / tool_secs,
            mb / curl_secs,
            curl_secs / tool_secs,
            peak as f64 / 1024.0,
            rss_before as f64 / 1024.0,
        );
        for (cloud, id) in [(&one, &image.id), (&two, &copy.id), (&two, &target.id)] {
            Glance::new(cloud)?.delete(id)?;
        }
        if !same {
            bail!("a copy is not the source's bytes");
        }
    }
    Ok(())
}

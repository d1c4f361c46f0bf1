//! The built image: two clones of it are two machines, and it holds no URL credentials
//! and no upload directory.

use super::*;

/// The names the two servers booted from one generalized image get, and the hostnames
/// Nova makes of them (sanitized: lower case, `_`, `.` and spaces to `-`).
const CLONES: [(&str, &str); 2] = [
    ("uworker Clone_1", "uworker-clone-1"),
    ("uworker Clone.2", "uworker-clone-2"),
];

/// Prints, one line each, what a generalized image must not hold under root `$1` (empty:
/// the host it runs on): packer's public key `$2` in an authorized_keys, a package in
/// apt's cache, apt's lists, the worker's uploads in /tmp.
const LEFTOVERS: &str = r#"
set -euo pipefail
shopt -s nullglob
r=$1 key=$2
for dir in "$r/root" "$r/home" "$r/etc" "$r/var/lib"; do
  find "$dir" -xdev -type f -name 'authorized_keys*' -exec grep -lF -- "$key" {} + |
    sed 's/^/packer key in: /' || true
done
for f in "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/archives/partial/*.deb; do
  echo "package: $f"
done
find "$r/var/lib/apt/lists" -mindepth 1 ! -name lock ! -path "$r/var/lib/apt/lists/partial" |
  sed 's/^/apt list: /'
for f in "$r"/tmp/uworker*; do echo "upload: $f"; done
"#;

/// Prints, one line each, what identifies the build server in an image root `$1` and a
/// clone would share: cloud-init's record of its instance, its hostname `$2` (in
/// /etc/hostname or /etc/hosts), docker's engine identity, its DHCP leases.
const BUILD_IDENTITY: &str = r#"
set -euo pipefail
shopt -s nullglob
r=$1 build_host=$2
for f in "$r"/var/lib/cloud/instances/* "$r"/var/lib/cloud/instance \
  "$r"/var/lib/cloud/data/instance-id "$r"/etc/docker/key.json "$r"/var/lib/docker/engine-id \
  "$r"/var/lib/dhcp/* "$r"/var/lib/dhcpcd*/* "$r"/var/lib/NetworkManager/*lease*; do
  if [ -e "$f" ] || [ -L "$f" ]; then echo "left: ${f#"$r"}"; fi
done
for f in "$r"/var/lib/systemd/credential.secret "$r"/var/lib/cloud/seed/*/*; do
  if [ -f "$f" ]; then echo "left: ${f#"$r"}"; fi
done
if grep -qwF -- "$build_host" "$r/etc/hostname"; then echo "hostname: $(cat "$r/etc/hostname")"; fi
grep -wF -- "$build_host" "$r/etc/hosts" | sed 's/^/hosts: /' || true
grep -qE '^127\.0\.0\.1[[:space:]](.*[[:space:]])?localhost([[:space:]]|$)' "$r/etc/hosts" ||
  echo "hosts: no 127.0.0.1 localhost"
"#;

/// Runs LEFTOVERS against the image's root on this machine.
fn leftovers_in(root: &Path, key: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["-c", LEFTOVERS, "leftovers"])
        .arg(root)
        .arg(key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(&root.display().to_string(), "")
}

/// The generalize step's proof: one build of the default definition, two servers booted
/// from its image through the stand-in (each with a key pair of its own, as a user boots
/// them) are two machines: each ran cloud-init's per-instance stage with its own
/// instance-id, authorizes only its own key pair, has its own hostname, machine-id and
/// SSH host keys; both run the worker; and neither holds what the build left (packer's
/// key, apt's cache and lists, the uploads, the build server's hostname, instance record,
/// docker identity and leases).
#[test]
fn two_clones_are_two_machines() {
    let started = Instant::now();
    let s = Scenario::start();
    let DefaultBuild {
        service,
        run,
        image_id,
        took: built,
        ..
    } = build_default_definition(&s, "e2e-clones-", BASE_IMAGE);
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("90-generalize.sh: "))
        .collect();
    eprintln!("two clones: {}", said.join("\n"));
    assert!(
        said.last()
            .is_some_and(|l| l.ends_with("the image is generalized")),
        "the generalize step ran to its end:\n{}",
        run.stderr
    );
    assert!(
        said.iter()
            .any(|l| l.ends_with("cleaned cloud-init's state and logs")),
        "the generalize step found cloud-init on the build server:\n{}",
        said.join("\n")
    );
    let image = Glance::new(&s.cloud).unwrap().get(&image_id).unwrap();
    eprintln!(
        "two clones: image size in Glance {} bytes",
        image.properties["size"]
    );
    let report = s.finish();
    let packer_keys: Vec<String> = report
        .list("public_keys")
        .iter()
        .map(|k| {
            k.as_str()
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string()
        })
        .collect();
    // The build's key pair and server first, then the verification's.
    assert_eq!(
        packer_keys.len(),
        2,
        "the build and its verification made one key pair each: {packer_keys:?}"
    );
    let packer_key = &packer_keys[0];
    let build_servers = report.list("created");
    assert_eq!(build_servers.len(), 2, "{build_servers:?}");
    assert!(
        build_servers[1]["name"]
            .as_str()
            .unwrap()
            .contains("-verify-"),
        "{build_servers:?}"
    );
    let build_host = build_servers[0]["hostname"].as_str().unwrap();

    // The image itself: no machine-id, no host keys, nothing the build left, nothing that
    // names the build server.
    let work = tempfile::tempdir().unwrap();
    let image_root = work.path().join("image");
    unpack_image(&s.cloud, &image_id, &image_root);
    let mut found = leftovers_in(&image_root, packer_key);
    let machine_id = std::fs::read_to_string(image_root.join("etc/machine-id")).unwrap();
    if !machine_id.is_empty() {
        found += &format!("machine-id: {machine_id:?}\n");
    }
    for entry in std::fs::read_dir(image_root.join("etc/ssh"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("ssh_host_") {
            found += &format!("host key: {name}\n");
        }
    }
    let identity = std::process::Command::new("bash")
        .args(["-c", BUILD_IDENTITY, "identity"])
        .arg(&image_root)
        .arg(build_host)
        .output()
        .unwrap();
    assert!(identity.status.success(), "{identity:?}");
    found += &String::from_utf8(identity.stdout).unwrap();
    assert_eq!(
        found, "",
        "the image holds what identifies or only served the build ({build_host})"
    );
    drop(work);

    // Two servers from it, booted one after the other and running side by side.
    s.compute.reset();
    // The build's verification logged in once from its own server: not a clone's login.
    let earlier = service.requests().len();
    let t_boot = Instant::now();
    let clones: Vec<StandInServer> = CLONES
        .iter()
        .map(|(name, _)| StandInServer::boot(&s.cloud, &image_id, name, None))
        .collect();
    // Each worker logs in once as it starts (and is never restarted, below): two logins
    // are one from each host.
    let until = Instant::now() + Duration::from_secs(90);
    let tokens = loop {
        let tokens: Vec<_> = service
            .requests()
            .into_iter()
            .skip(earlier)
            .filter(|r| r.path == "/token")
            .collect();
        if tokens.len() >= 2 {
            break tokens;
        }
        if Instant::now() > until {
            let status: Vec<String> = clones
                .iter()
                .map(|c| {
                    let out = c.ssh.root("SYSTEMD_COLORS=0 systemctl status --no-pager uworker.service; journalctl -u uworker --no-pager | tail -20");
                    String::from_utf8_lossy(&out.stdout).into_owned()
                })
                .collect();
            panic!(
                "{} of 2 workers logged in:\n{}",
                tokens.len(),
                status.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    for token in &tokens {
        assert_eq!(
            token.basic_auth,
            Some((NASTY_USERNAME.to_string(), NASTY_PASSWORD.to_string())),
            "each worker logs in with exactly the configured credentials"
        );
    }
    let mut machine_ids = Vec::new();
    let mut fingerprints = Vec::new();
    for (clone, (_, hostname)) in clones.iter().zip(CLONES) {
        let host = &clone.ssh;
        assert_first_boot_of(clone, hostname);
        assert_eq!(
            host.root_ok(
                "systemctl is-active uworker.service; \
                 systemctl show --property=NRestarts --value uworker.service"
            ),
            "active\n0\n",
            "the worker of {} runs, never restarted",
            clone.name
        );
        let id = host.root_ok("cat /etc/machine-id").trim().to_string();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "machine-id of {}: {id:?}",
            clone.name
        );
        machine_ids.push(id);
        // The keys sshd serves, as a client sees them.
        let scan = std::process::Command::new("sh")
            .arg("-c")
            .arg("ssh-keyscan -p \"$2\" \"$1\" 2>/dev/null | ssh-keygen -lf - | awk '{print $2}' | sort")
            .args(["keyscan", &host.address, &host.port.to_string()])
            .output()
            .unwrap();
        let mut keys: Vec<String> = String::from_utf8(scan.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        keys.sort();
        assert!(keys.len() >= 2, "{} serves host keys: {keys:?}", clone.name);
        // cloud-init makes a clone's host keys; the image's unit, there and enabled, only
        // fills in where it does not: here its condition found the keys made. (`Result`
        // says `success` even of a unit that does not exist.)
        assert_eq!(
            host.root_ok(
                "systemctl show -p LoadState,UnitFileState,ConditionResult uworker-ssh-host-keys.service | sort"
            ),
            "ConditionResult=no\nLoadState=loaded\nUnitFileState=enabled\n",
            "uworker-ssh-host-keys.service on {}",
            clone.name
        );
        fingerprints.push(keys);
        assert_eq!(
            host.root_ok(&format!(
                "bash -s '' '{packer_key}' <<'CHECK'\n{LEFTOVERS}\nCHECK"
            )),
            "",
            "left on {}",
            clone.name
        );
    }
    assert_ne!(machine_ids[0], machine_ids[1], "two machine-ids");
    assert!(
        fingerprints[0].iter().all(|k| !fingerprints[1].contains(k)),
        "no host key shared: {fingerprints:?}"
    );
    assert_eq!(
        service
            .requests()
            .iter()
            .skip(earlier)
            .filter(|r| r.path == "/token")
            .count(),
        2,
        "no third login"
    );
    let booted = t_boot.elapsed();
    drop(clones);
    s.finish();
    eprintln!(
        "two clones: build {built:?}, two boots and checks {booted:?}, total {:?}",
        started.elapsed()
    );
}

/// A private repository's URL, given in the environment (UWORKER_IMAGE_WORKER_SOURCE),
/// travels to a build step the way WORKER_SOURCE does; the built image's files hold
/// neither its credentials nor the run's upload directory.
#[test]
fn the_image_holds_no_url_credentials_and_no_upload_directory() {
    use common::worker_url::{assert_no_credentials, private_url};
    let s = Scenario::start();
    let name = s.definition_name("e2e-token-");
    let def = Fixture::new(&format!(
        "name = \"{name}\"\n\
         [variables]\n\
         worker_source = \"uworker==1.0\"\n\
         [target.e2e]\n\
         source_image_name = \"{BASE_IMAGE}\"\n\
         flavor = \"c1.small\"\n\
         ssh_username = \"ubuntu\"\n\
         [[provision]]\n\
         worker_config = \"{{{{user `upload_dir`}}}}/uworker.conf\"\n\
         [[provision]]\n\
         script = \"step.sh\"\n\
         sudo = true\n\
         environment = {{ WORKER_SOURCE = \"{{{{user `worker_source`}}}}\" }}\n\
         [verify]\n\
         enabled = false\n"
    ));
    // The step uses the URL (a stamp without the userinfo, as 35-worker.sh writes; the
    // pinned URL has a second `@`, before its commit, so only `//user:token@` goes).
    def.script(
        "step.sh",
        "#!/bin/bash\nset -euo pipefail\ntest -n \"$WORKER_SOURCE\"\n\
         printf '%s\\n' \"$WORKER_SOURCE\" | sed -E 's#//[^/@]*@#//#' >/etc/e2e-stamp\n\
         echo \"provisioned $(hostname)\"\n",
    );
    let url = private_url();
    let mut config = plain_config();
    config.push(("UWORKER_IMAGE_WORKER_SOURCE".into(), url.clone()));
    let (run, rec) = build(&s, def.path(), &config, &[], &[]);
    assert_built(&run, &rec);
    assert_no_credentials("the build's output", &run.all());
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    unpack_image(&s.cloud, rec["image_id"].as_str().unwrap(), &root);
    assert!(
        std::fs::read_to_string(root.join("etc/e2e-stamp"))
            .unwrap()
            .contains("127.0.0.1:9/o/worker.git"),
        "the step got the URL"
    );
    let found = std::process::Command::new("grep")
        .args([
            "-r",
            "-a",
            "-l",
            "-F",
            "-e",
            "x-access-token",
            "-e",
            "T0k$en",
        ])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&found.stdout),
        "",
        "files of the image hold the URL's credentials"
    );
    let uploads: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("uworker-image."))
        .collect();
    assert!(uploads.is_empty(), "{uploads:?}");
    s.finish();
}

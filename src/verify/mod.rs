//! The verification of a built image (pure): which checks a definition's image gets, the
//! user-data of the verification's boot, the build server's identity as the build's
//! output showed it, and the verdict. `ssh` runs one check; `commands::verification`
//! boots the server and deletes it (docs/verify.md).

pub mod ssh;

use std::collections::BTreeSet;

use crate::definition::{Definition, StepKind, Target, VerifySettings};
use crate::record::{CheckOutcome, Verification, VerificationStatus};

/// The built-in checks, one per call (`checks.sh NAME [ARG...]`, as root).
pub const CHECK_SCRIPT: &str = include_str!("checks.sh");

/// The prefix of the lines the build's identity step prints (and `identity` parses).
pub const IDENTITY_PREFIX: &str = "uworker-image-identity: ";

/// The image property holding the moment it passed its verification (RFC 3339, UTC).
pub const VERIFIED_AT_PROPERTY: &str = "uworker_verified_at";

/// The unit the verification's boot keeps from starting (unless `start_worker`).
pub const WORKER_UNIT: &str = "uworker.service";

/// How a check runs on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// SSH answers with the key pair's key (and the host key is taken for the rest).
    Connect,
    /// A check of `CHECK_SCRIPT` with its arguments.
    Builtin(Vec<String>),
    /// The machine-id and host keys, compared with the build server's by the tool.
    Identity,
    /// One of the definition's own scripts (relative to its directory), run as root.
    Script(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub how: How,
}

/// The checks of a target's image, in order. The worker's checks apply when the
/// definition installs the worker (a `worker_config` step runs for the target); with
/// `start_worker` the worker must run, else it must not have started.
pub fn checks(def: &Definition, target: &Target, public_key: &str) -> Vec<Check> {
    let settings = &def.verify;
    let builtin = |name: &str, args: &[&str]| Check {
        name: name.to_string(),
        how: How::Builtin(
            std::iter::once(name)
                .chain(args.iter().copied())
                .map(str::to_string)
                .collect(),
        ),
    };
    let mut list = vec![
        Check {
            name: "ssh".into(),
            how: How::Connect,
        },
        builtin("cloud-init", &[]),
        Check {
            name: "identity".into(),
            how: How::Identity,
        },
        builtin("residue", &[&key_blob(public_key)]),
    ];
    if installs_worker(def, target) {
        list.extend([
            builtin("worker-unit", &[]),
            builtin("worker-config", &[]),
            builtin("worker-import", &[]),
            builtin("job-service-login", &[]),
            builtin(
                if settings.start_worker {
                    "worker-started"
                } else {
                    "worker-not-started"
                },
                &[],
            ),
        ]);
    }
    list.extend(settings.checks.iter().map(|path| Check {
        name: format!("extra:{path}"),
        how: How::Script(path.clone()),
    }));
    list
}

/// Whether the target's steps install the worker (its config goes into the image).
pub fn installs_worker(def: &Definition, target: &Target) -> bool {
    def.steps
        .iter()
        .any(|s| s.runs_on(&target.name) && matches!(s.kind, StepKind::WorkerConfig { .. }))
}

/// `TYPE BASE64` of an OpenSSH public key line (its comment left out).
pub fn key_blob(public_key: &str) -> String {
    public_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The path the verification boot's drop-in makes the worker's unit wait for: it never
/// exists, so the unit's start is skipped (a failed condition, not a failure).
pub const NEVER_PATH: &str = "/run/uworker-image-verification-keeps-the-worker-stopped";

/// The verification boot's cloud-config. By default its `bootcmd` (cloud-init's first
/// stage, before `sysinit.target`) gives the worker's unit a drop-in in /run whose
/// condition never holds, so the worker never polls the job service, whose jobs it would
/// claim for a server deleted minutes later. /run is this boot's only: the image's disk
/// keeps the unit as built. (`systemctl mask --runtime` would not do: a mask in /run does
/// not hide a unit file in /etc/systemd/system, where the unit is installed.) With
/// `start_worker` the worker runs against the staging job service instead: the server's
/// copy of the config (its own disk, deleted with it) gets the staging root first.
pub fn user_data(settings: &VerifySettings) -> String {
    let command = match (&settings.start_worker, &settings.job_api_root) {
        (true, Some(root)) => format!(
            "sed -i \"s|^export UWORKER_JOB_API_ROOT=.*$|export UWORKER_JOB_API_ROOT='{root}'|\" /etc/uworker/uworker.conf"
        ),
        _ => {
            let dir = format!("/run/systemd/system/{WORKER_UNIT}.d");
            format!(
                "mkdir -p {dir} && printf '%s\\n' '[Unit]' 'ConditionPathExists={NEVER_PATH}' >{dir}/uworker-image-verify.conf && systemctl daemon-reload"
            )
        }
    };
    // YAML takes JSON's quoting: the command stays one string, whatever it holds.
    let command = serde_json::to_string(&command).expect("strings serialize");
    format!("#cloud-config\nbootcmd:\n  - {command}\n")
}

/// The build step that prints the build server's identity before anything changes it:
/// its SSH host keys' fingerprints, then its machine-id (the last line of the step).
pub fn identity_step_lines() -> Vec<String> {
    vec![format!(
        "for f in /etc/ssh/ssh_host_*_key.pub; do [ -e \"$f\" ] && echo \"{IDENTITY_PREFIX}host-key $(ssh-keygen -lf \"$f\" | awk '{{print $2}}')\"; done; echo \"{IDENTITY_PREFIX}machine-id $(cat /etc/machine-id)\""
    )]
}

/// A machine's identity: its machine-id and its SSH host keys' fingerprints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub machine_id: String,
    pub host_keys: BTreeSet<String>,
}

/// Collects the build server's identity from the build's output lines, one at a time:
/// the last complete one wins (a retried build runs on a new server).
#[derive(Debug, Default)]
pub struct IdentityCapture {
    pending: BTreeSet<String>,
    pub found: Option<Identity>,
}

impl IdentityCapture {
    pub fn line(&mut self, line: &str) {
        let Some(at) = line.find(IDENTITY_PREFIX) else {
            return;
        };
        let rest = line[at + IDENTITY_PREFIX.len()..].trim();
        if let Some(key) = rest.strip_prefix("host-key ") {
            self.pending.insert(key.trim().to_string());
        } else if let Some(id) = rest.strip_prefix("machine-id ") {
            self.found = Some(Identity {
                machine_id: id.trim().to_string(),
                host_keys: std::mem::take(&mut self.pending),
            });
        }
    }
}

/// The identity a check's output shows (`host-key FP` and `machine-id ID` lines).
pub fn parse_identity(output: &str) -> Identity {
    let mut capture = IdentityCapture::default();
    for line in output.lines() {
        capture.line(&format!("{IDENTITY_PREFIX}{line}"));
    }
    capture.found.unwrap_or_default()
}

/// Whether the clone is a machine of its own: Err says what it shares with the build
/// server (or that the build server's identity is unknown).
pub fn compare_identity(build: Option<&Identity>, clone: &Identity) -> Result<String, String> {
    let Some(build) = build else {
        return Err(
            "the build server's identity is unknown (its identity step printed nothing)".into(),
        );
    };
    if clone.machine_id.is_empty() || clone.host_keys.is_empty() {
        return Err("the server showed no machine-id or no SSH host key".into());
    }
    let mut shared = Vec::new();
    if build.machine_id == clone.machine_id {
        shared.push(format!("machine-id {}", clone.machine_id));
    }
    shared.extend(
        build
            .host_keys
            .intersection(&clone.host_keys)
            .map(|k| format!("SSH host key {k}")),
    );
    if shared.is_empty() {
        Ok(format!(
            "machine-id and {} SSH host key(s) differ from the build server's",
            clone.host_keys.len()
        ))
    } else {
        Err(format!(
            "the clone shares the build server's {}",
            shared.join(", ")
        ))
    }
}

/// The last `lines` lines of a check's output, at most `bytes` bytes: what the log and
/// the record keep of a failure.
pub fn tail(output: &str, lines: usize, bytes: usize) -> String {
    let all: Vec<&str> = output.trim_end().lines().collect();
    let mut kept = all[all.len().saturating_sub(lines)..].join("\n");
    if kept.len() > bytes {
        let mut cut = kept.len() - bytes;
        while !kept.is_char_boundary(cut) {
            cut += 1;
        }
        kept = format!("...{}", &kept[cut..]);
    }
    kept
}

/// The verification's verdict from its checks (in the order they ran).
pub fn verdict(
    checks: Vec<CheckOutcome>,
    interrupted: bool,
    total_milliseconds: u64,
    server_id: Option<String>,
) -> Verification {
    let failed_check = checks.iter().find(|c| !c.ok).map(|c| c.name.clone());
    let status = if interrupted {
        VerificationStatus::Interrupted
    } else if failed_check.is_some() || checks.is_empty() {
        VerificationStatus::Failed
    } else {
        VerificationStatus::Passed
    };
    Verification {
        status,
        checks,
        failed_check,
        total_milliseconds,
        server_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn def(extra: &str) -> Definition {
        let text = format!(
            "name = \"img\"\n[target.a]\nsource_image = \"id\"\nflavor = \"f\"\n\
             [[provision]]\ninline = [\"echo\"]\n{extra}"
        );
        Definition::parse(&text, Path::new("/d"), Path::new("/d/image.toml")).unwrap()
    }

    fn names(checks: &[Check]) -> Vec<&str> {
        checks.iter().map(|c| c.name.as_str()).collect()
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB uworker-image x";

    #[test]
    fn an_image_without_the_worker_gets_the_machine_checks_and_its_own() {
        let d = def("[verify]\nchecks = [\"verify/extra.sh\"]\n");
        let list = checks(&d, &d.targets["a"], KEY);
        assert_eq!(
            names(&list),
            [
                "ssh",
                "cloud-init",
                "identity",
                "residue",
                "extra:verify/extra.sh"
            ]
        );
        assert_eq!(list[0].how, How::Connect);
        assert_eq!(
            list[3].how,
            How::Builtin(vec![
                "residue".into(),
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB".into()
            ])
        );
        assert_eq!(list[4].how, How::Script("verify/extra.sh".into()));
    }

    #[test]
    fn an_image_with_the_worker_gets_its_checks_and_never_starts_it_by_default() {
        let worker = "[[provision]]\nworker_config = \"{{user `upload_dir`}}/uworker.conf\"\n";
        let d = def(worker);
        let list = checks(&d, &d.targets["a"], KEY);
        assert_eq!(
            names(&list)[4..],
            [
                "worker-unit",
                "worker-config",
                "worker-import",
                "job-service-login",
                "worker-not-started"
            ]
        );
        let started = def(&format!(
            "{worker}[verify]\nstart_worker = true\njob_api_root = \"https://staging.example/api\"\n"
        ));
        let list = checks(&started, &started.targets["a"], KEY);
        assert_eq!(names(&list).last(), Some(&"worker-started"));
        // A worker_config step only for the test host installs nothing in the image.
        let test_only = def(
            "[[provision]]\nworker_config = \"{{user `upload_dir`}}/uworker.conf\"\nonly = \"test\"\n",
        );
        assert!(!installs_worker(&test_only, &test_only.targets["a"]));
    }

    #[test]
    fn the_default_boot_keeps_the_worker_stopped_for_this_boot_only() {
        let text = user_data(&VerifySettings::default());
        assert_eq!(
            text,
            "#cloud-config\nbootcmd:\n  - \"mkdir -p /run/systemd/system/uworker.service.d && \
             printf '%s\\\\n' '[Unit]' 'ConditionPathExists=/run/uworker-image-verification-keeps-the-worker-stopped' \
             >/run/systemd/system/uworker.service.d/uworker-image-verify.conf && systemctl daemon-reload\"\n"
        );
        let staged = VerifySettings {
            start_worker: true,
            job_api_root: Some("https://staging.example/api".into()),
            ..VerifySettings::default()
        };
        let text = user_data(&staged);
        assert!(!text.contains("Condition"), "{text}");
        assert!(
            text.contains("export UWORKER_JOB_API_ROOT='https://staging.example/api'"),
            "{text}"
        );
    }

    #[test]
    fn the_build_servers_identity_is_the_last_one_printed() {
        let mut capture = IdentityCapture::default();
        for line in [
            "    e2e: uworker-image-identity: host-key SHA256:old",
            "    e2e: uworker-image-identity: machine-id old",
            "    e2e: something else",
            "    e2e: uworker-image-identity: host-key SHA256:a",
            "    e2e: uworker-image-identity: host-key SHA256:b",
            "    e2e: uworker-image-identity: machine-id new",
        ] {
            capture.line(line);
        }
        let found = capture.found.unwrap();
        assert_eq!(found.machine_id, "new");
        assert_eq!(
            found.host_keys.into_iter().collect::<Vec<_>>(),
            ["SHA256:a", "SHA256:b"]
        );
        let step = identity_step_lines().join("\n");
        assert!(step.contains(IDENTITY_PREFIX), "{step}");
    }

    #[test]
    fn a_clone_must_share_neither_machine_id_nor_host_key() {
        let build = parse_identity("host-key SHA256:a\nhost-key SHA256:b\nmachine-id m1\n");
        let fresh = parse_identity("host-key SHA256:c\nmachine-id m2\n");
        assert!(compare_identity(Some(&build), &fresh).is_ok());
        let same_id = parse_identity("host-key SHA256:c\nmachine-id m1\n");
        let err = compare_identity(Some(&build), &same_id).unwrap_err();
        assert!(err.contains("machine-id m1"), "{err}");
        let same_key = parse_identity("host-key SHA256:b\nmachine-id m2\n");
        let err = compare_identity(Some(&build), &same_key).unwrap_err();
        assert!(err.contains("SHA256:b"), "{err}");
        assert!(compare_identity(None, &fresh).is_err());
        assert!(compare_identity(Some(&build), &Identity::default()).is_err());
    }

    #[test]
    fn the_tail_keeps_the_last_lines_and_bytes() {
        assert_eq!(tail("a\nb\nc\n", 2, 100), "b\nc");
        assert_eq!(tail("abcdef", 5, 3), "...def");
        assert_eq!(tail("", 5, 3), "");
    }

    fn outcome(name: &str, ok: bool) -> CheckOutcome {
        CheckOutcome {
            name: name.into(),
            ok,
            milliseconds: 1,
            output: None,
        }
    }

    #[test]
    fn the_verdict_names_the_first_failed_check() {
        let passed = verdict(vec![outcome("ssh", true)], false, 5, Some("s".into()));
        assert_eq!(
            (passed.status, passed.failed_check),
            (VerificationStatus::Passed, None)
        );
        let failed = verdict(
            vec![outcome("ssh", true), outcome("worker-import", false)],
            false,
            5,
            None,
        );
        assert_eq!(failed.status, VerificationStatus::Failed);
        assert_eq!(failed.failed_check.as_deref(), Some("worker-import"));
        assert_eq!(
            verdict(vec![], false, 0, None).status,
            VerificationStatus::Failed
        );
        assert_eq!(
            verdict(vec![outcome("ssh", true)], true, 0, None).status,
            VerificationStatus::Interrupted
        );
    }
}

//! image.toml as written (serde, unknown keys refused, spans kept for line numbers) and
//! its conversion into the checked model.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Component, Path};

use serde::Deserialize;
use toml::Spanned;

use super::{
    Definition, DefinitionError, Only, PinSettings, SourceImage, Step, StepKind, Target,
    TestSettings, VerifySettings, WorkerKeys, SHARED_VISIBILITIES, TEST_BUILDER,
};
use crate::vars;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    name: Spanned<String>,
    #[serde(default)]
    max_age: Option<Spanned<String>>,
    #[serde(default)]
    variables: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    target: BTreeMap<String, Spanned<RawTarget>>,
    #[serde(default)]
    provision: Vec<Spanned<RawStep>>,
    #[serde(default)]
    worker: Option<Spanned<RawWorker>>,
    #[serde(default)]
    test: Option<RawTest>,
    #[serde(default)]
    pins: Option<RawPins>,
    #[serde(default)]
    verify: Option<Spanned<RawVerify>>,
}

/// `[pins]`: how a requirement `worker_source` is pinned (crate::pin).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPins {
    index_url: Option<String>,
    python: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    /// Another target whose image this one copies into its own cloud/region.
    copy_of: Option<String>,
    source_image: Option<String>,
    source_image_name: Option<String>,
    #[serde(default)]
    trusted_base_owners: Vec<String>,
    max_age: Option<String>,
    flavor: Option<String>,
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    floating_ip: Option<String>,
    floating_ip_network: Option<String>,
    ssh_username: Option<String>,
    ssh_timeout: Option<String>,
    cloud: Option<String>,
    region: Option<String>,
    availability_zone: Option<String>,
    use_blockstorage_volume: Option<bool>,
    volume_size: Option<u32>,
    volume_type: Option<String>,
    image_visibility: Option<String>,
    #[serde(default)]
    allow_shared_image_with_secrets: bool,
    image_min_disk: Option<u32>,
    #[serde(default)]
    image_tags: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    config_drive: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    script: Option<String>,
    inline: Option<Vec<String>>,
    file: Option<String>,
    destination: Option<String>,
    worker_config: Option<String>,
    sbom: Option<bool>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    sudo: bool,
    only: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    #[serde(default)]
    required: Option<Vec<String>>,
    #[serde(default)]
    optional: Vec<String>,
    #[serde(default)]
    pass_through: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    #[serde(default = "default_ssh_username")]
    ssh_username: String,
    #[serde(default = "default_test_ssh_timeout")]
    ssh_timeout: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    enabled: Option<bool>,
    timeout: Option<String>,
    #[serde(default)]
    checks: Vec<String>,
    #[serde(default)]
    start_worker: bool,
    job_api_root: Option<String>,
}

fn default_ssh_username() -> String {
    "ubuntu".to_string()
}

fn default_test_ssh_timeout() -> String {
    "5m".to_string()
}

const VISIBILITIES: [&str; 4] = ["private", "shared", "community", "public"];

/// Converts byte offsets into 1-based line numbers of one text.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn of(&self, offset: usize) -> usize {
        let end = offset.min(self.0.len());
        self.0.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
}

pub(super) fn parse(text: &str, dir: &Path, path: &Path) -> Result<Definition, DefinitionError> {
    let lines = Lines(text);
    let raw: RawDefinition = toml::from_str(text).map_err(|e| DefinitionError::Parse {
        path: path.to_path_buf(),
        line: e.span().map_or(1, |span| lines.of(span.start)),
        message: e.message().trim_end().to_string(),
    })?;
    let invalid = |line: usize, message: String| DefinitionError::Invalid {
        path: path.to_path_buf(),
        line,
        message,
    };

    let name_line = lines.of(raw.name.span().start);
    let name = raw.name.into_inner();
    if !is_name(&name, true) {
        return Err(invalid(
            name_line,
            format!(
                "name `{name}` must be letters, digits, `.`, `_` or `-` (it prefixes image names)"
            ),
        ));
    }

    let (variables, variables_line) = match raw.variables {
        Some(v) => (v.get_ref().clone(), lines.of(v.span().start)),
        None => (BTreeMap::new(), 1),
    };
    for key in variables.keys() {
        if !vars::is_user_variable_name(key) {
            return Err(invalid(variables_line, format!(
                "variable `{key}`: names are lower-case letters, digits and `_`, and may not be one of the tool's own ({})",
                vars::RESERVED.join(", ")
            )));
        }
    }

    let worker = match raw.worker {
        None => WorkerKeys::default(),
        Some(w) => {
            let line = lines.of(w.span().start);
            let w = w.into_inner();
            let keys = WorkerKeys {
                required: w.required.unwrap_or_else(|| WorkerKeys::default().required),
                optional: w.optional,
                pass_through: w.pass_through,
            };
            check_worker_keys(&keys).map_err(|m| invalid(line, m))?;
            keys
        }
    };

    let max_age = match raw.max_age {
        Some(v) => {
            Some(parse_max_age(v.get_ref()).map_err(|m| invalid(lines.of(v.span().start), m))?)
        }
        None => None,
    };

    if raw.target.is_empty() {
        return Err(invalid(
            1,
            "no target: add a `[target.NAME]` table (source image, flavor, ssh_username)".into(),
        ));
    }
    let mut targets = BTreeMap::new();
    let mut copies = Vec::new();
    for (target_name, spanned) in raw.target {
        let line = lines.of(spanned.span().start);
        let raw_target = spanned.into_inner();
        if raw_target.copy_of.is_some() {
            copies.push((target_name, raw_target, line));
            continue;
        }
        let target = convert_target(target_name.clone(), raw_target, line, max_age)
            .map_err(|m| invalid(line, format!("[target.{target_name}]: {m}")))?;
        targets.insert(target_name, target);
    }
    // Copies after the targets they copy, which are built ones.
    let mut converted = Vec::with_capacity(copies.len());
    for (target_name, raw_target, line) in copies {
        let target = convert_copy(target_name.clone(), raw_target, line, &targets)
            .map_err(|m| invalid(line, format!("[target.{target_name}]: {m}")))?;
        converted.push((target_name, target));
    }
    targets.extend(converted);

    let known_vars: Vec<String> =
        vars::template_variable_names(&variables, worker.required.iter().chain(&worker.optional));
    let mut steps = Vec::with_capacity(raw.provision.len());
    for (index, spanned) in raw.provision.into_iter().enumerate() {
        let line = lines.of(spanned.span().start);
        let step = convert_step(spanned.into_inner(), line, &known_vars)
            .map_err(|m| invalid(line, format!("[[provision]] step {}: {m}", index + 1)))?;
        if step.kind == StepKind::Sbom && steps.iter().any(|s: &Step| s.kind == StepKind::Sbom) {
            return Err(invalid(
                line,
                format!(
                    "[[provision]] step {}: a second `sbom = true` step: an image has one SBOM (keep the one after the last step that installs anything)",
                    index + 1
                ),
            ));
        }
        steps.push(step);
    }

    let test = raw.test.unwrap_or(RawTest {
        ssh_username: default_ssh_username(),
        ssh_timeout: default_test_ssh_timeout(),
    });

    let verify = match raw.verify {
        None => VerifySettings::default(),
        Some(v) => {
            let line = lines.of(v.span().start);
            convert_verify(v.into_inner(), line)
                .map_err(|m| invalid(line, format!("[verify]: {m}")))?
        }
    };

    Ok(Definition {
        dir: dir.to_path_buf(),
        name,
        variables,
        targets,
        steps,
        worker,
        test: TestSettings {
            ssh_username: test.ssh_username,
            ssh_timeout: test.ssh_timeout,
        },
        worker_source_dir: None,
        pins: match raw.pins {
            None => PinSettings::default(),
            Some(pins) => PinSettings {
                index_url: pins.index_url,
                python: pins.python,
            },
        },
        verify,
    })
}

/// `[verify]`: every key optional; an old definition without the table is verified with
/// the defaults.
fn convert_verify(raw: RawVerify, line: usize) -> Result<VerifySettings, String> {
    let defaults = VerifySettings::default();
    let timeout = match &raw.timeout {
        Some(text) => {
            let timeout = humantime::parse_duration(text).map_err(|e| {
                format!("timeout `{text}` is not a duration ({e}): write e.g. \"15m\"")
            })?;
            if timeout.is_zero() {
                return Err("timeout is zero: give the verification time, e.g. \"15m\"".into());
            }
            timeout
        }
        None => defaults.timeout,
    };
    for check in &raw.checks {
        let path = Path::new(check);
        let plain = !check.trim().is_empty()
            && path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !plain || check.ends_with('/') {
            return Err(format!(
                "check `{check}` must be a script's path inside the definition directory (relative, no `..`)"
            ));
        }
    }
    let job_api_root = match raw.job_api_root {
        Some(root) => {
            let ok = (root.starts_with("https://") || root.starts_with("http://"))
                && !root
                    .chars()
                    .any(|c| c.is_whitespace() || "'\"\\|&".contains(c));
            if !ok {
                return Err(format!(
                    "job_api_root `{}` must be an http(s) URL without quotes, spaces, `\\`, `|` or `&` (a staging job service's root)",
                    crate::userinfo::strip(&root).value
                ));
            }
            if crate::userinfo::strip(&root).value != root {
                return Err(
                    "job_api_root must not hold credentials: the worker logs in with its own config's".into(),
                );
            }
            Some(root)
        }
        None => None,
    };
    if raw.start_worker && job_api_root.is_none() {
        return Err(
            "start_worker = true needs job_api_root: a staging job service's root, so the verified worker takes no real job".into(),
        );
    }
    Ok(VerifySettings {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        timeout,
        checks: raw.checks,
        start_worker: raw.start_worker,
        job_api_root,
        line,
    })
}

fn is_name(s: &str, allow_dot: bool) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (allow_dot && b == b'.')
        })
}

/// `max_age = "30d"`: how old an image with an unchanged fingerprint may get before it is
/// rebuilt (for its packages' security updates).
fn parse_max_age(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| {
        format!("max_age `{text}` is not a duration ({e}): write e.g. \"30d\", \"12h\" or \"90m\"")
    })
}

/// The keys of a target that only a packer build uses: a copy refuses them.
fn build_only_keys(raw: &RawTarget) -> Vec<&'static str> {
    [
        ("source_image", raw.source_image.is_some()),
        ("source_image_name", raw.source_image_name.is_some()),
        ("trusted_base_owners", !raw.trusted_base_owners.is_empty()),
        ("max_age", raw.max_age.is_some()),
        ("flavor", raw.flavor.is_some()),
        ("networks", !raw.networks.is_empty()),
        ("security_groups", !raw.security_groups.is_empty()),
        ("floating_ip", raw.floating_ip.is_some()),
        ("floating_ip_network", raw.floating_ip_network.is_some()),
        ("ssh_username", raw.ssh_username.is_some()),
        ("ssh_timeout", raw.ssh_timeout.is_some()),
        ("availability_zone", raw.availability_zone.is_some()),
        (
            "use_blockstorage_volume",
            raw.use_blockstorage_volume.is_some(),
        ),
        ("volume_size", raw.volume_size.is_some()),
        ("volume_type", raw.volume_type.is_some()),
        ("image_min_disk", raw.image_min_disk.is_some()),
        ("config_drive", raw.config_drive.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(key, _)| key)
    .collect()
}

/// `copy_of = "SOURCE"`: the source target's image, copied byte for byte into this
/// target's cloud and region. It takes the source's build settings (so its fingerprint is
/// the source's) and has its own place, visibility, tags and properties.
fn convert_copy(
    name: String,
    raw: RawTarget,
    line: usize,
    built: &BTreeMap<String, Target>,
) -> Result<Target, String> {
    let of = raw.copy_of.clone().unwrap_or_default();
    check_target_name(&name)?;
    let refused = build_only_keys(&raw);
    if let Some(key) = refused.first() {
        return Err(format!(
            "`{key}` is a packer build's setting, and this target is a copy (`copy_of = \"{of}\"`) of that build's image: remove `{key}`{}",
            if refused.len() > 1 {
                format!(" (and {})", refused[1..].join(", "))
            } else {
                String::new()
            }
        ));
    }
    let source = built.get(&of).ok_or_else(|| {
        let names: Vec<&str> = built.keys().map(String::as_str).collect();
        format!(
            "copy_of = `{of}`: no built target of that name (a copy copies a target that packer builds, not another copy); built targets: {}",
            names.join(", ")
        )
    })?;
    check_place(&raw)?;
    if raw.cloud == source.cloud && raw.region == source.region {
        return Err(format!(
            "a copy of `{of}` in its own cloud and region would be the same image twice: name another `region` (or `cloud`)"
        ));
    }
    check_visibility(&raw)?;
    Ok(Target {
        name,
        copy_of: Some(of),
        cloud: raw.cloud,
        region: raw.region,
        image_visibility: raw.image_visibility,
        allow_shared_image_with_secrets: raw.allow_shared_image_with_secrets,
        image_tags: raw.image_tags,
        metadata: raw.metadata,
        line,
        ..source.clone()
    })
}

fn check_target_name(name: &str) -> Result<(), String> {
    if !is_name(name, false) {
        return Err(
            "target names are letters, digits, `_` and `-` (they name packer builders)".into(),
        );
    }
    if name == TEST_BUILDER {
        return Err(format!(
            "`{TEST_BUILDER}` is the test host's builder name; call the target something else"
        ));
    }
    Ok(())
}

/// An empty `cloud` or `region` would silently mean the environment's.
fn check_place(raw: &RawTarget) -> Result<(), String> {
    for (key, value) in [("cloud", &raw.cloud), ("region", &raw.region)] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            return Err(format!(
                "`{key}` is empty: name one, or leave the key out for the environment's"
            ));
        }
    }
    Ok(())
}

fn check_visibility(raw: &RawTarget) -> Result<(), String> {
    if let Some(v) = &raw.image_visibility {
        if !VISIBILITIES.contains(&v.as_str()) {
            return Err(format!(
                "image_visibility `{v}` is not one of {}",
                VISIBILITIES.join(", ")
            ));
        }
        if SHARED_VISIBILITIES.contains(&v.as_str()) && !raw.allow_shared_image_with_secrets {
            return Err(format!(
                "image_visibility `{v}` lets other projects download the image, and with it the worker password in /etc/uworker/uworker.conf: use `private` (the default), or, if that is really meant, add `allow_shared_image_with_secrets = true` to this table"
            ));
        }
    }
    Ok(())
}

/// `default_max_age`: the top-level `max_age`, which a target's own overrides.
fn convert_target(
    name: String,
    raw: RawTarget,
    line: usize,
    default_max_age: Option<std::time::Duration>,
) -> Result<Target, String> {
    check_target_name(&name)?;
    let source_image = match (raw.source_image.clone(), raw.source_image_name.clone()) {
        (Some(id), None) if !id.trim().is_empty() => SourceImage::Id(id),
        (None, Some(n)) if !n.trim().is_empty() => SourceImage::Name(n),
        (Some(_), Some(_)) => {
            return Err(
                "set either `source_image` (an image ID) or `source_image_name`, not both".into(),
            )
        }
        _ => return Err("missing `source_image` (an image ID) or `source_image_name`".into()),
    };
    if raw.trusted_base_owners.iter().any(|o| o.trim().is_empty()) {
        return Err("`trusted_base_owners` holds an empty project ID".into());
    }
    let flavor = raw.flavor.clone().unwrap_or_default();
    if flavor.trim().is_empty() {
        return Err("`flavor` is missing or empty".into());
    }
    let ssh_username = raw
        .ssh_username
        .clone()
        .unwrap_or_else(default_ssh_username);
    if ssh_username.trim().is_empty() {
        return Err("`ssh_username` is empty".into());
    }
    check_place(&raw)?;
    if let Some(ip) = &raw.floating_ip {
        check_ip(ip).map_err(|m| format!("floating_ip: {m}"))?;
    }
    check_visibility(&raw)?;
    Ok(Target {
        name,
        copy_of: None,
        source_image,
        trusted_base_owners: raw.trusted_base_owners,
        max_age: match &raw.max_age {
            Some(text) => Some(parse_max_age(text)?),
            None => default_max_age,
        },
        flavor,
        networks: raw.networks,
        security_groups: raw.security_groups,
        floating_ip: raw.floating_ip,
        floating_ip_network: raw.floating_ip_network,
        ssh_username,
        ssh_timeout: raw.ssh_timeout,
        cloud: raw.cloud,
        region: raw.region,
        availability_zone: raw.availability_zone,
        use_blockstorage_volume: raw.use_blockstorage_volume,
        volume_size: raw.volume_size,
        volume_type: raw.volume_type,
        image_visibility: raw.image_visibility,
        allow_shared_image_with_secrets: raw.allow_shared_image_with_secrets,
        image_min_disk: raw.image_min_disk,
        image_tags: raw.image_tags,
        metadata: raw.metadata,
        config_drive: raw.config_drive,
        line,
    })
}

/// A floating IP: its address (the seed's way; `build` looks up its ID) or its ID (a
/// UUID, what packer's openstack builder takes).
pub fn check_ip(value: &str) -> Result<(), String> {
    if value.parse::<IpAddr>().is_ok() || is_uuid(value) {
        return Ok(());
    }
    Err(format!(
        "`{value}` is not an IP address (expected e.g. 130.238.29.214) nor a floating IP ID (a UUID)"
    ))
}

/// The worker config holds passwords: it goes into the run's private upload directory (or
/// another absolute path), never straight into a directory every local user can write,
/// where a file made there beforehand would let its owner read and rewrite it.
fn check_worker_config_destination(destination: &str) -> Result<(), String> {
    let private = format!("{{{{user `{}`}}}}/", crate::vars::UPLOAD_DIR);
    let suggestion = format!("{private}uworker.conf");
    let (rest, in_private) = match destination.strip_prefix(&private) {
        Some(rest) => (rest, true),
        None => (destination, false),
    };
    if !in_private && !destination.starts_with('/') {
        return Err(format!(
            "worker_config `{destination}` must be an absolute path on the image, or one in the run's private directory: {suggestion}"
        ));
    }
    // The path as the host resolves it (`//tmp/./x` is `/tmp/x`); `..` could lead anywhere.
    let parts: Vec<&str> = rest
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!(
            "worker_config `{destination}` holds `..`: name the file plainly, e.g. {suggestion}"
        ));
    }
    if in_private {
        return Ok(());
    }
    let path = format!("/{}", parts.join("/"));
    if let Some(shared) = SHARED_DIRS
        .iter()
        .find(|dir| path.starts_with(&format!("{dir}/")))
    {
        return Err(format!(
            "worker_config `{destination}` is in {shared}, which every local user can write: one who makes that file (or a directory on its way) first reads the secrets and can change them; write {suggestion} (the run's private directory)"
        ));
    }
    Ok(())
}

/// Directories every local user may create files in.
const SHARED_DIRS: [&str; 4] = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock"];

fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn convert_step(raw: RawStep, line: usize, known_vars: &[String]) -> Result<Step, String> {
    let given: Vec<&str> = [
        ("script", raw.script.is_some()),
        ("inline", raw.inline.is_some()),
        ("file", raw.file.is_some()),
        ("worker_config", raw.worker_config.is_some()),
        ("sbom", raw.sbom.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| *k)
    .collect();
    if given.len() != 1 {
        return Err(format!(
            "a step has exactly one of `script`, `inline`, `file`, `worker_config` or `sbom` (found {})",
            if given.is_empty() {
                "none".to_string()
            } else {
                given.join(", ")
            }
        ));
    }
    if raw.destination.is_some() && raw.file.is_none() {
        return Err("`destination` belongs to `file` steps".into());
    }
    let kind = if let Some(script) = raw.script {
        check_relative(&script)?;
        StepKind::Script(script)
    } else if let Some(inline) = raw.inline {
        if inline.is_empty() {
            return Err("`inline` has no commands".into());
        }
        StepKind::Inline(inline)
    } else if let Some(source) = raw.file {
        check_relative(&source)?;
        let destination = raw
            .destination
            .filter(|d| !d.trim().is_empty())
            .ok_or("a `file` step needs `destination` (the path on the image)")?;
        StepKind::Upload {
            source,
            destination,
        }
    } else if let Some(destination) = raw.worker_config {
        check_worker_config_destination(&destination)?;
        StepKind::WorkerConfig { destination }
    } else {
        if raw.sbom != Some(true) {
            return Err(
                "`sbom = false`: leave the step out (an image without `sbom = true` has no SBOM)"
                    .into(),
            );
        }
        StepKind::Sbom
    };
    if matches!(
        kind,
        StepKind::WorkerConfig { .. } | StepKind::Upload { .. } | StepKind::Sbom
    ) && (raw.sudo || !raw.environment.is_empty())
    {
        return Err("`sudo` and `environment` apply to `script` and `inline` steps".into());
    }
    for key in raw.environment.keys() {
        if !is_env_name(key) {
            return Err(format!(
                "environment name `{key}` is not a valid variable name"
            ));
        }
    }
    let only = match raw.only.as_deref() {
        None => None,
        Some("build") => Some(Only::Build),
        Some("test") => Some(Only::Test),
        Some(other) => return Err(format!("only = `{other}`: expected \"build\" or \"test\"")),
    };
    let step = Step {
        kind,
        environment: raw.environment,
        sudo: raw.sudo,
        only,
        line,
    };
    for text in step.texts() {
        vars::check_references(text, known_vars)?;
    }
    Ok(step)
}

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Step paths stay inside the definition directory: relative, no `..`.
fn check_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.trim().is_empty() {
        return Err("empty path".into());
    }
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "`{path}` must be relative to the definition directory and stay inside it (no leading `/`, no `..`)"
        ));
    }
    Ok(())
}

fn check_worker_keys(keys: &WorkerKeys) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for key in keys
        .required
        .iter()
        .chain(&keys.optional)
        .chain(&keys.pass_through)
    {
        if !vars::is_worker_key(key) {
            return Err(format!(
                "[worker] `{key}`: worker keys are UWORKER_ followed by A-Z, 0-9 or _ (UWORKER_IMAGE_* and UWORKER_FINGERPRINT_KEY are the tool's own)"
            ));
        }
        if !seen.insert(key) {
            return Err(format!("[worker] `{key}` is listed twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_ip;

    #[test]
    fn a_floating_ip_is_an_address_or_an_id() {
        assert!(check_ip("130.238.29.214").is_ok());
        assert!(check_ip("2001:db8::1").is_ok());
        assert!(check_ip("9d1e9ab0-5f57-4c6e-9a8a-0a1b2c3d4e5f").is_ok());
        for bad in [
            "1.2.3",
            "host.example",
            "9d1e9ab0-5f57-4c6e-9a8a",
            "9d1e9ab0-5f57-4c6e-9a8a-0a1b2c3d4e5g",
            "",
        ] {
            assert!(check_ip(bad).is_err(), "{bad}");
        }
    }

    fn verify_of(table: &str) -> Result<crate::definition::VerifySettings, String> {
        let text =
            format!("name = \"x\"\n[target.a]\nsource_image = \"i\"\nflavor = \"f\"\n{table}");
        let dir = std::path::Path::new("/defs");
        crate::definition::Definition::parse(&text, dir, &dir.join("image.toml"))
            .map(|d| d.verify)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn verify_is_on_by_default_and_every_key_is_checked() {
        let default = verify_of("").unwrap();
        assert!(default.enabled && !default.start_worker && default.checks.is_empty());
        assert_eq!(default.timeout, std::time::Duration::from_secs(900));
        let set = verify_of(
            "[verify]\nenabled = false\ntimeout = \"2m\"\nchecks = [\"verify/a.sh\"]\n\
             start_worker = true\njob_api_root = \"https://staging.example/api\"\n",
        )
        .unwrap();
        assert!(!set.enabled && set.start_worker);
        assert_eq!(set.timeout, std::time::Duration::from_secs(120));
        assert_eq!(set.checks, ["verify/a.sh"]);
        assert_eq!(set.line, 5);
        for (table, said) in [
            ("timeout = \"soon\"", "timeout `soon` is not a duration"),
            ("timeout = \"0s\"", "timeout is zero"),
            (
                "checks = [\"../x.sh\"]",
                "check `../x.sh` must be a script's path",
            ),
            (
                "checks = [\"/etc/x.sh\"]",
                "check `/etc/x.sh` must be a script's path",
            ),
            (
                "start_worker = true",
                "start_worker = true needs job_api_root",
            ),
            (
                "job_api_root = \"ftp://x\"",
                "job_api_root `ftp://x` must be an http(s) URL",
            ),
            ("job_api_root = \"https://x/a|b\"", "must be an http(s) URL"),
            (
                "job_api_root = \"https://u:secret@x/api\"",
                "job_api_root must not hold credentials",
            ),
            ("bogus = 1", "unknown field `bogus`"),
        ] {
            let error = verify_of(&format!("[verify]\n{table}\n")).unwrap_err();
            assert!(error.contains(said), "{table}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn an_empty_cloud_or_region_is_refused_naming_the_key() {
        for key in ["cloud", "region"] {
            let text = format!(
                "name = \"x\"\n[target.a]\nsource_image = \"i\"\nflavor = \"f\"\n{key} = \" \"\n"
            );
            let dir = std::path::Path::new("/defs");
            let error = crate::definition::Definition::parse(&text, dir, &dir.join("image.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("`{key}` is empty")) && error.contains("[target.a]"),
                "{error}"
            );
        }
    }

    /// `sbom = true` is a step of its own kind, once; anything else about it is refused
    /// with the step's number and what to do.
    #[test]
    fn the_sbom_step_is_true_once_and_alone() {
        let parse = |steps: &str| {
            let text =
                format!("name = \"x\"\n[target.a]\nsource_image = \"i\"\nflavor = \"f\"\n{steps}");
            let dir = std::path::Path::new("/defs");
            crate::definition::Definition::parse(&text, dir, &dir.join("image.toml"))
                .map_err(|e| e.to_string())
        };
        let ok = parse("[[provision]]\nsbom = true\nonly = \"build\"\n").unwrap();
        assert_eq!(ok.steps[0].kind, crate::definition::StepKind::Sbom);
        assert!(ok.writes_sbom());
        for (steps, wanted) in [
            ("[[provision]]\nsbom = false\n", "step 1: `sbom = false`: leave the step out"),
            (
                "[[provision]]\nsbom = true\n[[provision]]\nsbom = true\n",
                "step 2: a second `sbom = true` step",
            ),
            (
                "[[provision]]\nsbom = true\nsudo = true\n",
                "`sudo` and `environment` apply to `script` and `inline` steps",
            ),
            (
                "[[provision]]\nsbom = true\ninline = [\"x\"]\n",
                "exactly one of `script`, `inline`, `file`, `worker_config` or `sbom` (found inline, sbom)",
            ),
        ] {
            let error = parse(steps).unwrap_err();
            assert!(error.contains(wanted), "{steps}: {error}");
        }
    }

    fn parse(text: &str) -> Result<crate::definition::Definition, String> {
        let dir = std::path::Path::new("/defs");
        crate::definition::Definition::parse(text, dir, &dir.join("image.toml"))
            .map_err(|e| e.to_string())
    }

    const SOURCE: &str = "name = \"x\"\n[target.smog]\nsource_image_name = \"base\"\nflavor = \"f\"\nnetworks = [\"n\"]\nmax_age = \"7d\"\n";

    #[test]
    fn a_copy_takes_its_sources_build_and_has_its_own_place_and_marks() {
        let def = parse(&format!(
            "{SOURCE}[target.east]\ncopy_of = \"smog\"\nregion = \"RegionTwo\"\ncloud = \"other\"\nimage_visibility = \"private\"\nimage_tags = [\"t\"]\nmetadata = {{ k = \"v\" }}\n"
        ))
        .unwrap();
        let (source, copy) = (&def.targets["smog"], &def.targets["east"]);
        assert!(source.is_built() && !copy.is_built());
        assert_eq!(copy.copy_of.as_deref(), Some("smog"));
        assert_eq!(copy.name, "east");
        assert_eq!(
            (copy.cloud.as_deref(), copy.region.as_deref()),
            (Some("other"), Some("RegionTwo"))
        );
        assert_eq!(copy.image_tags, ["t"]);
        assert_eq!(copy.metadata["k"], "v");
        assert_eq!(copy.image_visibility.as_deref(), Some("private"));
        // The build settings are the source's: the same fingerprint's inputs.
        assert_eq!(copy.source_image, source.source_image);
        assert_eq!(copy.flavor, source.flavor);
        assert_eq!(copy.networks, source.networks);
        assert_eq!(copy.max_age, source.max_age);
        assert_eq!(copy.line, 7);
    }

    #[test]
    fn a_copy_refuses_a_builds_keys_naming_them() {
        for (key, value) in [
            ("flavor", "\"f\""),
            ("source_image", "\"i\""),
            ("source_image_name", "\"n\""),
            ("networks", "[\"n\"]"),
            ("ssh_username", "\"u\""),
            ("floating_ip", "\"1.2.3.4\""),
            ("volume_size", "10"),
            ("max_age", "\"1d\""),
            ("config_drive", "true"),
        ] {
            let error = parse(&format!(
                "{SOURCE}[target.east]\ncopy_of = \"smog\"\nregion = \"r2\"\n{key} = {value}\n"
            ))
            .unwrap_err();
            assert!(
                error.contains(&format!(
                    "[target.east]: `{key}` is a packer build's setting"
                )) && error.contains(&format!("remove `{key}`"))
                    && error.starts_with("/defs/image.toml:7:"),
                "{key}: {error}"
            );
        }
        let error = parse(&format!(
            "{SOURCE}[target.east]\ncopy_of = \"smog\"\nregion = \"r2\"\nflavor = \"f\"\nnetworks = [\"n\"]\n"
        ))
        .unwrap_err();
        assert!(error.contains("remove `flavor` (and networks)"), "{error}");
    }

    #[test]
    fn a_copy_copies_a_built_target_of_another_place() {
        let error = parse(&format!(
            "{SOURCE}[target.east]\ncopy_of = \"nope\"\nregion = \"r2\"\n"
        ))
        .unwrap_err();
        assert!(
            error.contains("copy_of = `nope`: no built target of that name")
                && error.contains("built targets: smog"),
            "{error}"
        );
        // Not a copy of a copy.
        let error = parse(&format!(
            "{SOURCE}[target.b]\ncopy_of = \"smog\"\nregion = \"r2\"\n[target.c]\ncopy_of = \"b\"\nregion = \"r3\"\n"
        ))
        .unwrap_err();
        assert!(error.contains("[target.c]: copy_of = `b`"), "{error}");
        // Not in the source's own place.
        let error = parse(&format!("{SOURCE}[target.east]\ncopy_of = \"smog\"\n")).unwrap_err();
        assert!(error.contains("the same image twice"), "{error}");
        // Its own place's keys are checked as a build's.
        let error = parse(&format!(
            "{SOURCE}[target.east]\ncopy_of = \"smog\"\nregion = \" \"\n"
        ))
        .unwrap_err();
        assert!(error.contains("`region` is empty"), "{error}");
        let error = parse(&format!(
            "{SOURCE}[target.east]\ncopy_of = \"smog\"\nregion = \"r2\"\nimage_visibility = \"public\"\n"
        ))
        .unwrap_err();
        assert!(error.contains("allow_shared_image_with_secrets"), "{error}");
        // A build without a flavor says so.
        let error = parse("name = \"x\"\n[target.a]\nsource_image = \"i\"\n").unwrap_err();
        assert!(error.contains("`flavor` is missing"), "{error}");
    }
}

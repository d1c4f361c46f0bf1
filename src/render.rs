//! The Packer JSON template for a definition (pure): one `openstack` builder per target,
//! the `test` null builder, provisioners in the definition's order, a manifest
//! post-processor. Secrets are never in it: they are sensitive user variables whose values
//! arrive at run time through a 0600 var-file. Keys come out sorted (serde_json's map is
//! ordered), so the same definition always renders the same bytes.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::definition::{Definition, SourceImage, Step, StepKind, Target, TEST_BUILDER};
use crate::run_marks;
use crate::vars;

/// Which builders a template carries.
#[derive(Debug, Clone, Copy)]
pub enum Builders<'a> {
    /// Every target and the test host: what `render` prints and `validate` checks.
    All,
    /// Every target, no test host: what a full `validate` checks when no test host is set.
    Targets,
    /// The test host alone: what `test` runs.
    Test,
    /// One target alone: what its fingerprint covers (test-only steps left out).
    Target(&'a Target),
}

/// How a template variable's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    /// Shapes the image: the value enters the fingerprint.
    Input,
    /// A worker secret: only its name enters the fingerprint.
    Secret,
    /// Where and when the run happens (paths, provenance, test host): not an input.
    Runtime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVar {
    pub name: String,
    pub kind: VarKind,
    pub default: String,
}

/// Every user variable a template declares, sorted by name.
pub fn template_variables(def: &Definition) -> Vec<TemplateVar> {
    let var = |name: &str, kind, default: &str| TemplateVar {
        name: name.to_string(),
        kind,
        default: default.to_string(),
    };
    let mut list = vec![
        var(vars::FLOATING_IP, VarKind::Input, ""),
        var(vars::DEFINITION_DIR, VarKind::Runtime, "."),
        var(vars::WORKER_CONFIG_PATH, VarKind::Runtime, ""),
        var(vars::UPLOAD_DIR, VarKind::Runtime, ""),
        var(
            vars::MANIFEST_FILE,
            VarKind::Runtime,
            "packer-manifest.json",
        ),
        var(vars::IMAGE_FINGERPRINT, VarKind::Runtime, ""),
        var(vars::GIT_COMMIT, VarKind::Runtime, ""),
        var(vars::RUN_URL, VarKind::Runtime, ""),
        var(vars::RUN_ID, VarKind::Runtime, ""),
        var(vars::RUN_DEADLINE, VarKind::Runtime, ""),
        var(vars::SSH_KEYPAIR_NAME, VarKind::Runtime, ""),
        var(vars::SSH_PRIVATE_KEY_FILE, VarKind::Runtime, ""),
        var(vars::TEST_HOST, VarKind::Runtime, ""),
        var(vars::TEST_PORT, VarKind::Runtime, "22"),
        var(vars::TEST_SSH_KEY, VarKind::Runtime, ""),
        var(
            vars::TEST_SSH_USERNAME,
            VarKind::Runtime,
            &def.test.ssh_username,
        ),
    ];
    // Declared only when a local worker source is wired in, so other templates (and
    // their fingerprints) stay as they were.
    if def.worker_source_dir.is_some() {
        list.push(var(vars::WORKER_SOURCE_DIR, VarKind::Runtime, ""));
    }
    if def.writes_sbom() {
        list.push(var(vars::SBOM_SCRIPT, VarKind::Runtime, ""));
        list.push(var(vars::SBOM_FILE, VarKind::Runtime, ""));
    }
    // A URL's credentials are a secret: the template states the URL without them (the
    // var-file, 0600, has the whole value).
    list.extend(
        def.variables.iter().map(|(name, default)| {
            var(name, VarKind::Input, &crate::userinfo::strip(default).value)
        }),
    );
    list.extend(
        def.declared_worker_keys()
            .map(|key| var(&vars::worker_variable(key), VarKind::Secret, "")),
    );
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

pub fn template(def: &Definition, builders: Builders) -> Value {
    let variables = template_variables(def);
    let declared: Map<String, Value> = variables
        .iter()
        .map(|v| (v.name.clone(), Value::String(v.default.clone())))
        .collect();
    let sensitive: Vec<&str> = variables
        .iter()
        .filter(|v| v.kind == VarKind::Secret)
        .map(|v| v.name.as_str())
        .collect();

    // Copies are copied, not built: they have no builder.
    let built = || def.targets.values().filter(|t| t.is_built());
    let (builder_list, builder_names): (Vec<Value>, Vec<&str>) = match builders {
        Builders::All => {
            let mut list: Vec<Value> = built().map(|t| openstack_builder(def, t)).collect();
            list.push(test_builder(def));
            let mut names: Vec<&str> = built().map(|t| t.name.as_str()).collect();
            names.push(TEST_BUILDER);
            (list, names)
        }
        Builders::Targets => (
            built().map(|t| openstack_builder(def, t)).collect(),
            built().map(|t| t.name.as_str()).collect(),
        ),
        Builders::Test => (vec![test_builder(def)], vec![TEST_BUILDER]),
        Builders::Target(t) => (vec![openstack_builder(def, t)], vec![t.name.as_str()]),
    };

    let provisioners: Vec<Value> = std::iter::once(upload_dir::open())
        .chain(
            def.steps
                .iter()
                .flat_map(|step| provisioners(step, &builder_names)),
        )
        .chain(std::iter::once(upload_dir::close()))
        .collect();

    json!({
        "variables": declared,
        "sensitive-variables": sensitive,
        "builders": builder_list,
        "provisioners": provisioners,
        "error-cleanup-provisioner": upload_dir::close(),
        "post-processors": [{
            "type": "manifest",
            "output": user(vars::MANIFEST_FILE),
            "strip_path": true,
        }],
    })
}

/// `{{user `NAME`}}`: a reference packer fills in at run time.
fn user(name: &str) -> String {
    format!("{{{{user `{name}`}}}}")
}

fn openstack_builder(def: &Definition, t: &Target) -> Value {
    let mut b = Map::new();
    let mut put = |key: &str, value: Value| {
        b.insert(key.to_string(), value);
    };
    put("name", json!(t.name));
    put("type", json!("openstack"));
    put(
        "image_name",
        json!(format!(
            "{}-{}-{{{{isotime \"20060102-150405\"}}}}",
            def.name, t.name
        )),
    );
    match &t.source_image {
        SourceImage::Id(id) => put("source_image", json!(id)),
        SourceImage::Name(name) => put("source_image_name", json!(name)),
    }
    put("flavor", json!(t.flavor));
    put("ssh_username", json!(t.ssh_username));
    // The run's own ed25519 key, imported into Nova by the tool (src/run_key.rs says why
    // not a key Nova generates). Empty (as in `render`'s var-file), packer has Nova make one.
    put("ssh_keypair_name", json!(user(vars::SSH_KEYPAIR_NAME)));
    put(
        "ssh_private_key_file",
        json!(user(vars::SSH_PRIVATE_KEY_FILE)),
    );
    // A pty ties remote commands to the SSH session: a cancelled build leaves none behind.
    put("ssh_pty", json!(true));
    match (&t.floating_ip, &t.floating_ip_network) {
        (Some(ip), _) => put("floating_ip", json!(ip)),
        (None, None) => put("floating_ip", json!(user(vars::FLOATING_IP))),
        (None, Some(_)) => {}
    }
    let optional = [
        (
            "floating_ip_network",
            t.floating_ip_network.as_ref().map(|v| json!(v)),
        ),
        ("ssh_timeout", t.ssh_timeout.as_ref().map(|v| json!(v))),
        ("region", t.region.as_ref().map(|v| json!(v))),
        (
            "availability_zone",
            t.availability_zone.as_ref().map(|v| json!(v)),
        ),
        (
            "use_blockstorage_volume",
            t.use_blockstorage_volume.map(|v| json!(v)),
        ),
        ("volume_size", t.volume_size.map(|v| json!(v))),
        ("volume_type", t.volume_type.as_ref().map(|v| json!(v))),
        (
            "image_visibility",
            t.image_visibility.as_ref().map(|v| json!(v)),
        ),
        ("image_min_disk", t.image_min_disk.map(|v| json!(v))),
        ("config_drive", t.config_drive.map(|v| json!(v))),
        ("networks", non_empty(&t.networks)),
        ("security_groups", non_empty(&t.security_groups)),
        ("image_tags", non_empty(&t.image_tags)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            put(key, value);
        }
    }
    let mut metadata: BTreeMap<String, String> = t.metadata.clone();
    metadata.extend([
        ("uworker_image".to_string(), def.name.clone()),
        ("uworker_target".to_string(), t.name.clone()),
        (
            "uworker_fingerprint".to_string(),
            user(vars::IMAGE_FINGERPRINT),
        ),
        ("uworker_git_commit".to_string(), user(vars::GIT_COMMIT)),
        ("uworker_run_url".to_string(), user(vars::RUN_URL)),
        // An image left `saving` by a dead run is swept once this run is over.
        (run_marks::RUN_ID_KEY.to_string(), user(vars::RUN_ID)),
        (
            run_marks::DEADLINE_KEY.to_string(),
            user(vars::RUN_DEADLINE),
        ),
    ]);
    put("metadata", json!(metadata));
    // On the temporary server: what `sweep` needs to find a dead run's leftovers (the
    // definition, the run, the target), to know when the run is over (its deadline) and
    // whose they were (commit, run URL). src/run_marks.rs has the whole contract.
    let mut instance_metadata = json!({
        "uworker_image": def.name,
        run_marks::RUN_ID_KEY: user(vars::RUN_ID),
        "uworker_target": t.name,
        "uworker_git_commit": user(vars::GIT_COMMIT),
        "uworker_run_url": user(vars::RUN_URL),
        run_marks::DEADLINE_KEY: user(vars::RUN_DEADLINE),
    });
    if t.floating_ip.is_none() && t.floating_ip_network.is_some() {
        // Packer allocates this server's address from the pool and releases it: a dead
        // run's may go back to the pool. Any other address on it is someone's.
        instance_metadata[run_marks::FLOATING_IP_KEY] = json!(run_marks::FLOATING_IP_FROM_POOL);
    }
    put("instance_metadata", instance_metadata);
    Value::Object(b)
}

fn non_empty(list: &[String]) -> Option<Value> {
    (!list.is_empty()).then(|| json!(list))
}

fn test_builder(def: &Definition) -> Value {
    json!({
        "name": TEST_BUILDER,
        "type": "null",
        "communicator": "ssh",
        "ssh_host": user(vars::TEST_HOST),
        "ssh_port": user(vars::TEST_PORT),
        "ssh_username": user(vars::TEST_SSH_USERNAME),
        "ssh_private_key_file": user(vars::TEST_SSH_KEY),
        "ssh_timeout": def.test.ssh_timeout,
        "ssh_pty": true,
    })
}

/// Runs a script with the step's environment sourced from packer's variable file (in the
/// private upload directory), so no value is on the host's command line. The file goes
/// as soon as it is read: a run that is interrupted (where packer cleans up nothing on the
/// host) leaves no value of it there.
const EXECUTE: &str =
    "chmod +x {{ .Path }}; . {{ .EnvVarFile }} && rm -f {{ .EnvVarFile }} && {{ .Path }}";
/// The same through sudo, keeping that environment (`-E`), never prompting (`-n`).
const SUDO_EXECUTE: &str = "chmod +x {{ .Path }}; . {{ .EnvVarFile }} && rm -f {{ .EnvVarFile }} && sudo -n -E sh -c '{{ .Path }}'";

/// The run's private directory on the host (`upload_dir`). `/tmp` is shared: a file there
/// with a predictable name (packer's `/tmp/script_1234.sh`, a worker config) may be made
/// beforehand by another local user, who then reads what is written into it and can
/// rewrite a script before root runs it. So the first step makes a directory of an
/// unpredictable name, 0700 (`mkdir` fails if anything has that name), every later upload
/// goes into it, and the last step (or packer's error cleanup) removes it.
mod upload_dir {
    use serde_json::{json, Value};

    use super::user;
    use crate::vars;

    /// Where the first and last steps' own scripts go: the SSH user's home (packer's
    /// working directory on the host), which no other user can write.
    const HOME: &str = ".";

    /// Makes the directory, then (where the SSH user may sudo) mounts a tmpfs of its own
    /// on it: what is uploaded there (the worker config, the steps' environment files
    /// with a URL's token) then never reaches the disk, whose freed blocks a snapshot
    /// keeps where the cloud does not trim.
    pub fn open() -> Value {
        let dir = user(vars::UPLOAD_DIR);
        json!({
            "type": "shell",
            "remote_folder": HOME,
            "inline": [
                format!("mkdir -m 0700 -- '{dir}'"),
                format!(
                    "sudo -n mount -t tmpfs -o \"mode=0700,nosuid,nodev,uid=$(id -u),gid=$(id -g)\" uworker-upload '{dir}' 2>/dev/null || echo 'the upload directory is on disk (no tmpfs: sudo mount failed)'"
                ),
            ],
        })
    }

    /// Removes the directory when it is this run's (never another user's that had the name).
    pub fn close() -> Value {
        let dir = user(vars::UPLOAD_DIR);
        json!({
            "type": "shell",
            "remote_folder": HOME,
            "inline": [format!(
                "if [ -d '{dir}' ] && [ ! -L '{dir}' ] && [ -O '{dir}' ]; then if grep -qsF ' {dir} ' /proc/self/mounts; then sudo -n umount '{dir}'; fi; rm -rf -- '{dir}'; fi"
            )],
        })
    }
}

/// The packer provisioners of one step: one, or none where it runs on no builder here;
/// the SBOM step is three (write it, download it, remove it on the host).
fn provisioners(step: &Step, builders: &[&str]) -> Vec<Value> {
    let runs_on: Vec<&str> = builders
        .iter()
        .copied()
        .filter(|b| step.runs_on(b))
        .collect();
    if runs_on.is_empty() {
        return Vec::new();
    }
    let mut steps = provisioner(step);
    if runs_on.len() < builders.len() {
        for p in &mut steps {
            p["only"] = json!(runs_on);
        }
    }
    steps
}

/// Where the SBOM is written on the host: the run's private upload directory.
fn sbom_on_host() -> String {
    format!("{}/{}", user(vars::UPLOAD_DIR), crate::sbom::FILE_NAME)
}

/// The tool's SBOM step: its script (staged in the work dir) writes the SBOM 0600 into
/// the private upload directory as the SSH user (nothing there needs root), packer
/// downloads it into the work dir, and it goes from the host at once.
fn sbom_steps() -> Vec<Value> {
    let mut write = Map::new();
    write.insert("script".into(), json!(user(vars::SBOM_SCRIPT)));
    shell(&mut write, false);
    write.insert(
        "environment_vars".into(),
        json!([format!("UWORKER_SBOM_FILE={}", sbom_on_host())]),
    );
    vec![
        Value::Object(write),
        json!({
            "type": "file",
            "direction": "download",
            "source": sbom_on_host(),
            "destination": user(vars::SBOM_FILE),
        }),
        json!({
            "type": "shell",
            "remote_folder": user(vars::UPLOAD_DIR),
            "inline": [format!("rm -f -- '{}'", sbom_on_host())],
        }),
    ]
}

fn provisioner(step: &Step) -> Vec<Value> {
    let mut p = Map::new();
    let local = |path: &str| format!("{}/{path}", user(vars::DEFINITION_DIR));
    match &step.kind {
        StepKind::Script(path) => {
            p.insert("script".into(), json!(local(path)));
            shell(&mut p, step.sudo);
        }
        StepKind::Inline(lines) => {
            p.insert("inline".into(), json!(lines));
            shell(&mut p, step.sudo);
        }
        StepKind::Upload {
            source,
            destination,
        } => {
            p.insert("type".into(), json!("file"));
            p.insert("source".into(), json!(local(source)));
            p.insert("destination".into(), json!(destination));
        }
        StepKind::UploadWorkerSource {
            source,
            destination,
        } => {
            p.insert("type".into(), json!("file"));
            p.insert(
                "source".into(),
                json!(format!("{}/{source}", user(vars::WORKER_SOURCE_DIR))),
            );
            p.insert("destination".into(), json!(destination));
        }
        StepKind::WorkerConfig { destination } => {
            p.insert("type".into(), json!("file"));
            p.insert("source".into(), json!(user(vars::WORKER_CONFIG_PATH)));
            p.insert("destination".into(), json!(destination));
        }
        StepKind::Sbom => return sbom_steps(),
    }
    if !step.environment.is_empty() {
        let env: Vec<String> = step
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        p.insert("environment_vars".into(), json!(env));
    }
    vec![Value::Object(p)]
}

/// A shell step: its script and its environment's file go into the private upload
/// directory, and the environment is sourced from that file.
fn shell(p: &mut Map<String, Value>, sudo: bool) {
    p.insert("type".into(), json!("shell"));
    p.insert("remote_folder".into(), json!(user(vars::UPLOAD_DIR)));
    p.insert("use_env_var_file".into(), json!(true));
    p.insert(
        "execute_command".into(),
        json!(if sudo { SUDO_EXECUTE } else { EXECUTE }),
    );
}

/// Pretty JSON with a trailing newline, as written to disk and stdout.
pub fn to_text(template: &Value) -> String {
    let mut text = serde_json::to_string_pretty(template).expect("JSON values serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn def(text: &str) -> Definition {
        Definition::parse(text, Path::new("/d"), Path::new("/d/image.toml")).unwrap()
    }

    const TWO_TARGETS: &str = r#"
name = "img"
[target.a]
source_image = "id-a"
flavor = "f"
[target.b]
source_image_name = "Ubuntu"
flavor = "f"
floating_ip_network = "public"
[[provision]]
inline = ["echo build"]
only = "build"
[[provision]]
inline = ["echo test"]
only = "test"
[[provision]]
inline = ["echo all"]
"#;

    /// The definition's steps: between the upload directory's first and last step.
    fn steps(t: &Value) -> &[Value] {
        let p = t["provisioners"].as_array().unwrap();
        &p[1..p.len() - 1]
    }

    #[test]
    fn only_lists_name_the_builders_a_step_runs_on() {
        let t = template(&def(TWO_TARGETS), Builders::All);
        let p = steps(&t);
        assert_eq!(p[0]["only"], json!(["a", "b"]));
        assert_eq!(p[1]["only"], json!(["test"]));
        assert!(p[2].get("only").is_none());
    }

    #[test]
    fn a_target_template_drops_test_steps_and_other_targets() {
        let d = def(TWO_TARGETS);
        let t = template(&d, Builders::Target(&d.targets["b"]));
        assert_eq!(t["builders"].as_array().unwrap().len(), 1);
        assert_eq!(t["builders"][0]["source_image_name"], "Ubuntu");
        assert!(
            t["builders"][0].get("floating_ip").is_none(),
            "pool given, no fixed IP"
        );
        let p = t["provisioners"].as_array().unwrap();
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|p| p.get("only").is_none()));
    }

    /// Nothing lands on a predictable path in a shared directory, and no value is on the
    /// host's command line: the first step makes the run's private directory (failing if
    /// the name is taken), every step's script and environment file go into it, the
    /// environment is sourced from that file, and the last step (or packer's error
    /// cleanup) removes the directory, only when it is the run's own.
    #[test]
    fn steps_run_from_the_private_upload_directory_with_their_environment_in_a_file() {
        let d = def(&format!(
            "{TWO_TARGETS}[[provision]]\nscript = \"s.sh\"\nsudo = true\nenvironment = {{ A = \"{{{{user `openstack_free_floating_ip`}}}}\" }}\n"
        ));
        let t = template(&d, Builders::All);
        let p = t["provisioners"].as_array().unwrap();
        let dir = "{{user `upload_dir`}}";
        assert_eq!(p[0]["inline"][0], format!("mkdir -m 0700 -- '{dir}'"));
        for tool_step in [&p[0], &p[p.len() - 1], &t["error-cleanup-provisioner"]] {
            assert_eq!(tool_step["remote_folder"], ".", "{tool_step}");
        }
        let close = p[p.len() - 1]["inline"][0].as_str().unwrap();
        assert!(close.contains(&format!("[ -O '{dir}' ]")), "{close}");
        assert_eq!(p[p.len() - 1], t["error-cleanup-provisioner"]);
        let shell: Vec<&Value> = steps(&t).iter().filter(|s| s["type"] == "shell").collect();
        assert_eq!(shell.len(), 4);
        for step in shell {
            assert_eq!(step["remote_folder"], dir, "{step}");
            assert_eq!(step["use_env_var_file"], true, "{step}");
            let execute = step["execute_command"].as_str().unwrap();
            assert!(execute.contains(". {{ .EnvVarFile }} && "), "{execute}");
            assert!(!execute.contains(".Vars"), "{execute}");
        }
        let sudo = &steps(&t)[3];
        assert_eq!(
            sudo["environment_vars"],
            json!(["A={{user `openstack_free_floating_ip`}}"])
        );
        assert!(sudo["execute_command"]
            .as_str()
            .unwrap()
            .ends_with("&& sudo -n -E sh -c '{{ .Path }}'"));
    }

    #[test]
    fn worker_keys_are_sensitive_variables_without_values() {
        let d = def(TWO_TARGETS);
        let t = template(&d, Builders::All);
        assert_eq!(
            t["sensitive-variables"],
            json!([
                "uworker_job_api_password",
                "uworker_job_api_root",
                "uworker_job_api_username"
            ])
        );
        assert_eq!(t["variables"]["uworker_job_api_password"], "");
        assert_eq!(
            t["builders"][0]["floating_ip"],
            "{{user `openstack_free_floating_ip`}}"
        );
    }

    /// `sbom = true`: the tool's script writes the SBOM into the private upload directory
    /// as the SSH user, packer downloads it into the work dir, and it leaves the host at
    /// once; its two variables are declared only where the step is.
    #[test]
    fn the_sbom_step_writes_downloads_and_removes_the_file() {
        let plain = template(&def(TWO_TARGETS), Builders::All);
        assert!(plain["variables"].get(vars::SBOM_FILE).is_none());
        let d = def(&format!(
            "{TWO_TARGETS}[[provision]]\nsbom = true\nonly = \"build\"\n"
        ));
        let t = template(&d, Builders::All);
        assert_eq!(t["variables"][vars::SBOM_SCRIPT], "");
        assert_eq!(t["variables"][vars::SBOM_FILE], "");
        let p = steps(&t);
        let [write, download, remove] = &p[p.len() - 3..] else {
            panic!("{p:?}")
        };
        let on_host = "{{user `upload_dir`}}/sbom.cdx.json";
        assert_eq!(write["script"], "{{user `sbom_script`}}");
        assert_eq!(write["remote_folder"], "{{user `upload_dir`}}");
        assert_eq!(write["execute_command"], EXECUTE, "not through sudo");
        assert_eq!(
            write["environment_vars"],
            json!([format!("UWORKER_SBOM_FILE={on_host}")])
        );
        assert_eq!(download["type"], "file");
        assert_eq!(download["direction"], "download");
        assert_eq!(download["source"], on_host);
        assert_eq!(download["destination"], "{{user `sbom_file`}}");
        assert_eq!(remove["inline"], json!([format!("rm -f -- '{on_host}'")]));
        for step in [write, download, remove] {
            assert_eq!(step["only"], json!(["a", "b"]), "{step}");
        }
        let test_only = template(&d, Builders::Test);
        assert!(!to_text(&test_only).contains("sbom.cdx.json"));
    }

    #[test]
    fn a_copy_has_no_packer_builder() {
        let d = def(&format!(
            "{TWO_TARGETS}[target.east]\ncopy_of = \"b\"\nregion = \"r2\"\n"
        ));
        for builders in [Builders::All, Builders::Targets] {
            let t = template(&d, builders);
            let names: Vec<&str> = t["builders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["name"].as_str().unwrap())
                .collect();
            assert!(
                names.contains(&"a") && names.contains(&"b") && !names.contains(&"east"),
                "{names:?}"
            );
        }
    }
}

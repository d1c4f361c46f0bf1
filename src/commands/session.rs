//! The `Session`: one invocation's definition and inputs, loaded once, and what the
//! commands ask of them: the cloud, packer, the checks of the worker config, and a
//! target's fingerprint (base image resolved, files hashed).

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::places::{Account, Place, Places};
use super::CommandError;
use crate::definition::tree::Found;
use crate::definition::{Definition, SourceImage, Target, COMMAND_MODE_PAIR, TEST_BUILDER};
use crate::env::Env;
use crate::fingerprint::{files, Fingerprint, Manifest, ManifestInputs};
use crate::inputs::{check_url, InputError, Inputs};
use crate::openstack::client::{Cloud, OpenStackError};
use crate::openstack::credentials::{self, AuthMethod, Credentials};
use crate::openstack::glance::{Glance, Image};
use crate::openstack::{clouds, openrc};
use crate::packer::Packer;
use crate::record::{BaseImageChoice, InputPin};
use crate::request::Load;
use crate::secrets::Redactor;
use crate::worker_source::snapshot::SnapshotError;
use crate::worker_source::{self, Snapshot};

/// The loaded definition and inputs of one invocation.
pub struct Session {
    pub definition: Definition,
    /// Every file the definition's steps read, as loading it walked them.
    definition_files: Vec<Found>,
    /// A local `worker_source`'s private copy: what is fingerprinted and uploaded.
    pub worker_source: Option<Snapshot>,
    pub inputs: Inputs,
    /// The remote inputs pinned into `inputs` (`load_pinned`); empty for the offline
    /// commands, which use the values as written.
    pub pins: Vec<InputPin>,
    /// The credential set the environment holds (after --openrc and OS_CLOUD), if a
    /// complete one is there.
    pub cloud_login: Option<AuthMethod>,
    pub redactor: Redactor,
    pub quiet: bool,
    /// Where the tool may cache facts between runs (the packer version).
    pub cache_dir: Option<PathBuf>,
    /// Each target's cloud and region: the environment's (OS_*: none, a usable set, or
    /// why the set is unusable) and the clouds.yaml entries targets name.
    places: Places,
    /// `--max-age`, over every target's own.
    max_age_override: Option<Duration>,
    /// `--packer`, found on first use.
    packer_path: Option<PathBuf>,
    packer: OnceCell<Packer>,
}

/// One cloud and region of `clouds_of`: its session (None without credentials, Err when
/// the login failed) and its targets.
pub struct TargetsAt<'s, 'a> {
    pub place: Place,
    pub cloud: Result<Option<&'s Cloud>, OpenStackError>,
    pub targets: Vec<&'a Target>,
}

/// One `packer validate` of `validate`: the builders (None: all) and whether their cloud
/// has credentials.
pub struct CloudValidation {
    pub packer: Packer,
    pub only: Option<Vec<String>>,
    pub has_credentials: bool,
}

/// A target's inputs hashed: the base image they name, the manifest and its fingerprint.
pub struct Fingerprinted {
    pub base_image: Option<BaseImageChoice>,
    pub manifest: Manifest,
    pub fingerprint: Fingerprint,
}

impl Session {
    pub fn load(load: &Load, env: &Env) -> Result<Session> {
        let loaded = Definition::load(&load.dir)?;
        let (mut definition, definition_files) = (loaded.definition, loaded.files);
        // OS_CLOUD's clouds.yaml entry, as the OS_* variables it stands for, so the
        // credentials, the redactor and validate see one kind of cloud settings.
        // An --openrc file's settings go under the environment's, the password asked on
        // the terminal when the file asks for it; OS_CLOUD then resolves over both.
        let rc = openrc::resolve(load.openrc.as_deref(), env, crate::terminal::read_password)?;
        let clouds = clouds::resolve(&rc.env)?;
        let env = &clouds.env;
        // The RC file's variables and the typed password reach packer through its
        // environment only, as the clouds.yaml entry's do (packer must not see OS_CLOUD).
        let remove = if clouds.from_entry.is_empty() {
            vec![]
        } else {
            vec!["OS_CLOUD"]
        };
        let environment = Account::environment(
            Credentials::from_env(env),
            rc.from_file.into_iter().chain(clouds.from_entry).collect(),
            remove,
        );
        let places = Places::load(&definition, env, environment)?;
        let mut inputs = Inputs::gather(&definition, &load.inputs, env)?;
        let cloud_login = credentials::detect(env);
        if let Some(warning) = inputs.worker.ignored_warning() {
            eprintln!("{warning}");
        }
        // The secrets of the clouds targets name are as secret as the environment's.
        let redactor = Redactor::for_run_with(
            &inputs.worker,
            inputs.values.values().map(String::as_str),
            places.secrets(),
            env,
        );
        let worker_source = wire_worker_source(&mut definition, &mut inputs)?;
        if crate::ci::in_actions(env) {
            crate::ci::mask_secrets(&redactor, env);
        }
        let cache_dir = env
            .get("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|home| Path::new(home).join(".cache")))
            .map(|dir| dir.join("uworker-image"));
        Ok(Session {
            definition,
            definition_files,
            worker_source,
            inputs,
            pins: Vec::new(),
            cloud_login,
            redactor,
            quiet: load.quiet,
            cache_dir,
            places,
            max_age_override: load.max_age,
            packer_path: load.packer.clone(),
            packer: OnceCell::new(),
        })
    }

    /// `load`, then every remote input that floats pinned (`crate::pin`): what `plan`,
    /// `build` and `matrix` fingerprint and build. An input that cannot be resolved
    /// stops the command (exit 3, naming the host): never a silent unpinned build.
    pub fn load_pinned(load: &Load, env: &Env) -> Result<Session> {
        let mut session = Session::load(load, env)?;
        let pinner = crate::pin::Pinner::from_env(env, &session.definition.pins);
        session.pin(&pinner)?;
        Ok(session)
    }

    /// Pins the `worker_source` requirement (a local source is hashed file by file).
    fn pin(&mut self, pinner: &crate::pin::Pinner) -> Result<()> {
        if self.worker_source.is_some() {
            return Ok(());
        }
        let Some(value) = self.inputs.values.get(worker_source::VARIABLE) else {
            return Ok(());
        };
        let Some(resolved) = crate::pin::pin_input(worker_source::VARIABLE, value, pinner)? else {
            return Ok(());
        };
        self.info(&format!(
            "pinned {}: {}",
            resolved.entry.input,
            resolved.entry.arrow()
        ));
        self.inputs
            .values
            .insert(worker_source::VARIABLE.to_string(), resolved.value);
        self.pins.push(resolved.entry);
        Ok(())
    }

    /// `--target`'s target, or the definition's only one.
    pub fn target(&self, name: Option<&str>) -> Result<&Target> {
        Ok(self.definition.select_target(name)?)
    }

    /// The built target whose image `target` is: itself, or the one it is a copy of
    /// (the definition guarantees it exists and is built).
    pub fn source_of<'t>(&'t self, target: &'t Target) -> Result<&'t Target> {
        match &target.copy_of {
            None => Ok(target),
            Some(source) => self.target(Some(source)),
        }
    }

    /// `--target`'s target, or every target (commands over several: prune, matrix, sweep).
    pub fn targets(&self, name: Option<&str>) -> Result<Vec<&Target>> {
        Ok(match name {
            Some(_) => vec![self.target(name)?],
            None => self.definition.targets.values().collect(),
        })
    }

    /// How old an image of `target`'s fingerprint may be: `--max-age`, else the
    /// definition's `max_age`.
    pub fn max_age(&self, target: &Target) -> Option<Duration> {
        self.max_age_override.or(target.max_age)
    }

    /// A progress line on stderr (redacted), unless --quiet.
    pub fn info(&self, line: &str) {
        if !self.quiet {
            eprintln!("{}", self.redactor.redact(line));
        }
    }

    /// Required worker keys that have no value.
    pub fn missing_secrets(&self) -> Vec<&str> {
        self.inputs
            .worker
            .missing(self.definition.worker.required.iter().map(String::as_str))
    }

    /// Required worker values present (unless waived, as for fork pull requests) and
    /// shaped right. Values are never echoed: every worker value is a secret.
    pub fn check_worker_config(&self, without_secrets: bool) -> Result<()> {
        let missing = self.missing_secrets();
        if !missing.is_empty() && !without_secrets {
            return Err(CommandError::MissingWorkerKeys {
                keys: missing.join(", "),
            }
            .into());
        }
        let worker = &self.inputs.worker;
        // Command mode needs both; one alone would start a worker that stops at once.
        if let [unset] = worker.missing(COMMAND_MODE_PAIR)[..] {
            let set = COMMAND_MODE_PAIR.into_iter().find(|k| *k != unset);
            return Err(CommandError::HalfCommandMode {
                unset: unset.to_string(),
                set: set.unwrap_or_default().to_string(),
            }
            .into());
        }
        if let Some(root) = worker.get("UWORKER_JOB_API_ROOT") {
            check_url(root).map_err(|message| InputError::BadValue {
                origin: worker
                    .origin("UWORKER_JOB_API_ROOT")
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                key: "UWORKER_JOB_API_ROOT".into(),
                message,
            })?;
        }
        Ok(())
    }

    /// The Keystone session of `target`'s cloud, in its region, opened on first use; None
    /// without credentials.
    pub fn cloud_for(&self, target: &Target) -> Result<Option<&Cloud>> {
        Ok(self.places.cloud(&self.places.place(target))?)
    }

    /// `target`'s session, for a command that cannot work without the cloud.
    pub fn require_cloud_for(
        &self,
        target: &Target,
        command: &'static str,
        needs: &'static str,
    ) -> Result<&Cloud> {
        self.cloud_for(target)?
            .ok_or_else(|| CommandError::NoCloudCredentials { command, needs }.into())
    }

    /// `targets` by the cloud and region they name, each place's session (None without
    /// credentials) with its targets: prune and sweep go to every one.
    pub fn clouds_of<'a>(&self, targets: &[&'a Target]) -> Vec<TargetsAt<'_, 'a>> {
        self.places
            .group(targets)
            .into_iter()
            .map(|(place, targets)| TargetsAt {
                cloud: self.places.cloud(&place),
                place,
                targets,
            })
            .collect()
    }

    /// Packer (from --packer or PATH), with the environment's cloud settings.
    pub fn packer(&self) -> Result<&Packer> {
        if let Some(packer) = self.packer.get() {
            return Ok(packer);
        }
        let packer = self.packer_in(
            Packer::find(self.packer_path.as_deref())?,
            &Place::default(),
        );
        Ok(self.packer.get_or_init(|| packer))
    }

    /// Packer for `validate`, one per cloud the targets are in, with the builders it checks
    /// (`test` with the environment's, when `with_test`); one for every builder when no
    /// target names a cloud of its own.
    pub fn packers_by_cloud(&self, with_test: bool) -> Result<Vec<CloudValidation>> {
        let mut builders: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        builders.insert(None, Vec::new());
        for target in self.definition.targets.values().filter(|t| t.is_built()) {
            let cloud = self.places.place(target).cloud;
            builders.entry(cloud).or_default().push(target.name.clone());
        }
        // The environment's cloud: full when a credential set is there (a broken one is
        // packer's to report).
        let environment = self.cloud_login.is_some();
        if builders.len() == 1 {
            return Ok(vec![CloudValidation {
                packer: self.packer()?.clone(),
                only: None,
                has_credentials: environment,
            }]);
        }
        if with_test {
            builders.entry(None).or_default().push(TEST_BUILDER.into());
        }
        let mut runs = Vec::new();
        for (cloud, only) in builders.into_iter().filter(|(_, b)| !b.is_empty()) {
            let place = Place {
                cloud,
                region: None,
            };
            let has_credentials = match &place.cloud {
                None => environment,
                Some(_) => matches!(self.places.account(&place).credentials, Ok(Some(_))),
            };
            runs.push(CloudValidation {
                packer: self.packer_in(self.packer()?.clone(), &place),
                has_credentials,
                only: Some(only),
            });
        }
        Ok(runs)
    }

    /// Packer for a run of `target`: its cloud's settings and its region.
    pub fn packer_for(&self, target: &Target) -> Result<Packer> {
        Ok(self.packer_in(self.packer()?.clone(), &self.places.place(target)))
    }

    fn packer_in(&self, packer: Packer, place: &Place) -> Packer {
        let account = self.places.account(place);
        let mut set = account.packer_env.clone();
        if let Some(region) = &place.region {
            set.retain(|(key, _)| key != "OS_REGION_NAME");
            set.push(("OS_REGION_NAME".into(), region.clone()));
        }
        if account.packer_own_env {
            return packer.with_own_cloud(set);
        }
        if set.is_empty() {
            packer
        } else {
            packer.with_env(set, account.packer_remove.clone())
        }
    }

    /// `target`'s fingerprint: its `source_image_name` resolved when a cloud is at hand,
    /// its files hashed while packer reports its version. A copy's is its source's.
    pub fn fingerprint(&self, target: &Target) -> Result<Fingerprinted> {
        let target = self.source_of(target)?;
        let packer = self.packer()?;
        let base_image = self.resolve_base_image(target)?;
        let manifest = self.manifest(target, packer, base_image.as_ref())?;
        let fingerprint = manifest.fingerprint();
        Ok(Fingerprinted {
            base_image,
            manifest,
            fingerprint,
        })
    }

    /// `PATH [target.NAME]`: where a target's settings are, for messages.
    pub fn target_origin(&self, target: &Target) -> String {
        format!(
            "{} [target.{}]",
            self.definition.path().display(),
            target.name
        )
    }

    /// The image a `source_image_name` resolves to, so a new base image changes the
    /// fingerprint: the one active image of that name, or the one of them that
    /// `trusted_base_owners` accepts. Several are refused, as packer would refuse the
    /// name: taking the newest would take anyone's. None for IDs or without a cloud.
    fn resolve_base_image(&self, target: &Target) -> Result<Option<BaseImageChoice>> {
        let (SourceImage::Name(name), Some(cloud)) =
            (&target.source_image, self.cloud_for(target)?)
        else {
            return Ok(None);
        };
        let found = Glance::new(cloud)?.active_named(name)?;
        let trusted = &target.trusted_base_owners;
        let accepted: Vec<&Image> = found
            .iter()
            .filter(|i| trusted.is_empty() || i.owner.as_ref().is_some_and(|o| trusted.contains(o)))
            .collect();
        let image = match (&found[..], &accepted[..]) {
            ([], _) => {
                return Err(CommandError::NoSuchBaseImage {
                    origin: self.target_origin(target),
                    name: name.clone(),
                }
                .into())
            }
            (_, [image]) => *image,
            // One image, of an owner not trusted: the error names it and its owner.
            ([image], []) => image,
            _ => {
                return Err(CommandError::AmbiguousBaseImage {
                    origin: self.target_origin(target),
                    name: name.clone(),
                    candidates: found.iter().map(describe_candidate).collect(),
                    accepted: accepted.len(),
                    trusted: trusted.clone(),
                }
                .into())
            }
        };
        let choice = BaseImageChoice {
            name: name.clone(),
            id: image.id.clone(),
            owner: image.owner.clone(),
            visibility: image.visibility.clone(),
        };
        check_base_owner(
            self,
            target,
            format!("`{name}` resolves to image {},", choice.id),
            &choice.owner,
        )?;
        Ok(Some(choice))
    }

    /// The manifest of one target: files hashed while packer reports its version.
    fn manifest(
        &self,
        target: &Target,
        packer: &Packer,
        base_image: Option<&BaseImageChoice>,
    ) -> Result<Manifest> {
        let version_probe = packer.version_cached(self.cache_dir.as_deref())?;
        let found = crate::fingerprint::collect_files(
            &self.definition,
            &self.definition_files,
            self.worker_source.as_ref().map_or(&[], Snapshot::files),
            target,
        );
        let hashed = files::hash_all(&found)?;
        let packer_version = version_probe.wait()?;
        Ok(Manifest::build(
            &ManifestInputs {
                definition: &self.definition,
                target,
                values: &self.inputs.values,
                worker: &self.inputs.worker,
                fingerprint_key: self.inputs.fingerprint_key.as_ref(),
                packer_version: &packer_version,
                resolved_base_image: base_image.map(|b| b.id.as_str()),
            },
            hashed,
        ))
    }
}

/// One of several images of a name, for the error that lists them.
fn describe_candidate(image: &Image) -> String {
    format!(
        "{} (owner {}, {}, created {})",
        image.id,
        image.owner.as_deref().unwrap_or("not told"),
        image.visibility.as_deref().unwrap_or("visibility not told"),
        image.created_at
    )
}

/// A base image of `owner` is acceptable to `target` when the target lists no
/// `trusted_base_owners`, or lists the owner. `image` says which image, for the error.
pub fn check_base_owner(
    session: &Session,
    target: &Target,
    image: String,
    owner: &Option<String>,
) -> Result<(), CommandError> {
    let trusted = &target.trusted_base_owners;
    if trusted.is_empty() || owner.as_ref().is_some_and(|o| trusted.contains(o)) {
        return Ok(());
    }
    Err(CommandError::UntrustedBaseImage {
        origin: session.target_origin(target),
        image,
        owner: owner.clone(),
        trusted: trusted.clone(),
    })
}

/// A local `worker_source` is read once into a private copy, which an upload step sends
/// and the fingerprint hashes.
fn wire_worker_source(
    definition: &mut Definition,
    inputs: &mut Inputs,
) -> Result<Option<Snapshot>> {
    let Some(value) = inputs.values.get(worker_source::VARIABLE) else {
        return Ok(None);
    };
    let bad_value = |message: String| InputError::BadValue {
        origin: inputs.origins[worker_source::VARIABLE].clone(),
        key: worker_source::VARIABLE.into(),
        message,
    };
    let source = worker_source::classify(&definition.dir, value).map_err(bad_value)?;
    let unusable = |error: SnapshotError| InputError::Unusable {
        origin: inputs.origins[worker_source::VARIABLE].clone(),
        key: worker_source::VARIABLE.into(),
        error: error.into(),
    };
    let Some(snapshot) = Snapshot::take(&definition.dir, &source).map_err(unusable)? else {
        return Ok(None);
    };
    worker_source::wire(
        definition,
        &mut inputs.values,
        &source,
        snapshot.source_dir(),
    );
    Ok(Some(snapshot))
}

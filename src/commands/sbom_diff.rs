//! `sbom-diff OLD NEW`: what changed between two images' SBOMs, as text or JSON. Each side
//! is a file, or `image:ID`: that image's SBOM, found through its Glance properties (the
//! fingerprint names its release, `uworker_sbom_sha256` the digest) and the release's
//! asset `sbom-<ID>.cdx.json`, whose SHA-256 must match.

use anyhow::{Context as _, Result};

use crate::env::Env;
use crate::exit::Code;
use crate::github::GitHub;
use crate::openstack::glance::Glance;
use crate::report::release_tag;
use crate::request::{Output, SbomDiff, SbomSource};
use crate::run_marks::FINGERPRINT_PROPERTY;
use crate::sbom::SbomError;

use super::Session;

pub fn run(request: &SbomDiff, env: &Env) -> Result<Code> {
    let mut session = None;
    let mut read = |source: &SbomSource| -> Result<crate::sbom::Packages> {
        let (label, text) = match source {
            SbomSource::File(path) => {
                let text = crate::input_file::read_text(path, crate::input_file::RECORD_CAP)
                    .map_err(|error| SbomError::Read {
                        path: path.to_path_buf(),
                        error,
                    })?;
                (path.display().to_string(), text)
            }
            SbomSource::Image(id) => {
                let session = match session {
                    Some(ref loaded) => loaded,
                    None => session.insert(Session::load(&request.load, env)?),
                };
                (
                    format!("image {id}"),
                    image_sbom(session, request, id, env)?,
                )
            }
        };
        crate::sbom::read(&text).with_context(|| label)
    };
    let old = read(&request.old)?;
    let new = read(&request.new)?;
    let diff = crate::sbom::diff(&old, &new);
    let text = match request.output {
        Output::Json => serde_json::to_string_pretty(&diff)? + "\n",
        Output::Text => diff.lines().join("\n") + "\n",
    };
    super::print(text.as_bytes())
}

/// The SBOM of image `id`: its release asset, checked against the image's digest.
fn image_sbom(session: &Session, request: &SbomDiff, id: &str, env: &Env) -> Result<String> {
    let target = session.target(request.target.as_deref())?;
    let cloud = session.require_cloud_for(target, "sbom-diff image:ID", "Glance")?;
    let image = Glance::new(cloud)?
        .get(id)
        .with_context(|| format!("reading image {id}"))?;
    let no = |make: fn(String) -> SbomError| make(id.to_string());
    let expected = image
        .property(crate::sbom::SHA256_PROPERTY)
        .ok_or_else(|| no(|image| SbomError::NoSbom { image }))?;
    let fingerprint = image
        .property(FINGERPRINT_PROPERTY)
        .ok_or_else(|| no(|image| SbomError::NoFingerprint { image }))?;
    let (Some(token), Some(repository)) = (env.get("GITHUB_TOKEN"), env.get("GITHUB_REPOSITORY"))
    else {
        return Err(no(|image| SbomError::NoGitHub { image }).into());
    };
    let api = env
        .get("GITHUB_API_URL")
        .unwrap_or("https://api.github.com");
    let github = GitHub::new(api, repository, token, super::report::retry_settings(env)?)?;
    let tag = release_tag(&crate::fingerprint::Fingerprint::from(
        fingerprint.to_string(),
    ));
    let asset = crate::sbom::asset_name(id);
    let missing = |place: String| SbomError::NoAsset {
        image: id.to_string(),
        place,
    };
    let release = github
        .release_by_tag(&tag)?
        .ok_or_else(|| missing(format!("no release {tag} in {repository}")))?;
    let text = github
        .asset_text(&release, &asset)?
        .ok_or_else(|| missing(format!("release {tag} has no asset {asset}")))?;
    let actual = crate::sbom::sha256(&text);
    if actual != expected {
        return Err(SbomError::Digest {
            image: id.to_string(),
            asset,
            expected: expected.to_string(),
            actual,
        }
        .into());
    }
    Ok(text)
}

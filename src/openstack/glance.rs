//! Glance v2: finding this project's images by the fingerprint property, resolving base
//! image names, listing, patching, tagging and deleting images.
//!
//! Fingerprints are published, so anyone on a shared cloud can put ours on a public
//! image: every lookup of "our" images asks Glance for the token's project as `owner`,
//! and checks the owner of each image it gets anyway.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::client::{Cloud, OpenStackError};
use crate::lifecycle::{Status, STATUS_PROPERTY};
use crate::run_marks::{FINGERPRINT_PROPERTY, IMAGE_PROPERTY, TARGET_PROPERTY};

#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub status: String,
    pub created_at: String,
    /// The project that owns the image.
    #[serde(default)]
    pub owner: Option<String>,
    /// public, community, shared or private.
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Every other field, custom properties included.
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

impl Image {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(Value::as_str)
    }
}

#[derive(Deserialize)]
struct Page {
    images: Vec<Image>,
    #[serde(default)]
    next: Option<String>,
}

pub struct Glance<'a> {
    cloud: &'a Cloud,
    base: String,
    /// Images per page (Glance's own default is 25).
    pub page_size: u32,
}

impl<'a> Glance<'a> {
    pub fn new(cloud: &'a Cloud) -> Result<Glance<'a>, OpenStackError> {
        let base = cloud.endpoint("image")?;
        // A catalog entry may or may not carry the version.
        let base = base.trim_end_matches("/v2").to_string();
        Ok(Glance {
            cloud,
            base,
            page_size: 100,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2{path}", self.base)
    }

    /// Images matching `filters` (server-side), newest first, all pages followed while
    /// `keep_going` says so.
    pub fn list(
        &self,
        filters: &[(&str, &str)],
        mut keep_going: impl FnMut(&Image) -> bool,
    ) -> Result<Vec<Image>, OpenStackError> {
        let mut query: Vec<(String, String)> = filters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        query.push(("sort".into(), "created_at:desc,id:desc".into()));
        query.push(("limit".into(), self.page_size.to_string()));
        let mut url = self.url("/images");
        let mut first = true;
        let mut images = Vec::new();
        loop {
            let page: Page = self
                .cloud
                .call(
                    Method::GET,
                    &url,
                    |r| if first { r.query(&query) } else { r },
                )?
                .json()
                .map_err(|error| OpenStackError::Http {
                    call: format!("GET {url}"),
                    error,
                })?;
            first = false;
            for image in page.images {
                let more = keep_going(&image);
                images.push(image);
                if !more {
                    return Ok(images);
                }
            }
            match page.next {
                // `next` is a path with its query (`/v2/images?marker=...`).
                Some(next) if !next.is_empty() => url = format!("{}{next}", self.base),
                _ => return Ok(images),
            }
        }
    }

    /// Images owned by the token's project that match `filters`, newest first, all pages
    /// followed. Glance filters by owner, and each image's owner is checked again.
    pub fn list_owned(&self, filters: &[(&str, &str)]) -> Result<Vec<Image>, OpenStackError> {
        let owner = self.cloud.project_id()?;
        let mut filters = filters.to_vec();
        filters.push(("owner", owner));
        let found = self.list(&filters, |_| true)?;
        Ok(found
            .into_iter()
            .filter(|i| i.owner.as_deref() == Some(owner))
            .collect())
    }

    /// The newest active image of the token's project with `property` = `value`.
    pub fn newest_owned_with(
        &self,
        property: &str,
        value: &str,
    ) -> Result<Option<Image>, OpenStackError> {
        let owner = self.cloud.project_id()?;
        let wanted =
            |i: &Image| i.property(property) == Some(value) && i.owner.as_deref() == Some(owner);
        let found = self.list(
            &[(property, value), ("status", "active"), ("owner", owner)],
            |i| !wanted(i),
        )?;
        Ok(found.into_iter().find(|i| wanted(i)))
    }

    /// The newest active image of the token's project whose fingerprint property is
    /// `fingerprint`.
    pub fn find_fingerprint(&self, fingerprint: &str) -> Result<Option<Image>, OpenStackError> {
        self.newest_owned_with(FINGERPRINT_PROPERTY, fingerprint)
    }

    /// The images of definition `name` (and of `target`, when given) that the token's
    /// project owns, newest first: marked `uworker_image` = `name` and named `<name>-…`
    /// (both marks must agree: a property alone could be copied onto a foreign image).
    pub fn definition_images(
        &self,
        name: &str,
        target: Option<&str>,
    ) -> Result<Vec<Image>, OpenStackError> {
        let mut filters = vec![(IMAGE_PROPERTY, name)];
        filters.extend(target.map(|t| (TARGET_PROPERTY, t)));
        let prefix = format!("{name}-");
        Ok(self
            .list_owned(&filters)?
            .into_iter()
            .filter(|i| i.property(IMAGE_PROPERTY) == Some(name))
            .filter(|i| target.is_none_or(|t| i.property(TARGET_PROPERTY) == Some(t)))
            .filter(|i| i.name.as_deref().is_some_and(|n| n.starts_with(&prefix)))
            .collect())
    }

    /// The current image of `target` of definition `name`, exactly as consumers ask for
    /// it (no name check, unlike `definition_images`): the project's newest active image
    /// with `uworker_image`, `uworker_target` and `uworker_status` = `verified`.
    pub fn current_image(&self, name: &str, target: &str) -> Result<Option<Image>, OpenStackError> {
        let owner = self.cloud.project_id()?;
        let verified = Status::Verified.as_str();
        let wanted = |i: &Image| {
            i.owner.as_deref() == Some(owner)
                && i.property(IMAGE_PROPERTY) == Some(name)
                && i.property(TARGET_PROPERTY) == Some(target)
                && i.property(STATUS_PROPERTY) == Some(verified)
        };
        let found = self.list(
            &[
                (IMAGE_PROPERTY, name),
                (TARGET_PROPERTY, target),
                (STATUS_PROPERTY, verified),
                ("status", "active"),
                ("owner", owner),
            ],
            |i| !wanted(i),
        )?;
        Ok(found.into_iter().find(|i| wanted(i)))
    }

    /// Every active image called `name` that the project sees, whoever owns it (base
    /// images are often public), newest first: what `source_image_name` may mean.
    pub fn active_named(&self, name: &str) -> Result<Vec<Image>, OpenStackError> {
        let found = self.list(&[("name", name), ("status", "active")], |_| true)?;
        Ok(found
            .into_iter()
            .filter(|i| i.name.as_deref() == Some(name) && i.status == "active")
            .collect())
    }

    pub fn get(&self, id: &str) -> Result<Image, OpenStackError> {
        self.cloud.get_json(&self.url(&format!("/images/{id}")))
    }

    /// Sets string properties (JSON patch, `add` replaces an existing value).
    pub fn set_properties(
        &self,
        id: &str,
        properties: &[(&str, &str)],
    ) -> Result<Image, OpenStackError> {
        let url = self.url(&format!("/images/{id}"));
        let ops: Vec<Value> = properties
            .iter()
            .map(|(k, v)| serde_json::json!({ "op": "add", "path": format!("/{k}"), "value": v }))
            .collect();
        let body = serde_json::to_vec(&ops).expect("JSON serializes");
        self.cloud
            .call(Method::PATCH, &url, |r| {
                r.header(
                    "Content-Type",
                    "application/openstack-images-v2.1-json-patch",
                )
                .body(body.clone())
            })?
            .json()
            .map_err(|error| OpenStackError::Http {
                call: format!("PATCH {url}"),
                error,
            })
    }

    /// `POST /v2/images`: a new image record (no data yet) as `body` describes it.
    pub fn create(&self, body: &Value) -> Result<Image, OpenStackError> {
        let url = self.url("/images");
        self.cloud
            .call(Method::POST, &url, |r| r.json(body))?
            .json()
            .map_err(|error| OpenStackError::Http {
                call: format!("POST {url}"),
                error,
            })
    }

    /// Where an image's data is read and written (`GET`/`PUT .../file`).
    pub fn file_url(&self, id: &str) -> String {
        self.url(&format!("/images/{id}/file"))
    }

    pub fn add_tag(&self, id: &str, tag: &str) -> Result<(), OpenStackError> {
        let url = self.url(&format!("/images/{id}/tags/{tag}"));
        self.cloud.call(Method::PUT, &url, |r| r)?;
        Ok(())
    }

    pub fn delete(&self, id: &str) -> Result<(), OpenStackError> {
        let url = self.url(&format!("/images/{id}"));
        self.cloud.call(Method::DELETE, &url, |r| r)?;
        Ok(())
    }
}

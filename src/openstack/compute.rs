//! Compute (Nova) v2.1: the calls `build` makes for its run (its key pair, its server's
//! lease) and `sweep` makes to find and delete what a dead run left (servers with their
//! metadata and ports, key pairs). Nova at its base microversion 2.1 (no header): every
//! cloud serves it.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{Cloud, OpenStackError};

#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    /// RFC 3339 in UTC (`2026-01-01T00:00:00Z`).
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// What Nova is doing with the server right now (`spawning`, `powering-off`,
    /// `image_uploading`, ...); None when nothing. Nova changes no metadata while a task runs.
    #[serde(default, rename = "OS-EXT-STS:task_state")]
    pub task_state: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Keypair {
    pub name: String,
    /// Only `show` carries it (not the list at 2.1).
    #[serde(default)]
    pub created_at: Option<String>,
}

pub struct Nova<'a> {
    cloud: &'a Cloud,
    base: String,
    /// Servers per page.
    pub page_size: u32,
}

impl<'a> Nova<'a> {
    pub fn new(cloud: &'a Cloud) -> Result<Nova<'a>, OpenStackError> {
        Ok(Nova {
            cloud,
            base: cloud.endpoint("compute")?,
            page_size: 200,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every server of the project, with details (metadata, key pair, creation time),
    /// all pages followed.
    pub fn servers(&self) -> Result<Vec<Server>, OpenStackError> {
        #[derive(Deserialize)]
        struct Page {
            servers: Vec<Server>,
        }
        let mut servers: Vec<Server> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = format!("{}?limit={}", self.url("/servers/detail"), self.page_size);
            if let Some(marker) = &marker {
                url.push_str(&format!("&marker={marker}"));
            }
            let page: Page = self.cloud.get_json(&url)?;
            let full = page.servers.len() as u32 >= self.page_size;
            marker = page.servers.last().map(|s| s.id.clone());
            servers.extend(page.servers);
            if !full || marker.is_none() {
                return Ok(servers);
            }
        }
    }

    /// The IDs of the server's ports (what a floating IP is attached to).
    pub fn server_ports(&self, server_id: &str) -> Result<Vec<String>, OpenStackError> {
        #[derive(Deserialize)]
        struct Attachment {
            port_id: String,
        }
        #[derive(Deserialize)]
        struct Attachments {
            #[serde(rename = "interfaceAttachments")]
            attachments: Vec<Attachment>,
        }
        let url = self.url(&format!("/servers/{server_id}/os-interface"));
        let found: Attachments = self.cloud.get_json(&url)?;
        Ok(found.attachments.into_iter().map(|a| a.port_id).collect())
    }

    pub fn delete_server(&self, id: &str) -> Result<(), OpenStackError> {
        self.cloud
            .call(Method::DELETE, &self.url(&format!("/servers/{id}")), |r| r)?;
        Ok(())
    }

    /// The user's key pairs (names only: the list carries no creation time).
    pub fn keypairs(&self) -> Result<Vec<Keypair>, OpenStackError> {
        #[derive(Deserialize)]
        struct Wrapped {
            keypair: Keypair,
        }
        #[derive(Deserialize)]
        struct List {
            keypairs: Vec<Wrapped>,
        }
        let url = self.url("/os-keypairs");
        let list: List = self.cloud.get_json(&url)?;
        Ok(list.keypairs.into_iter().map(|w| w.keypair).collect())
    }

    fn keypair_url(&self, name: &str) -> String {
        self.url(&format!("/os-keypairs/{}", path_segment(name)))
    }

    /// One key pair with its creation time.
    pub fn keypair(&self, name: &str) -> Result<Keypair, OpenStackError> {
        #[derive(Deserialize)]
        struct Shown {
            keypair: Keypair,
        }
        let shown: Shown = self.cloud.get_json(&self.keypair_url(name))?;
        Ok(shown.keypair)
    }

    /// Imports a public key as the user's key pair `name` (Nova generates nothing).
    pub fn import_keypair(&self, name: &str, public_key: &str) -> Result<(), OpenStackError> {
        let body = json!({"keypair": {"name": name, "public_key": public_key}});
        self.cloud
            .call(Method::POST, &self.url("/os-keypairs"), |r| r.json(&body))?;
        Ok(())
    }

    pub fn delete_keypair(&self, name: &str) -> Result<(), OpenStackError> {
        self.cloud
            .call(Method::DELETE, &self.keypair_url(name), |r| r)?;
        Ok(())
    }

    /// Sets metadata items on a server (others stay as they are).
    pub fn set_server_metadata(
        &self,
        id: &str,
        items: &BTreeMap<String, String>,
    ) -> Result<(), OpenStackError> {
        let url = self.url(&format!("/servers/{id}/metadata"));
        let body = json!({ "metadata": items });
        self.cloud.call(Method::POST, &url, |r| r.json(&body))?;
        Ok(())
    }
}

/// A name as one URL path segment: the tool's key pair names hold spaces.
fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether an error means the thing is already gone (someone else deleted it first).
pub fn is_gone(error: &OpenStackError) -> bool {
    matches!(error, OpenStackError::Api { status: 404, .. })
}

/// Whether Nova refused a change because the server is busy (building, or a task such as
/// stopping or saving its image running: Nova's `check_instance_state` answers 409).
pub fn is_busy(error: &OpenStackError) -> bool {
    matches!(error, OpenStackError::Api { status: 409, .. })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_path_segment_escapes_all_but_the_unreserved() {
        assert_eq!(
            super::path_segment("uworker-image a.b smog_1 42-1 17"),
            "uworker-image%20a.b%20smog_1%2042-1%2017"
        );
        assert_eq!(super::path_segment("x/y?z#%"), "x%2Fy%3Fz%23%25");
    }
}

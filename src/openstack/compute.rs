//! Compute (Nova) v2.1: the calls `build` makes for its run (its key pair, its server's
//! lease, the verification's server: create, show, delete) and `sweep` makes to find and
//! delete what a dead run left (servers with their metadata and ports, key pairs). Nova at its base microversion 2.1 (no header): every
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
    /// Network name -> its addresses (fixed and floating), as Nova shows them.
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<Address>>,
    /// Why the server is in ERROR, when it is.
    #[serde(default)]
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Address {
    pub addr: String,
    #[serde(default)]
    pub version: u8,
    #[serde(default, rename = "OS-EXT-IPS:type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub message: String,
}

impl Server {
    /// The address to reach the server at: a floating IPv4 address if it has one, else
    /// its first fixed IPv4 address (the first network's, in Nova's order of names).
    pub fn access_ipv4(&self) -> Option<&str> {
        let all = || self.addresses.values().flatten().filter(|a| a.version == 4);
        all()
            .find(|a| a.kind.as_deref() == Some("floating"))
            .or_else(|| all().next())
            .map(|a| a.addr.as_str())
    }
}

/// What `create_server` asks Nova for (base microversion 2.1).
#[derive(Debug, Clone)]
pub struct NewServer<'a> {
    pub name: &'a str,
    pub image_id: &'a str,
    pub flavor_id: &'a str,
    pub key_name: &'a str,
    /// cloud-init's user-data, as written (base64-encoded here).
    pub user_data: &'a str,
    pub metadata: &'a BTreeMap<String, String>,
    /// Network UUIDs; empty: the cloud's default.
    pub networks: &'a [String],
    pub security_groups: &'a [String],
    pub availability_zone: Option<&'a str>,
    pub config_drive: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Flavor {
    pub id: String,
    #[serde(default)]
    pub name: String,
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

    /// One server with its details.
    pub fn server(&self, id: &str) -> Result<Server, OpenStackError> {
        #[derive(Deserialize)]
        struct Shown {
            server: Server,
        }
        let shown: Shown = self.cloud.get_json(&self.url(&format!("/servers/{id}")))?;
        Ok(shown.server)
    }

    /// Asks Nova for a server; its ID (it is `BUILD` until booted: see `server`).
    pub fn create_server(&self, new: &NewServer) -> Result<String, OpenStackError> {
        use base64::Engine as _;
        #[derive(Deserialize)]
        struct Created {
            server: Id,
        }
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let mut server = json!({
            "name": new.name,
            "imageRef": new.image_id,
            "flavorRef": new.flavor_id,
            "key_name": new.key_name,
            "user_data": base64::engine::general_purpose::STANDARD.encode(new.user_data),
            "metadata": new.metadata,
        });
        if !new.networks.is_empty() {
            server["networks"] = new
                .networks
                .iter()
                .map(|uuid| json!({ "uuid": uuid }))
                .collect();
        }
        if !new.security_groups.is_empty() {
            server["security_groups"] = new
                .security_groups
                .iter()
                .map(|name| json!({ "name": name }))
                .collect();
        }
        if let Some(zone) = new.availability_zone {
            server["availability_zone"] = json!(zone);
        }
        if let Some(drive) = new.config_drive {
            server["config_drive"] = json!(drive);
        }
        let body = json!({ "server": server });
        let url = self.url("/servers");
        let created: Created = self
            .cloud
            .call(Method::POST, &url, |r| r.json(&body))?
            .json()
            .map_err(|error| OpenStackError::Http {
                call: format!("POST {url}"),
                error,
            })?;
        Ok(created.server.id)
    }

    /// The ID of the flavor `name_or_id` names (packer's `flavor` takes either).
    pub fn flavor_id(&self, name_or_id: &str) -> Result<String, OpenStackError> {
        #[derive(Deserialize)]
        struct List {
            flavors: Vec<Flavor>,
        }
        let list: List = self.cloud.get_json(&self.url("/flavors"))?;
        let items: Vec<(&str, &str)> = list
            .flavors
            .iter()
            .map(|f| (f.id.as_str(), f.name.as_str()))
            .collect();
        super::id_of_name_or_id(&items, name_or_id, "flavor", "openstack flavor list")
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

//! Compute (Nova) v2.1 and Networking (Neutron) v2.0: the calls `sweep` makes to find and
//! delete what a dead run left (servers with their metadata and ports, key pairs, floating
//! IPs). Nova at its base microversion 2.1 (no header): every cloud serves it.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

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
}

#[derive(Debug, Clone, Deserialize)]
pub struct Keypair {
    pub name: String,
    /// Only `show` carries it (not the list at 2.1).
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    #[serde(default)]
    pub port_id: Option<String>,
}

/// Nova's answers are `{"<collection>": ...}`; this parses one and names the call on error.
fn parse<T: DeserializeOwned>(method: &str, url: &str, value: Value) -> Result<T, OpenStackError> {
    serde_json::from_value(value)
        .map_err(|e| OpenStackError::Config(format!("{method} {url}: {e}")))
}

fn get_json(cloud: &Cloud, url: &str) -> Result<Value, OpenStackError> {
    cloud
        .call(Method::GET, url, |r| r)?
        .json()
        .map_err(|e| OpenStackError::Config(format!("GET {url}: {e}")))
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
            let page: Page = parse("GET", &url, get_json(self.cloud, &url)?)?;
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
        let found: Attachments = parse("GET", &url, get_json(self.cloud, &url)?)?;
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
        let list: List = parse("GET", &url, get_json(self.cloud, &url)?)?;
        Ok(list.keypairs.into_iter().map(|w| w.keypair).collect())
    }

    /// One key pair with its creation time.
    pub fn keypair(&self, name: &str) -> Result<Keypair, OpenStackError> {
        #[derive(Deserialize)]
        struct Shown {
            keypair: Keypair,
        }
        let url = self.url(&format!("/os-keypairs/{name}"));
        let shown: Shown = parse("GET", &url, get_json(self.cloud, &url)?)?;
        Ok(shown.keypair)
    }

    pub fn delete_keypair(&self, name: &str) -> Result<(), OpenStackError> {
        self.cloud.call(
            Method::DELETE,
            &self.url(&format!("/os-keypairs/{name}")),
            |r| r,
        )?;
        Ok(())
    }
}

pub struct Neutron<'a> {
    cloud: &'a Cloud,
    base: String,
}

impl<'a> Neutron<'a> {
    pub fn new(cloud: &'a Cloud) -> Result<Neutron<'a>, OpenStackError> {
        let base = cloud.endpoint("network")?;
        let base = base.trim_end_matches("/v2.0").to_string();
        Ok(Neutron { cloud, base })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2.0{path}", self.base)
    }

    /// The project's floating IPs.
    pub fn floating_ips(&self) -> Result<Vec<FloatingIp>, OpenStackError> {
        #[derive(Deserialize)]
        struct List {
            floatingips: Vec<FloatingIp>,
        }
        let url = self.url("/floatingips");
        let list: List = parse("GET", &url, get_json(self.cloud, &url)?)?;
        Ok(list.floatingips)
    }

    /// Releases a floating IP back to its pool.
    pub fn release_floating_ip(&self, id: &str) -> Result<(), OpenStackError> {
        self.cloud.call(
            Method::DELETE,
            &self.url(&format!("/floatingips/{id}")),
            |r| r,
        )?;
        Ok(())
    }

    /// Detaches a floating IP from its port; it stays allocated to the project.
    pub fn detach_floating_ip(&self, id: &str) -> Result<(), OpenStackError> {
        let body = serde_json::json!({ "floatingip": { "port_id": null } });
        self.cloud
            .call(Method::PUT, &self.url(&format!("/floatingips/{id}")), |r| {
                r.json(&body)
            })?;
        Ok(())
    }
}

/// Whether an error means the thing is already gone (someone else deleted it first).
pub fn is_gone(error: &OpenStackError) -> bool {
    matches!(error, OpenStackError::Api { status: 404, .. })
}

//! Networking (Neutron) v2.0: the project's floating IPs, for `build` (the seed gives a
//! floating IP by address; packer takes its ID; the verification's server gets the
//! target's floating IP, or one from its pool) and `sweep` (release or detach them).

use reqwest::Method;
use serde::Deserialize;

use super::client::{Cloud, OpenStackError};

#[derive(Debug, Clone, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    #[serde(default)]
    pub port_id: Option<String>,
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
        self.list("/floatingips")
    }

    fn list(&self, path: &str) -> Result<Vec<FloatingIp>, OpenStackError> {
        #[derive(Deserialize)]
        struct List {
            floatingips: Vec<FloatingIp>,
        }
        let list: List = self.cloud.get_json(&self.url(path))?;
        Ok(list.floatingips)
    }

    /// The ID of the project's floating IP with `address`: packer's openstack builder
    /// (1.6.6 and the plugin since) takes a floating IP by its ID, while the seed's
    /// `openstack_free_floating_ip` holds the address.
    pub fn floating_ip_id(&self, address: &str) -> Result<String, OpenStackError> {
        // An address is digits, dots and colons (checked when the input was read).
        let mut ids = self
            .list(&format!("/floatingips?floating_ip_address={address}"))?
            .into_iter()
            .filter(|f| f.floating_ip_address == address)
            .map(|f| f.id);
        match (ids.next(), ids.next()) {
            (Some(id), None) => Ok(id),
            (None, _) => Err(OpenStackError::Config(format!(
                "this project has no floating IP {address}: allocate it first (`openstack floating ip create`), or give its ID"
            ))),
            (Some(_), Some(_)) => Err(OpenStackError::Config(format!(
                "more than one floating IP has the address {address}: give the ID"
            ))),
        }
    }

    /// One floating IP.
    pub fn floating_ip(&self, id: &str) -> Result<FloatingIp, OpenStackError> {
        #[derive(Deserialize)]
        struct Shown {
            floatingip: FloatingIp,
        }
        let shown: Shown = self
            .cloud
            .get_json(&self.url(&format!("/floatingips/{id}")))?;
        Ok(shown.floatingip)
    }

    /// The ID of the network `name_or_id` names (packer's `floating_ip_network` takes either).
    pub fn network_id(&self, name_or_id: &str) -> Result<String, OpenStackError> {
        #[derive(Deserialize)]
        struct Network {
            id: String,
            #[serde(default)]
            name: String,
        }
        #[derive(Deserialize)]
        struct List {
            networks: Vec<Network>,
        }
        let list: List = self.cloud.get_json(&self.url("/networks"))?;
        let items: Vec<(&str, &str)> = list
            .networks
            .iter()
            .map(|n| (n.id.as_str(), n.name.as_str()))
            .collect();
        super::id_of_name_or_id(
            &items,
            name_or_id,
            "network",
            "openstack network list --external",
        )
    }

    /// A new floating IP from the external network `network_id`, attached to `port_id`.
    pub fn allocate_floating_ip(
        &self,
        network_id: &str,
        port_id: &str,
    ) -> Result<FloatingIp, OpenStackError> {
        #[derive(Deserialize)]
        struct Created {
            floatingip: FloatingIp,
        }
        let body = serde_json::json!({
            "floatingip": { "floating_network_id": network_id, "port_id": port_id }
        });
        let url = self.url("/floatingips");
        self.cloud
            .call(Method::POST, &url, |r| r.json(&body))?
            .json::<Created>()
            .map(|c| c.floatingip)
            .map_err(|error| OpenStackError::Http {
                call: format!("POST {url}"),
                error,
            })
    }

    /// Attaches the floating IP `id` to `port_id`.
    pub fn attach_floating_ip(&self, id: &str, port_id: &str) -> Result<(), OpenStackError> {
        let body = serde_json::json!({ "floatingip": { "port_id": port_id } });
        self.cloud
            .call(Method::PUT, &self.url(&format!("/floatingips/{id}")), |r| {
                r.json(&body)
            })?;
        Ok(())
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

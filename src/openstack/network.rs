//! Networking (Neutron) v2.0: the floating IP that has an address. Packer's openstack
//! builder (1.6.6 and the plugin since) takes a floating IP by its ID, while the seed's
//! `openstack_free_floating_ip` holds the address; `build` looks the ID up here.

use reqwest::Method;
use serde::Deserialize;

use super::client::{Cloud, OpenStackError};

#[derive(Deserialize)]
struct FloatingIps {
    floatingips: Vec<FloatingIp>,
}

#[derive(Deserialize)]
struct FloatingIp {
    id: String,
    floating_ip_address: String,
}

/// The ID of the project's floating IP with `address`.
pub fn floating_ip_id(cloud: &Cloud, address: &str) -> Result<String, OpenStackError> {
    let base = cloud.endpoint("network")?;
    let url = format!("{}/v2.0/floatingips", base.trim_end_matches('/'));
    let found: FloatingIps = cloud
        .call(Method::GET, &url, |r| {
            r.query(&[("floating_ip_address", address)])
        })?
        .json()
        .map_err(|e| OpenStackError::Config(format!("GET {url}: {e}")))?;
    let mut ids = found
        .floatingips
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

//! OpenStack: credentials from the environment, a Keystone v3 session, Glance v2, the
//! Networking call `build` needs, and the Compute and Networking calls of `sweep`.

pub mod client;
pub mod clouds;
pub mod compute;
pub mod credentials;
pub mod glance;
pub mod image_copy;
pub mod network;
pub mod openrc;

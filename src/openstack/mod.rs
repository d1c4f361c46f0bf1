//! OpenStack: credentials from the environment, a Keystone v3 session, Glance v2, and
//! the one Networking call `build` needs.

pub mod client;
pub mod clouds;
pub mod credentials;
pub mod glance;
pub mod network;
pub mod openrc;

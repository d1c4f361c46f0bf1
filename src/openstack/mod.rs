//! OpenStack: credentials from the environment, a Keystone v3 session, Glance v2.

pub mod client;
pub mod clouds;
pub mod credentials;
pub mod glance;

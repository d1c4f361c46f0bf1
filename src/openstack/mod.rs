//! OpenStack: which credentials the environment carries (the Keystone and Glance client
//! builds on this).

pub mod credentials;

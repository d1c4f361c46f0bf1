//! uworker-image: CI-native builds of OpenStack worker images with Packer.
//!
//! Data flows one way: definition -> render -> fingerprint -> plan -> packer -> record
//! -> report. The core (definition, render, fingerprint, plan) is pure; the edges
//! (file system, packer, shellcheck, environment) live in their own modules.

pub mod child_env;
pub mod ci;
pub mod cli;
mod commands;
pub mod definition;
pub mod env;
pub mod error_chain;
pub mod exit;
pub mod fingerprint;
pub mod github;
pub mod http;
pub mod input_file;
pub mod inputs;
pub mod interrupt;
pub mod jobapi;
pub mod lifecycle;
#[cfg(test)]
mod loopback;
pub mod openstack;
pub mod packer;
pub mod pin;
pub mod plan;
pub mod prune;
pub mod record;
pub mod render;
pub mod report;
pub mod request;
pub mod run_key;
pub mod run_marks;
pub mod sbom;
pub mod secrets;
pub mod seed;
pub mod shell;
pub mod shellcheck;
pub mod sweep;
pub mod terminal;
pub mod transfer;
pub mod userinfo;
pub mod vars;
pub mod verify;
pub mod workdir;
pub mod worker_source;

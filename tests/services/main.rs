//! The service tier: tests that need what scripts/setup.sh installs (packer, shellcheck,
//! actionlint, sshd, tmux, Prism, debootstrap, systemd-nspawn), the real Keystone and
//! Glance, the Compute stand-in, or root. Behind the `services` feature:
//! `cargo test --release --features services` (scripts/test.sh, and so CI, runs it).
//! One module, e.g. the end-to-end build, runs alone by its name:
//! `cargo test --release --features services --test services e2e::`.

mod common;

mod actionlint;
mod build;
mod build_report;
mod copy;
mod e2e;
mod github;
mod install;
mod lifecycle;
mod matrix;
mod openrc;
mod openstack;
mod pin_git;
mod pin_index;
mod regions;
mod render_packer;
mod sbom;
mod secrets_validate;
mod shell_scripts;
mod systemd_host;
mod test_mode;
mod validate;
mod worker_host;
mod worker_install;

#!/usr/bin/env bash
# The test suite: sets up what it needs, then runs every test (unit, integration,
# snapshots, real packer, shellcheck, sshd, Keystone and Glance). Extra arguments go to
# `cargo test`. The OpenStack services start on first use (their venv is cached in
# ~/.cache/uworker-image-test) and stop when the suite ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Prism (pinned by tests/harness/github/package-lock.json) into the test cache; reruns skip.
tests/harness/github/prism.sh >/dev/null
trap 'tests/harness/openstack.sh stop' EXIT
# Release mode: one build serves every target, and the end-to-end build (tests/e2e_build.rs)
# runs the way it is specified to (`cargo test --release --test e2e_build`).
cargo test --locked --release --no-fail-fast --lib --tests "$@"

#!/usr/bin/env bash
# The test suite: sets up what it needs, then runs every test, both tiers: the fast one
# (unit tests and tests/cli, what plain `cargo test` runs) and the service tier
# (tests/services, feature `services`: real packer, shellcheck, actionlint, sshd, Keystone
# and Glance, Prism, booted hosts, root). Extra arguments go to `cargo test`. The OpenStack services start on first use (their venv is cached in
# ~/.cache/uworker-image-test) and stop when the suite ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Prism (pinned by tests/harness/github/package-lock.json) into the test cache; reruns skip.
tests/harness/github/prism.sh >/dev/null
trap 'tests/harness/openstack.sh stop' EXIT
# Release mode: one build serves every target, and the end-to-end build
# (tests/services/e2e/) runs the way it is specified to
# (`cargo test --release --features services --test services e2e::`).
cargo test --locked --release --no-fail-fast --features services --lib --tests "$@"

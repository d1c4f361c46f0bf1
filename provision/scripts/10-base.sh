#!/usr/bin/env bash
# Base system: package lists, upgrades, and what the later steps need: python3-venv (cloud
# images ship python3 without it), git for pip's git+ URLs, CA certificates. Runs as root;
# reads no variables. A second run installs nothing new.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# Cloud images start apt jobs at boot; wait for them rather than fail on the dpkg lock.
if command -v cloud-init >/dev/null 2>&1; then
  cloud-init status --wait >/dev/null 2>&1 || true
fi

apt-get update -q
apt-get upgrade "${apt_opts[@]}"
apt-get install "${apt_opts[@]}" --no-install-recommends \
  ca-certificates git python3 python3-venv

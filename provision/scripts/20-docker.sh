#!/usr/bin/env bash
# Docker from the distribution's own packages (docker.io), enabled at boot: the worker's
# default mode runs each job's processing image with docker. Runs as root.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends docker.io

# `enable` only writes symlinks, so it works in a chroot too; `start` needs systemd.
systemctl enable docker.service
if [ -d /run/systemd/system ]; then
  systemctl start docker.service
fi

#!/usr/bin/env bash
# Docker from the distribution's own packages (docker.io), enabled at boot: the worker's
# default mode runs each job's processing image with docker. Runs as root. It does not
# start docker: the worker's unit requires it, so systemd starts it with the worker.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends docker.io

# `enable` only writes symlinks (none when they exist), so it works in a chroot too.
systemctl enable docker.service

#!/usr/bin/env bash
# The worker's system user `uworker` (home /var/lib/uworker, no login shell), in group
# docker so it may run jobs' containers. Runs as root; changes nothing when all is there.
set -euo pipefail

getent group docker >/dev/null || groupadd --system docker
if ! id uworker >/dev/null 2>&1; then
  useradd --system --user-group --create-home --home-dir /var/lib/uworker \
    --shell /usr/sbin/nologin --groups docker uworker
fi
if ! id -nG uworker | tr ' ' '\n' | grep -qx docker; then
  usermod --append --groups docker uworker
fi

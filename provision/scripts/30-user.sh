#!/usr/bin/env bash
# The worker's system user `uworker` (home /var/lib/uworker, no login shell). Not in group
# docker here: 50-service.sh adds it in docker execution mode only (group docker is
# root-equivalent, and command mode has no use for it). Runs as root; changes nothing
# when all is there.
set -euo pipefail

if ! id uworker >/dev/null 2>&1; then
  useradd --system --user-group --create-home --home-dir /var/lib/uworker \
    --shell /usr/sbin/nologin uworker
fi

#!/usr/bin/env bash
# Installs the worker's systemd unit and enables it at boot. It is not started here: on
# the build VM a running worker would claim real jobs just before the snapshot.
# Reads UWORKER_UNIT_UPLOAD.
set -euo pipefail

upload=${UWORKER_UNIT_UPLOAD:-/tmp/uworker.service}
if [ -f "$upload" ]; then
  install -m 0644 -o root -g root "$upload" /etc/systemd/system/uworker.service
  rm -f "$upload"
elif [ ! -f /etc/systemd/system/uworker.service ]; then
  echo "50-service.sh: $upload is missing: the unit upload step must run first" >&2
  exit 1
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
systemctl enable uworker.service

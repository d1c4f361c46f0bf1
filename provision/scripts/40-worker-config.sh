#!/usr/bin/env bash
# Installs the worker config that uworker-image generated from the UWORKER_* secrets
# (shell-quoted `export KEY='value'` lines) as /etc/uworker/uworker.conf, root:uworker
# 0640: the worker reads it (its start command sources it) but cannot change what runs at
# its next start. Reads UWORKER_CONFIG_UPLOAD (the upload, in the run's private directory:
# never a predictable path in /tmp). Never prints the file: it holds passwords.
# When the content changed, asks for a worker restart (/run/uworker-provision/restart).
set -euo pipefail

upload=${UWORKER_CONFIG_UPLOAD:?UWORKER_CONFIG_UPLOAD must name the uploaded worker config}
config=/etc/uworker/uworker.conf
if [ ! -f "$upload" ]; then
  echo "40-worker-config.sh: $upload is missing: the worker_config step must run first" >&2
  exit 1
fi

install -d -m 0750 -o root -g uworker /etc/uworker
if cmp -s "$upload" "$config"; then
  echo "40-worker-config.sh: $config is unchanged"
else
  install -m 0640 -o root -g uworker "$upload" "$config"
  install -d -m 0755 /run/uworker-provision
  touch /run/uworker-provision/restart
  echo "40-worker-config.sh: installed $config"
fi
# Owner and mode even when someone changed them by hand.
chown root:uworker "$config"
chmod 0640 "$config"
rm -f "$upload"

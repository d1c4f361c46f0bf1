#!/usr/bin/env bash
# Test hosts only: starts the worker now (a built image starts it at boot), restarts it
# when an earlier step changed its install, config or unit, and checks that it keeps
# running past its first seconds. On failure it shows `systemctl status`. Runs as root.
set -euo pipefail

unit=uworker.service
flag=/run/uworker-provision/restart

if systemctl is-active --quiet "$unit"; then
  if [ -e "$flag" ]; then
    echo "60-start.sh: restarting the worker (its install, config or unit changed)"
    systemctl restart "$unit" || true
  else
    echo "60-start.sh: the worker is running and nothing changed"
  fi
else
  echo "60-start.sh: starting the worker"
  systemctl reset-failed "$unit" 2>/dev/null || true
  systemctl start "$unit" || true
fi
rm -f "$flag"

# A worker that stops at once (a missing value, no docker) is not running a few seconds
# later, or runs under a new process after its restart.
pid=$(systemctl show --property=MainPID --value "$unit")
sleep 5
if ! systemctl is-active --quiet "$unit" ||
  [ "$(systemctl show --property=MainPID --value "$unit")" != "$pid" ]; then
  SYSTEMD_COLORS=0 SYSTEMD_URLIFY=0 systemctl status --no-pager --lines=0 "$unit" >&2 || true
  journalctl --unit="$unit" --lines=15 --no-pager --quiet >&2 || true
  echo "60-start.sh: $unit is not running (see the status above; logs: journalctl -u uworker)" >&2
  exit 1
fi
echo "60-start.sh: $unit is running"

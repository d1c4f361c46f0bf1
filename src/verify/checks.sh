#!/usr/bin/env bash
# The verification's built-in checks, run by uworker-image on a server booted from a
# freshly built image (docs/verify.md): `checks.sh NAME [ARG...]`, as root (sudo -n), the
# script on stdin. One check per call; exit 0 when it passes. What it prints is the
# check's output in the build log (redacted there): it never prints the worker's
# credentials. The arguments are never secret. A command whose failure is the check's
# verdict is caught where it runs (`|| rc=$?`, `|| true`), never by `set -e`.
set -euo pipefail

fail() {
  echo "FAILED: $*"
  exit 1
}

venv=/opt/uworker/venv
config=/etc/uworker/uworker.conf

check=${1:?a check name}
shift

case $check in
cloud-init)
  command -v cloud-init >/dev/null 2>&1 || fail "cloud-init is not installed"
  # Waits for its last stage. 0: done; 2 (cloud-init 23.4+): done, "degraded" by
  # recoverable warnings (e.g. no `ip` command to log the network with), which pass and
  # are shown; anything else: a stage failed.
  rc=0
  cloud-init status --wait >/dev/null 2>&1 || rc=$?
  case $rc in
  0) cloud-init status || true ;;
  2)
    echo "cloud-init is done with recoverable warnings (degraded):"
    # Its own exit code is 2 again: shown, not judged.
    cloud-init status --long 2>&1 | tail -n 20 || true
    ;;
  *)
    cloud-init status --long 2>&1 | tail -n 20
    fail "cloud-init finished with an error (exit code $rc)"
    ;;
  esac
  ;;

identity)
  # Tool compares these with the build server's: a clone is a machine of its own.
  [ -s /etc/machine-id ] || fail "/etc/machine-id is empty"
  found=0
  for key in /etc/ssh/ssh_host_*_key.pub; do
    [ -e "$key" ] || continue
    echo "host-key $(ssh-keygen -lf "$key" | awk '{print $2}')"
    found=1
  done
  [ "$found" = 1 ] || fail "no SSH host key in /etc/ssh"
  echo "machine-id $(cat /etc/machine-id)"
  ;;

residue)
  # ARG: the verification's public key (type and base64), the only key to authorize.
  expected=${1:?the verification key}
  bad=0
  user_home=$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6) || true
  for file in /root/.ssh/authorized_keys "$user_home/.ssh/authorized_keys"; do
    [ -f "$file" ] || continue
    while read -r key; do
      if [ "$key" != "$expected" ]; then
        echo "$file authorizes a key that is not this server's key pair: $key"
        bad=1
      fi
    done < <(grep -oE '(ssh|ecdsa|sk)-[a-z0-9@.-]+ AAAA[A-Za-z0-9+/=]+' "$file" | sort -u)
  done
  if [ -d /var/lib/cloud/instances ]; then
    current=$(cat /var/lib/cloud/data/instance-id 2>/dev/null || true)
    for dir in /var/lib/cloud/instances/*; do
      [ -e "$dir" ] || continue
      if [ "$(basename "$dir")" != "$current" ]; then
        echo "cloud-init state of another instance: $dir (the image was not cleaned)"
        bad=1
      fi
    done
  fi
  for dir in /tmp/uworker-image.* "$user_home"/uworker-image.* /run/uworker-provision; do
    if [ -e "$dir" ]; then
      echo "left by the build: $dir"
      bad=1
    fi
  done
  [ "$bad" = 0 ] || fail "the build's residue is in the image"
  echo "no residue of the build"
  ;;

worker-unit)
  state=$(systemctl is-enabled uworker.service 2>&1) || true
  [ "$state" = enabled ] || fail "uworker.service is not enabled: $state"
  unit=""
  for dir in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
    if [ -f "$dir/uworker.service" ]; then
      unit=$dir/uworker.service
      break
    fi
  done
  [ -n "$unit" ] || fail "no uworker.service unit file"
  systemd-analyze verify "$unit" 2>&1 || fail "systemd-analyze verify $unit"
  echo "uworker.service is enabled and $unit verifies"
  ;;

worker-config)
  [ -f "$config" ] || fail "no $config"
  mode=$(stat -c '%U:%G %a' "$config")
  [ "$mode" = "root:uworker 640" ] || fail "$config is $mode, not root:uworker 640"
  echo "$config is $mode"
  ;;

worker-import)
  [ -x "$venv/bin/python" ] || fail "no $venv/bin/python"
  # The module behind the `uworker` command, as the unit's start command runs it.
  "$venv/bin/python" - <<'PY' 2>&1 || fail "the worker's python cannot import the worker"
from importlib.metadata import entry_points
found = [e for e in entry_points(group="console_scripts") if e.name == "uworker"]
if not found:
    raise SystemExit("no `uworker` console script in the venv")
found[0].load()
print("imported", found[0].value)
PY
  ;;

job-service-login)
  [ -f "$config" ] || fail "no $config"
  # In a subshell: the config's values stay in it and are never printed.
  (
    # shellcheck source=/dev/null
    . "$config"
    "$venv/bin/python" - <<'PY'
import base64, os, sys, urllib.error, urllib.request
root = os.environ.get("UWORKER_JOB_API_ROOT", "").rstrip("/")
user = os.environ.get("UWORKER_JOB_API_USERNAME", "")
password = os.environ.get("UWORKER_JOB_API_PASSWORD", "")
if not root:
    sys.exit("UWORKER_JOB_API_ROOT is not set in the config")
auth = base64.b64encode(f"{user}:{password}".encode()).decode()
request = urllib.request.Request(root + "/token", headers={"Authorization": "Basic " + auth})
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        status = answer.status
except urllib.error.HTTPError as error:
    status = error.code
except Exception as error:
    sys.exit(f"GET <root>/token failed: {type(error).__name__}")
print(f"GET <root>/token: HTTP {status}")
sys.exit(0 if status == 200 else 1)
PY
  ) 2>&1 || fail "the job service did not accept the worker's credentials"
  ;;

worker-not-started)
  # The verification's boot keeps the unit from starting: the worker never polled.
  since=$(systemctl show -p ActiveEnterTimestampMonotonic --value uworker.service)
  active=$(systemctl is-active uworker.service 2>&1) || true
  if [ "$active" = active ] || [ "${since:-0}" != 0 ]; then
    fail "uworker.service started during the verification ($active)"
  fi
  echo "uworker.service did not start ($active)"
  ;;

worker-started)
  # start_worker: the real loop against the staging job service; it must keep running.
  for _ in $(seq 1 60); do
    [ "$(systemctl is-active uworker.service 2>&1)" = active ] && break
    sleep 1
  done
  sleep 5
  active=$(systemctl is-active uworker.service 2>&1) || true
  restarts=$(systemctl show -p NRestarts --value uworker.service)
  [ "$active" = active ] || fail "uworker.service is $active"
  [ "${restarts:-0}" = 0 ] || fail "uworker.service restarted $restarts time(s)"
  echo "uworker.service is active, no restart"
  ;;

*)
  fail "unknown check $check"
  ;;
esac

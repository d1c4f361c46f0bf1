#!/usr/bin/env bash
# A real OpenStack Keystone (identity v3) and Glance (image v2) on 127.0.0.1 for the
# integration tests: pinned pip venv (cached), uWSGI, SQLite in WAL mode, file store.
#
#   tests/harness/openstack.sh start   install if needed, start, print the openrc path
#   tests/harness/openstack.sh stop
#   tests/harness/openstack.sh start-short-tokens   after start: a second Keystone on the
#                                      same database and keys whose tokens live
#                                      UWORKER_TEST_TOKEN_LIFETIME seconds (20); prints its
#                                      OS_AUTH_URL (tests of token renewal; the rest of the
#                                      suite keeps the first one's hour-long tokens)
#   tests/harness/openstack.sh register REGION TYPE NAME URL   a service in the catalog
#
# Environment: UWORKER_TEST_CACHE (venv cache, default ~/.cache/uworker-image-test),
# UWORKER_TEST_OPENSTACK (state, default $TMPDIR/uworker-image-openstack),
# KEYSTONE_PORT (35000), GLANCE_PORT (39292), KEYSTONE_SHORT_PORT (KEYSTONE_PORT + 1).
# Writes $UWORKER_TEST_OPENSTACK/openrc.sh (and admin-openrc.sh, the cloud's admin).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/harness/venv.sh
. "$here/venv.sh"
cache=${UWORKER_TEST_CACHE:-$HOME/.cache/uworker-image-test}
dir=${UWORKER_TEST_OPENSTACK:-${TMPDIR:-/tmp}/uworker-image-openstack}
keystone_port=${KEYSTONE_PORT:-35000}
glance_port=${GLANCE_PORT:-39292}
short_port=${KEYSTONE_SHORT_PORT:-$((keystone_port + 1))}
token_lifetime=${UWORKER_TEST_TOKEN_LIFETIME:-20}
host=127.0.0.1
keystone_url=http://$host:$keystone_port
glance_url=http://$host:$glance_port
venv=$cache/openstack-venv
run=$dir/run
log=$dir/log

say() { printf '[openstack harness] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && ! grep -qs '^State:.*Z' "/proc/$1/status"; }
pid_of() { cat "$run/$1.pid" 2>/dev/null || true; }
http_code() { curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$1" 2>/dev/null || true; }

stop() {
  for name in glance keystone-short keystone; do
    local pid
    pid=$(pid_of "$name")
    if alive "$pid"; then
      # uWSGI runs in its own session: its pid is its process group.
      kill -TERM -- "-$pid" 2>/dev/null || true
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
      alive "$pid" && kill -KILL -- "-$pid" 2>/dev/null
      say "$name stopped"
    fi
    rm -f "$run/$name.pid"
  done
}

install() {
  ensure_venv "$venv" "$here/openstack-constraints.txt" "$cache/pip-install.log" \
    keystone==29.1.0 glance==32.0.0 uWSGI==2.0.31
}

uwsgi_ini() { # name port module env
  cat <<EOF
[uwsgi]
http-socket = $host:$2
module = $3
env = $4
master = true
; one process, one thread: SQLite locks otherwise
processes = 1
threads = 1
enable-threads = true
lazy-apps = true
need-app = true
die-on-term = true
; uWSGI's http-socket closes each connection after one response: say so, or a client
; reuses the dead keep-alive connection (glance's first token check then fails, 401)
add-header = Connection: close
buffer-size = 65535
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
EOF
}

start_server() { # name port health-url
  local pid
  pid=$(pid_of "$1")
  if alive "$pid" && [ "$(http_code "$3")" != 000 ]; then
    return
  fi
  setsid "$venv/bin/uwsgi" --ini "$dir/$1-uwsgi.ini" </dev/null >>"$log/$1-uwsgi.log" 2>&1 &
  echo $! >"$run/$1.pid"
  for _ in $(seq 450); do
    case $(http_code "$3") in 200 | 300) say "$1 answers on $3"; return ;; esac
    alive "$(pid_of "$1")" || { tail -n 20 "$log/$1-uwsgi.log" >&2; die "$1 died at start"; }
    sleep 0.2
  done
  tail -n 20 "$log/$1-uwsgi.log" >&2
  die "$1 did not answer on $3"
}

start() {
  command -v curl >/dev/null || die "curl is needed"
  install
  mkdir -p "$run" "$log" "$dir/keystone" "$dir/glance/images" "$dir/glance/staging" "$dir/glance/tasks" "$dir/glance/locks"
  local ks=$dir/keystone gl=$dir/glance
  cat >"$ks/keystone.conf" <<EOF
[DEFAULT]
log_file = $log/keystone.log
[database]
connection = sqlite:///$ks/keystone.db
[identity]
; cheap bcrypt: logins in milliseconds
password_hash_rounds = 4
[token]
provider = fernet
[fernet_tokens]
key_repository = $ks/fernet-keys
[fernet_receipts]
key_repository = $ks/fernet-keys
[credential]
key_repository = $ks/credential-keys
EOF
  uwsgi_ini keystone "$keystone_port" keystone.wsgi.api:application "OS_KEYSTONE_CONFIG_FILES=$ks/keystone.conf" >"$dir/keystone-uwsgi.ini"
  cat >"$gl/glance-api.conf" <<EOF
[DEFAULT]
log_file = $log/glance-api.log
bind_host = $host
bind_port = $glance_port
public_endpoint = $glance_url
enabled_backends = local:file
[database]
connection = sqlite:///$gl/glance.db
[glance_store]
default_backend = local
[local]
filesystem_store_datadir = $gl/images/
[os_glance_staging_store]
filesystem_store_datadir = $gl/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $gl/tasks/
[keystone_authtoken]
www_authenticate_uri = $keystone_url
auth_url = $keystone_url
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = glance
password = glance-service-secret
[paste_deploy]
flavor = keystone
config_file = $gl/glance-api-paste.ini
[oslo_concurrency]
lock_path = $gl/locks
EOF
  cp "$venv/etc/glance/glance-api-paste.ini" "$gl/glance-api-paste.ini"
  uwsgi_ini glance "$glance_port" glance.wsgi.api:application "OS_GLANCE_CONFIG_DIR=$gl" >"$dir/glance-uwsgi.ini"

  local wal="import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('pragma journal_mode=wal')"
  if [ ! -e "$ks/.initialized" ]; then
    local km=("$venv/bin/keystone-manage" --config-file "$ks/keystone.conf")
    "${km[@]}" db_sync
    # WAL: keystone reads and writes on two pooled connections in one request, which
    # deadlocks SQLite's rollback journal ("database is locked").
    "$venv/bin/python" -c "$wal" "$ks/keystone.db"
    "${km[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    "${km[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    "${km[@]}" bootstrap --bootstrap-password admin-secret --bootstrap-username admin \
      --bootstrap-project-name admin --bootstrap-role-name admin \
      --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
      --bootstrap-admin-url "$keystone_url/v3" --bootstrap-public-url "$keystone_url/v3" \
      --bootstrap-internal-url "$keystone_url/v3"
    touch "$ks/.initialized"
  fi
  start_server keystone "$keystone_port" "$keystone_url/v3"
  local app_cred
  app_cred=$(KEYSTONE="$keystone_url/v3" GLANCE="$glance_url" "$venv/bin/python" "$here/openstack_bootstrap.py")
  if [ ! -e "$gl/.initialized" ]; then
    "$venv/bin/glance-manage" --config-file "$gl/glance-api.conf" db_sync >>"$log/glance-manage.log" 2>&1 \
      || { tail -n 20 "$log/glance-manage.log" >&2; die "glance-manage db_sync failed"; }
    "$venv/bin/python" -c "$wal" "$gl/glance.db"
    touch "$gl/.initialized"
  fi
  start_server glance "$glance_port" "$glance_url/"
  cat >"$dir/openrc.sh" <<EOF
export OS_AUTH_URL=$keystone_url/v3
export OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=RegionOne
export OS_INTERFACE=public
export OS_USERNAME=ci-user
export OS_PASSWORD=ci-user-secret
export OS_PROJECT_NAME=ci-project
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_APPLICATION_CREDENTIAL_ID=$app_cred
export OS_APPLICATION_CREDENTIAL_SECRET=ci-appcred-secret
EOF
  # The Compute stand-in's service user (openstack_bootstrap.py makes it).
  (umask 077; printf '{"user": "nova", "password": "nova-service-secret", "project": "service"}\n' >"$dir/nova-service.json")
  # The cloud's admin (bootstrap), for tests that set up other projects and users.
  cat >"$dir/admin-openrc.sh" <<EOF
export OS_AUTH_URL=$keystone_url/v3
export OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=RegionOne
export OS_INTERFACE=public
export OS_USERNAME=admin
export OS_PASSWORD=admin-secret
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
EOF
  echo "$dir/openrc.sh"
}

# The short-token Keystone: the same database, fernet keys and catalog, another
# [token] expiration. Its tokens validate anywhere (Glance, the Compute stand-in), and
# expire there too: a fernet token carries its expiry.
start_short_tokens() {
  local ks=$dir/keystone
  [ -e "$ks/.initialized" ] || die "run '$0 start' first"
  sed -e "s|^log_file = .*|log_file = $log/keystone-short.log|" \
    -e "s|^provider = fernet$|provider = fernet\nexpiration = $token_lifetime|" \
    "$ks/keystone.conf" >"$ks/keystone-short.conf"
  grep -qx "expiration = $token_lifetime" "$ks/keystone-short.conf" || die "keystone-short.conf has no expiration"
  uwsgi_ini keystone-short "$short_port" keystone.wsgi.api:application "OS_KEYSTONE_CONFIG_FILES=$ks/keystone-short.conf" >"$dir/keystone-short-uwsgi.ini"
  start_server keystone-short "$short_port" "http://$host:$short_port/v3"
  echo "http://$host:$short_port/v3"
}

# A service in the catalog, in a region of its own with the image service (the Compute
# stand-in: tests/services/common/compute.rs). Keystone must be running (start).
register() { # region type name url
  [ $# -eq 4 ] || die "usage: $0 register REGION TYPE NAME URL"
  KEYSTONE="$keystone_url/v3" GLANCE="$glance_url" "$venv/bin/python" "$here/openstack_bootstrap.py" register "$@"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  start-short-tokens) start_short_tokens ;;
  register) shift; register "$@" ;;
  *) die "usage: $0 start|stop|start-short-tokens|register REGION TYPE NAME URL" ;;
esac

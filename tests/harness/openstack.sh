#!/usr/bin/env bash
# A real OpenStack Keystone (identity v3) and Glance (image v2) on 127.0.0.1 for the
# integration tests: pinned pip venv (cached), uWSGI, SQLite in WAL mode, file store.
#
#   tests/harness/openstack.sh start   install if needed, start, print the openrc path
#   tests/harness/openstack.sh stop
#   tests/harness/openstack.sh start-short-tokens   after start: a second Keystone on the
#                                      same database and keys whose tokens live
#                                      UWORKER_IMAGE_TEST_TOKEN_LIFETIME seconds (20); prints its
#                                      OS_AUTH_URL (tests of token renewal; the rest of the
#                                      suite keeps the first one's hour-long tokens)
#   tests/harness/openstack.sh register REGION TYPE NAME URL   a service in the catalog
#   tests/harness/openstack.sh start-second-region [REGION]   after start: a second Glance
#                                      (own port, database and store) registered as
#                                      `image` in REGION (RegionTwo) of the same Keystone;
#                                      prints "REGION GLANCE_URL" (services `register`ed in
#                                      REGION later keep that Glance as its image service)
#
# Environment: UWORKER_IMAGE_TEST_CACHE (venv cache, default ~/.cache/uworker-image-test),
# UWORKER_IMAGE_TEST_OPENSTACK (state, default $TMPDIR/uworker-image-openstack),
# KEYSTONE_PORT (35000), GLANCE_PORT (39292), KEYSTONE_SHORT_PORT (KEYSTONE_PORT + 1),
# GLANCE_TWO_PORT (GLANCE_PORT + 1).
# Writes $UWORKER_IMAGE_TEST_OPENSTACK/openrc.sh (and admin-openrc.sh, the cloud's admin).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/harness/venv.sh
. "$here/venv.sh"
cache=${UWORKER_IMAGE_TEST_CACHE:-$HOME/.cache/uworker-image-test}
dir=${UWORKER_IMAGE_TEST_OPENSTACK:-${TMPDIR:-/tmp}/uworker-image-openstack}
keystone_port=${KEYSTONE_PORT:-35000}
glance_port=${GLANCE_PORT:-39292}
short_port=${KEYSTONE_SHORT_PORT:-$((keystone_port + 1))}
glance_two_port=${GLANCE_TWO_PORT:-$((glance_port + 1))}
token_lifetime=${UWORKER_IMAGE_TEST_TOKEN_LIFETIME:-20}
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
wal="import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('pragma journal_mode=wal')"
http_code() { curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$1" 2>/dev/null || true; }

stop() {
  for name in glance-two glance keystone-short keystone; do
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

# A Glance's configuration in $dir/NAME: its own port, SQLite database and file store,
# checking tokens with the one Keystone.
glance_config() { # name port
  local gl=$dir/$1 url=http://$host:$2
  mkdir -p "$gl/images" "$gl/staging" "$gl/tasks" "$gl/locks"
  cat >"$gl/glance-api.conf" <<EOF
[DEFAULT]
log_file = $log/$1-api.log
bind_host = $host
bind_port = $2
public_endpoint = $url
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
  uwsgi_ini "$1" "$2" glance.wsgi.api:application "OS_GLANCE_CONFIG_DIR=$gl" >"$dir/$1-uwsgi.ini"
}

# A Glance's database, made once (WAL, as Keystone's: see start).
glance_database() { # name
  local gl=$dir/$1
  if [ ! -e "$gl/.initialized" ]; then
    "$venv/bin/glance-manage" --config-file "$gl/glance-api.conf" db_sync >>"$log/$1-manage.log" 2>&1 \
      || { tail -n 20 "$log/$1-manage.log" >&2; die "glance-manage db_sync ($1) failed"; }
    "$venv/bin/python" -c "$wal" "$gl/glance.db"
    touch "$gl/.initialized"
  fi
}

start() {
  command -v curl >/dev/null || die "curl is needed"
  install
  mkdir -p "$run" "$log" "$dir/keystone"
  local ks=$dir/keystone
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
  glance_config glance "$glance_port"
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
  glance_database glance
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

# A second region of the same cloud: its own Glance, registered as REGION's image service.
start_second_region() { # [region]
  local region=${1:-RegionTwo} url=http://$host:$glance_two_port
  [ -e "$dir/keystone/.initialized" ] || die "run '$0 start' first"
  glance_config glance-two "$glance_two_port"
  glance_database glance-two
  start_server glance-two "$glance_two_port" "$url/"
  printf '%s\n' "$url" >"$run/glance-$region.url"
  KEYSTONE="$keystone_url/v3" GLANCE="$url" "$venv/bin/python" "$here/openstack_bootstrap.py" register-image "$region"
  echo "$region $url"
}

# A service in the catalog, in a region of its own with the image service (the Compute
# stand-in: tests/services/common/compute.rs): the region's own Glance when it has one
# (start-second-region), else the first. Keystone must be running (start).
register() { # region type name url
  [ $# -eq 4 ] || die "usage: $0 register REGION TYPE NAME URL"
  local glance=$glance_url
  if [ -e "$run/glance-$1.url" ]; then glance=$(cat "$run/glance-$1.url"); fi
  KEYSTONE="$keystone_url/v3" GLANCE="$glance" "$venv/bin/python" "$here/openstack_bootstrap.py" register "$@"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  start-short-tokens) start_short_tokens ;;
  start-second-region) shift; start_second_region "$@" ;;
  register) shift; register "$@" ;;
  *) die "usage: $0 start|stop|start-short-tokens|start-second-region [REGION]|register REGION TYPE NAME URL" ;;
esac

#!/usr/bin/env bash
# Installs (or upgrades) Gantry control-plane services on this host as systemd units:
# gantry-gateway, gantry-scheduler, gantry-checkpoint (all three, or those named with
# --services). They run as the system user `gantry`. NATS (with JetStream) and Redis are
# not installed here; see docs/deploy.md. Safe to run again: it brings the code,
# dependencies and units up to date, never overwrites /etc/gantry/<service>.env, and
# restarts the services only when something changed.
set -euo pipefail

PROG=install-control-plane.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=deploy/install/common.sh
. "$SCRIPT_DIR/common.sh"

ALL_SERVICES="gateway,scheduler,checkpoint"
SERVICES=$ALL_SERVICES

usage() {
  cat <<EOF
Usage: $PROG [options]

Installs Gantry control-plane services: the tree in $PREFIX (pnpm install), the system user
gantry, /etc/gantry/<service>.env (first install only) and the systemd units
gantry-<service>, enabled and started.

Options:
  --services LIST      comma-separated subset of $ALL_SERVICES (default: all)
  --nats-url URL       NATS_URL for new env files: NATS server(s) with JetStream,
                       comma-separated (default: the example's nats://127.0.0.1:4222)
  --redis-url URL      REDIS_URL for new env files (redis://[:password@]host:6379[/db];
                       default: the example's redis://127.0.0.1:6379)
  --scheduler-addr A   SCHEDULER_ADDR for a new gateway.env: host:port, or for several
                       schedulers a comma-separated list of IP:port, e.g.
                       10.0.0.11:7071,10.0.0.12:7071 (default: 127.0.0.1:7071)
  --source DIR|URL     Gantry tree to install from: a directory, or a git URL to clone
                       (default: the tree this script is in: $(cd "$SCRIPT_DIR/../.." && pwd -P))
  --prefix DIR         install directory (default: $PREFIX)
  --no-start           install only: do not enable, start or restart the units
  --root DIR           stage everything under DIR (image builds, tests); implies --no-start
  --dry-run            print what would be done, change nothing
  -h, --help           this help

Existing /etc/gantry/<service>.env files are never changed; the URL options only fill in
new ones.

Example (a host running one gateway and one of the two schedulers):
  sudo deploy/install/install-control-plane.sh --services gateway,scheduler \\
    --nats-url nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222 \\
    --redis-url redis://:secret@redis-1:6379 --scheduler-addr 10.0.0.11:7071,10.0.0.12:7071
EOF
}

NATS_URL="" REDIS_URL="" SCHEDULER_ADDR=""
while (( $# )); do
  SHIFT=1
  case $1 in
    --services|--services=*) optarg "$1" "${2-}" SERVICES ;;
    --nats-url|--nats-url=*) optarg "$1" "${2-}" NATS_URL ;;
    --redis-url|--redis-url=*) optarg "$1" "${2-}" REDIS_URL ;;
    --scheduler-addr|--scheduler-addr=*) optarg "$1" "${2-}" SCHEDULER_ADDR ;;
    --source|--source=*) optarg "$1" "${2-}" SOURCE ;;
    --prefix|--prefix=*) optarg "$1" "${2-}" PREFIX ;;
    --root|--root=*) optarg "$1" "${2-}" ROOT; NO_START=1 ;;
    --no-start) NO_START=1 ;;
    --dry-run|-n) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift "$SHIFT"
done

check_common_args
IFS=, read -r -a SVCS <<<"$SERVICES"
(( ${#SVCS[@]} )) || usage_error "--services is empty"
for s in "${SVCS[@]}"; do
  [[ ,$ALL_SERVICES, == *,"$s",* ]] || usage_error "--services: unknown service '$s' (choose from $ALL_SERVICES)"
done
if [[ -n $REDIS_URL ]] && ! [[ $REDIS_URL =~ ^rediss?://[^[:space:]]+$ ]]; then
  usage_error "--redis-url: '$REDIS_URL' is not a Redis URL like redis://host:6379"
fi
if [[ -n $SCHEDULER_ADDR ]]; then
  if [[ $SCHEDULER_ADDR == *,* ]]; then
    # the gateway dials a list as ipv4:<list>: IPv4 addresses only
    IFS=, read -r -a _addrs <<<"$SCHEDULER_ADDR"
    for a in "${_addrs[@]}"; do
      [[ $a =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}:[0-9]+$ ]] || usage_error "--scheduler-addr: '$a' in a list must be IPv4:port (a list of replicas is dialled as ipv4:...)"
    done
  elif ! [[ $SCHEDULER_ADDR =~ ^(dns:///)?[^[:space:]/]+:[0-9]+$ ]]; then
    usage_error "--scheduler-addr: '$SCHEDULER_ADDR' is not host:port like scheduler-1:7071"
  fi
fi

(( DRY_RUN )) && info "dry run: nothing will be changed"
require_root
check_node
resolve_source "$(cd "$SCRIPT_DIR/../.." && pwd -P)"
info "installing ${SVCS[*]} from $SOURCE_DIR into $(dest "$PREFIX")"

# 1. the service user: no login, no home directory of its own use (the units keep no state)
if [[ -n $ROOT ]]; then
  info "--root: not creating the gantry user (create it on the target: useradd --system --user-group gantry)"
elif getent passwd gantry >/dev/null; then
  info "user gantry exists"
else
  NOLOGIN=$(command -v nologin || echo /usr/sbin/nologin)
  run useradd --system --user-group --home-dir /nonexistent --no-create-home --shell "$NOLOGIN" \
    --comment "Gantry control plane" gantry || die "cannot create the system user gantry"
fi
if [[ -n $ROOT ]]; then GROUP=root
elif (( DRY_RUN )) || getent group gantry >/dev/null; then GROUP=gantry
else die "the group gantry does not exist (useradd --user-group should have created it)"; fi

# 2. code and dependencies (root-owned, world-readable: the services only read them)
sync_tree
ensure_pnpm
install_deps

# 3. configuration: /etc/gantry/<service>.env, created once from the examples. Readable by
# the gantry group only: REDIS_URL may hold a password.
ETC=$(dest /etc/gantry)
run mkdir -p "$ETC"
for s in "${SVCS[@]}"; do
  f=$ETC/$s.env
  if [[ -f $f ]]; then info "keeping $f"; continue; fi
  gen=$(tmpfile "$s.env")
  cp "$SOURCE_DIR/deploy/config/$s.env.example" "$gen"
  # only variables the example sets (uncommented) are filled in: the ones this service uses
  if [[ -n $NATS_URL ]] && grep -q '^NATS_URL=' "$gen"; then set_env_line "$gen" NATS_URL "$NATS_URL"; fi
  if [[ -n $REDIS_URL ]] && grep -q '^REDIS_URL=' "$gen"; then set_env_line "$gen" REDIS_URL "$REDIS_URL"; fi
  if [[ -n $SCHEDULER_ADDR ]] && grep -q '^SCHEDULER_ADDR=' "$gen"; then set_env_line "$gen" SCHEDULER_ADDR "$SCHEDULER_ADDR"; fi
  info "new $s.env: $(grep -E '^[A-Z_]+=' "$gen" | sed -E 's#(://)[^@/]*@#\1***@#' | tr '\n' ' ')"
  put_file "$gen" "$f" 0640 "root:$GROUP" || true
done

# 4. systemd
UNITS=()
for s in "${SVCS[@]}"; do install_unit "gantry-$s.service"; UNITS+=("gantry-$s.service"); done
start_units "${UNITS[@]}"
info "done. Logs: journalctl -u 'gantry-*' -f   Config: /etc/gantry/<service>.env"

#!/usr/bin/env bash
# Installs (or upgrades) the Gantry node agent on a GPU host as the systemd unit
# gantry-agent. Safe to run again: it brings the code, dependencies and unit up to date,
# never overwrites /etc/gantry/agent.yaml or agent.env, and restarts the agent only when
# something changed. Restarting the agent does not stop running ranks (KillMode=process;
# the new agent re-adopts them). See docs/deploy.md.
set -euo pipefail

PROG=install-agent.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=deploy/install/common.sh
. "$SCRIPT_DIR/common.sh"

usage() {
  cat <<EOF
Usage: $PROG [options]

Installs the Gantry node agent: the tree in $PREFIX (pnpm install), /etc/gantry/agent.yaml
(first install only), the systemd unit gantry-agent, enabled and started.

Options:
  --nats-url URL       NATS server(s) of the control plane, comma-separated
                       (nats://host:4222). Required when /etc/gantry/agent.yaml does not
                       exist yet; an existing file is never changed.
  --node-name NAME     node name for a new agent.yaml (default: short hostname)
  --address ADDR       address other hosts reach this one at, for a new agent.yaml
                       (default: hostname -f)
  --source DIR|URL     Gantry tree to install from: a directory, or a git URL to clone
                       (default: the tree this script is in: $(cd "$SCRIPT_DIR/../.." && pwd -P))
  --prefix DIR         install directory (default: $PREFIX)
  --no-start           install only: do not enable, start or restart the unit
  --root DIR           stage everything under DIR (image builds, tests); implies --no-start
  --dry-run            print what would be done, change nothing
  -h, --help           this help

Example:
  sudo deploy/install/install-agent.sh --nats-url nats://nats-1.internal:4222,nats://nats-2.internal:4222
EOF
}

NATS_URL="" NODE_NAME="" ADDRESS=""
while (( $# )); do
  SHIFT=1
  case $1 in
    --nats-url|--nats-url=*) optarg "$1" "${2-}" NATS_URL ;;
    --node-name|--node-name=*) optarg "$1" "${2-}" NODE_NAME ;;
    --address|--address=*) optarg "$1" "${2-}" ADDRESS ;;
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
if [[ -n $NODE_NAME ]] && ! [[ $NODE_NAME =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$ ]]; then
  usage_error "--node-name '$NODE_NAME': use letters, digits, - or _ (at most 128), starting with a letter or digit"
fi
if [[ -n $ADDRESS ]] && ! [[ $ADDRESS =~ ^[A-Za-z0-9.:_%-]+$ ]]; then usage_error "--address '$ADDRESS' is not a host name or IP address"; fi

# Fail before changing anything when a first install lacks what agent.yaml needs.
if [[ ! -f $(dest /etc/gantry/agent.yaml) && -z $NATS_URL ]]; then
  die "$(dest /etc/gantry/agent.yaml) does not exist yet: pass --nats-url nats://HOST:4222 (the control plane's NATS)"
fi

(( DRY_RUN )) && info "dry run: nothing will be changed"
require_root
check_node
resolve_source "$(cd "$SCRIPT_DIR/../.." && pwd -P)"
info "installing from $SOURCE_DIR into $(dest "$PREFIX")"

# 1. code and dependencies
sync_tree
ensure_pnpm
install_deps
# The agent runs as one bundled file (no TypeScript loader): about 80 MiB RSS instead of ~115.
run env CI=true pnpm --dir "$(dest "$PREFIX")" build:agent || die "pnpm build:agent failed (see above)"

# The unprivileged user ranks run as by default (agent.yaml ranks.user; docs/security.md): the
# agent refuses to run ranks as root.
if [[ -z $ROOT ]] && ! getent passwd gantry-rank >/dev/null 2>&1; then
  run useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gantry-rank || die "useradd gantry-rank failed"
fi

# 2. configuration: /etc/gantry/agent.yaml (created once), agent.env (all commented)
ETC=$(dest /etc/gantry)
run mkdir -p "$ETC"
if [[ -f $ETC/agent.yaml ]]; then
  info "keeping $ETC/agent.yaml"
  if [[ -n $NATS_URL ]] && ! grep -Fq "$NATS_URL" "$ETC/agent.yaml"; then
    warn "--nats-url $NATS_URL ignored: $ETC/agent.yaml exists and sets $(grep -m1 '^natsUrl:' "$ETC/agent.yaml" || echo 'no natsUrl'); edit it by hand to change it"
  fi
else
  if [[ -z $NODE_NAME ]]; then
    NODE_NAME=$(hostname -s 2>/dev/null || uname -n); NODE_NAME=${NODE_NAME%%.*}
    [[ $NODE_NAME =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$ ]] || die "the short hostname '$NODE_NAME' is not a valid node name; pass --node-name"
  fi
  if [[ -z $ADDRESS ]]; then ADDRESS=$(hostname -f 2>/dev/null || true); [[ -n $ADDRESS ]] || ADDRESS=$(uname -n); fi
  gen=$(tmpfile agent.yaml)
  NODE=$NODE_NAME ADDR=$ADDRESS NATS=$NATS_URL awk '
    /^node:/    { print "node: " ENVIRON["NODE"]; next }
    /^address:/ { print "address: " ENVIRON["ADDR"]; next }
    /^natsUrl:/ { print "natsUrl: \"" ENVIRON["NATS"] "\""; next }
    { print }' "$SOURCE_DIR/deploy/config/agent.yaml.example" >"$gen"
  info "new agent.yaml: node=$NODE_NAME address=$ADDRESS natsUrl=$NATS_URL"
  put_file "$gen" "$ETC/agent.yaml" 0644 root:root || true
fi
if [[ ! -f $ETC/agent.env ]]; then
  put_file "$SOURCE_DIR/deploy/config/agent.env.example" "$ETC/agent.env" 0600 root:root || true
fi

# Check the file the way the agent reads it, before (re)starting anything.
if (( DRY_RUN )); then
  printf '[dry-run] check %s with loadAgentConfig\n' "$ETC/agent.yaml"
else
  info "checking $ETC/agent.yaml"
  # shellcheck disable=SC2016 # JavaScript, not shell
  (cd "$(dest "$PREFIX")" && GANTRY_AGENT_CONFIG="$ETC/agent.yaml" "$NODE_BIN" --import tsx -e '
    import("./services/node-agent/src/config.ts").then(({ loadAgentConfig }) => {
      const c = loadAgentConfig();
      console.log(`config ok: node=${c.node} address=${c.address} nats=${c.natsUrl} backend=${c.device.backend}`);
    }).catch((e) => { console.error(e.message); process.exit(1); });') \
    || die "$ETC/agent.yaml is not valid (see above); fix it and run this script again"
fi
command -v nvidia-smi >/dev/null || [[ -x /usr/local/nvidia/bin/nvidia-smi ]] \
  || warn "nvidia-smi not found: with device.backend nvidia-smi the agent will fail to start; install the NVIDIA driver first"

# 3. systemd
install_unit gantry-agent.service
start_units gantry-agent.service
info "done. Logs: journalctl -u gantry-agent -f   Config: /etc/gantry/agent.yaml"

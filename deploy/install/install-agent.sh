#!/usr/bin/env bash
# Installs (or upgrades) the Gantry node agent on a GPU host as the systemd unit
# gantry-agent. Safe to run again: it brings the code, dependencies and unit up to date,
# never overwrites /etc/gantry/agent.yaml or agent.env, and restarts the agent only when
# something changed. It places the bus keys the agent needs (the scheduler's command signing
# public key, this node's NATS NKEY seed) root-only, and refuses to install without them. Restarting the agent does not stop running ranks (KillMode=process;
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
(first install only), the bus keys (root-only, mode 0600), the systemd unit gantry-agent,
enabled and started.

Options:
  --nats-url URL       NATS server(s) of the control plane, comma-separated
                       (nats://host:4222). Required when /etc/gantry/agent.yaml does not
                       exist yet; an existing file is never changed.
  --node-name NAME     node name for a new agent.yaml (default: short hostname)
  --address ADDR       address other hosts reach this one at, for a new agent.yaml
                       (default: hostname -f)
  --scheduler-key FILE the scheduler's command signing public key (command-signing.pub
                       from pnpm bus:keys), installed where agent.yaml's
                       schedulerPublicKeyFile says (new file: /etc/gantry/scheduler.pub).
                       Required unless that file is already in place.
  --nats-seed FILE     this node's NATS NKEY user seed (agent-NODE.nk from pnpm bus:keys) or
                       a .creds file, installed where agent.yaml's natsCredsFile says (new
                       file: /etc/gantry/agent.nk). Required unless already in place.
  --source DIR|URL     Gantry tree to install from: a directory, or a git URL to clone
                       (default: the tree this script is in: $(cd "$SCRIPT_DIR/../.." && pwd -P))
  --prefix DIR         install directory (default: $PREFIX)
  --no-start           install only: do not enable, start or restart the unit
  --root DIR           stage everything under DIR (image builds, tests); implies --no-start
  --dry-run            print what would be done, change nothing
  -h, --help           this help

Example:
  sudo deploy/install/install-agent.sh --nats-url nats://nats-1.internal:4222,nats://nats-2.internal:4222 \
    --scheduler-key command-signing.pub --nats-seed agent-gpu-001.nk
EOF
}

NATS_URL="" NODE_NAME="" ADDRESS="" SCHEDULER_KEY="" NATS_SEED=""
while (( $# )); do
  SHIFT=1
  case $1 in
    --nats-url|--nats-url=*) optarg "$1" "${2-}" NATS_URL ;;
    --node-name|--node-name=*) optarg "$1" "${2-}" NODE_NAME ;;
    --address|--address=*) optarg "$1" "${2-}" ADDRESS ;;
    --scheduler-key|--scheduler-key=*) optarg "$1" "${2-}" SCHEDULER_KEY ;;
    --nats-seed|--nats-seed=*) optarg "$1" "${2-}" NATS_SEED ;;
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

# The value the agent will read for a setting: agent.env's VARIABLE (it overrides the file),
# else agent.yaml's top-level `key:` (quotes and a trailing comment removed); empty when unset.
config_setting() {
  local key=$1 var=$2 v="" f
  f=$(dest /etc/gantry/agent.env)
  [[ -r $f ]] && v=$(sed -n "s/^${var}=//p" "$f" | tail -n1)
  f=$(dest /etc/gantry/agent.yaml)
  if [[ -z $v && -r $f ]]; then
    v=$(sed -n "s/^${key}:[[:space:]]*//p" "$f" | tail -n1 | sed -e 's/[[:space:]]#.*$//' -e 's/[[:space:]]*$//')
  fi
  v=${v#[\"\']}; v=${v%[\"\']}
  printf '%s' "$v"
}

# Dies unless FILE is a PEM public key (the agent's loader parses it again at the check below).
check_public_key() {
  local f=$1
  [[ -f $f && -r $f ]] || die "scheduler public key $f: no such file, or not readable"
  if grep -q 'PRIVATE KEY' "$f"; then die "$f holds a private key: pass the public key (command-signing.pub); the private key belongs on the scheduler hosts only"; fi
  grep -q -- '-----BEGIN PUBLIC KEY-----' "$f" || die "$f is not a PEM public key (-----BEGIN PUBLIC KEY-----): pass command-signing.pub from pnpm bus:keys"
}

# Dies unless FILE is an NKEY user seed (SU...) or a .creds file, the two forms the agent reads.
check_seed() {
  local f=$1
  [[ -f $f && -r $f ]] || die "NATS seed $f: no such file, or not readable"
  if grep -q -- '-----BEGIN NATS USER JWT-----' "$f" && grep -q -- '-----BEGIN USER NKEY SEED-----' "$f"; then return 0; fi
  [[ $(tr -d '[:space:]' <"$f") =~ ^SU[A-Z2-7]+$ ]] || die "$f is not a NATS NKEY user seed (SU..., agent-NODE.nk from pnpm bus:keys) or a .creds file"
}

# Where the keys go: the paths the agent's configuration names (a new agent.yaml: the defaults).
if [[ -f $(dest /etc/gantry/agent.yaml) ]]; then
  PUBKEY_PATH=$(config_setting schedulerPublicKeyFile SCHEDULER_PUBLIC_KEY_FILE)
  SEED_PATH=$(config_setting natsCredsFile NATS_CREDS_FILE)
  [[ -n $PUBKEY_PATH ]] || die "$(dest /etc/gantry/agent.yaml) sets no schedulerPublicKeyFile: add 'schedulerPublicKeyFile: /etc/gantry/scheduler.pub' and run again with --scheduler-key FILE"
  [[ -n $SEED_PATH ]] || die "$(dest /etc/gantry/agent.yaml) sets no natsCredsFile: add 'natsCredsFile: /etc/gantry/agent.nk' and run again with --nats-seed FILE (docs/security.md)"
else
  PUBKEY_PATH=/etc/gantry/scheduler.pub SEED_PATH=/etc/gantry/agent.nk
fi
[[ $PUBKEY_PATH == /* ]] || die "schedulerPublicKeyFile '$PUBKEY_PATH' must be an absolute path"
[[ $SEED_PATH == /* ]] || die "natsCredsFile '$SEED_PATH' must be an absolute path"
# Fail before changing anything when either key is neither given nor in place.
if [[ -n $SCHEDULER_KEY ]]; then check_public_key "$SCHEDULER_KEY"
elif [[ ! -f $(dest "$PUBKEY_PATH") ]]; then die "no scheduler public key at $(dest "$PUBKEY_PATH"): pass --scheduler-key FILE (command-signing.pub from pnpm bus:keys; docs/security.md)"
fi
if [[ -n $NATS_SEED ]]; then check_seed "$NATS_SEED"
elif [[ ! -f $(dest "$SEED_PATH") ]]; then die "no NATS seed at $(dest "$SEED_PATH"): pass --nats-seed FILE (this node's agent-NODE.nk from pnpm bus:keys; docs/security.md)"
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
# The flush admission shim for jobs with checkpoint.admit_flushes (docs/storage.md), beside the
# bundle, where the agent finds it (agent.yaml admitShim overrides). Without a C compiler such
# jobs' ranks are refused on this node, with that reason; everything else runs.
if command -v "${CC:-cc}" >/dev/null 2>&1; then
  run env CI=true pnpm --dir "$(dest "$PREFIX")" build:admit || die "pnpm build:admit failed (see above)"
  # The rank spawner beside the bundle: forks the ranks' wrappers for the agent, at a fraction of
  # the cost of forking them from the agent process (the agent falls back to that without it).
  run env CI=true pnpm --dir "$(dest "$PREFIX")" build:spawn || die "pnpm build:spawn failed (see above)"
else
  warn "no C compiler (${CC:-cc}): the flush admission shim (dist/libgantry-admit.so) and the rank spawner (dist/gantry-spawn) are not built; ranks of jobs with checkpoint.admit_flushes will be refused on this node, and the agent forks ranks itself"
fi

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
  NODE=$NODE_NAME ADDR=$ADDRESS NATS=$NATS_URL SEED=$SEED_PATH awk '
    /^node:/    { print "node: " ENVIRON["NODE"]; next }
    /^address:/ { print "address: " ENVIRON["ADDR"]; next }
    /^natsUrl:/ { print "natsUrl: \"" ENVIRON["NATS"] "\""; next }
    /^# natsCredsFile:/ { print "natsCredsFile: " ENVIRON["SEED"]; next }
    { print }' "$SOURCE_DIR/deploy/config/agent.yaml.example" >"$gen"
  info "new agent.yaml: node=$NODE_NAME address=$ADDRESS natsUrl=$NATS_URL"
  put_file "$gen" "$ETC/agent.yaml" 0644 root:root || true
fi
if [[ ! -f $ETC/agent.env ]]; then
  put_file "$SOURCE_DIR/deploy/config/agent.env.example" "$ETC/agent.env" 0600 root:root || true
fi

# The bus keys, root-only: the seed is this node's NATS identity, and whoever can replace the
# public key can have the agent run their commands as root. A key already in place (an
# upgrade) keeps its content and gets these permissions back.
place_key() {
  local src=$1 dst=$2
  if [[ -n $src ]]; then
    if put_file "$src" "$dst" 0600 root:root; then CHANGED=1; fi
  elif (( DRY_RUN )); then
    printf '[dry-run] chmod 0600 %s; chown root:root %s\n' "$dst" "$dst"
  else
    run chmod 0600 "$dst"
    chown root:root "$dst" 2>/dev/null || warn "cannot chown root:root $dst"
  fi
}
place_key "$SCHEDULER_KEY" "$(dest "$PUBKEY_PATH")"
place_key "$NATS_SEED" "$(dest "$SEED_PATH")"
if (( ! DRY_RUN )); then
  # Checked again on the installed copies: an install the agent could not start with is not done.
  check_public_key "$(dest "$PUBKEY_PATH")"
  check_seed "$(dest "$SEED_PATH")"
fi

# Check the file the way the agent reads it, before (re)starting anything.
if (( DRY_RUN )); then
  printf '[dry-run] check %s with loadAgentConfig\n' "$ETC/agent.yaml"
else
  info "checking $ETC/agent.yaml"
  # shellcheck disable=SC2016 # JavaScript, not shell
  # The key paths as staged (the same as agent.yaml's without --root).
  (cd "$(dest "$PREFIX")" && GANTRY_AGENT_CONFIG="$ETC/agent.yaml" SCHEDULER_PUBLIC_KEY_FILE="$(dest "$PUBKEY_PATH")" NATS_CREDS_FILE="$(dest "$SEED_PATH")" "$NODE_BIN" --import tsx -e '
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
info "done. Logs: journalctl -u gantry-agent -f   Config: /etc/gantry/agent.yaml   Keys: $PUBKEY_PATH, $SEED_PATH"

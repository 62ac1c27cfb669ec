# shellcheck shell=bash disable=SC2034 # globals here are read by the scripts that source this file
# Shared by install-agent.sh and install-control-plane.sh; sourced, not run. Everything that
# changes the host goes through run / put_file, so --dry-run prints it instead.

MIN_NODE="20.19.0"   # package.json "engines"
DRY_RUN=0
NO_START=0
ROOT=""              # --root: staging root prefixed to every installed path
PREFIX="/opt/gantry"
SOURCE=""
CHANGED=0            # set when code, units or dependencies changed (an upgrade: restart)
SHIFT=1              # how many arguments optarg consumed
_TMPDIRS=()

info() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s\nTry %s --help.\n' "$PROG" "$*" "$PROG" >&2; exit 2; }

cleanup() { local d; for d in "${_TMPDIRS[@]+"${_TMPDIRS[@]}"}"; do rm -rf -- "$d"; done; }
trap cleanup EXIT

# Prints the command; runs it unless --dry-run.
run() {
  if (( DRY_RUN )); then printf '[dry-run] %s\n' "$(quote_cmd "$@")"; return 0; fi
  printf '+ %s\n' "$(quote_cmd "$@")"
  "$@"
}
quote_cmd() { local out="" a; for a in "$@"; do out+="$(printf '%q' "$a") "; done; printf '%s' "${out% }"; }

# Value of an option that takes an argument: "--opt VALUE" or "--opt=VALUE".
# Usage: optarg "$1" "${2-}" VAR; shift "$SHIFT".
optarg() {
  local opt=$1 next=$2 __var=$3
  if [[ $opt == *=* ]]; then printf -v "$__var" '%s' "${opt#*=}"; SHIFT=1
  elif [[ -n $next && $next != --* ]]; then printf -v "$__var" '%s' "$next"; SHIFT=2
  else usage_error "option ${opt%%=*} needs a value"; fi
  [[ -n ${!__var} ]] || usage_error "option ${opt%%=*} needs a non-empty value"
}

# dest path for a logical path (/etc/gantry/x -> $ROOT/etc/gantry/x)
# check_common_args: the checks both installers make of the options they share.
check_common_args() {
  [[ $PREFIX == /* ]] || usage_error "--prefix must be an absolute path (got $PREFIX)"
  PREFIX=${PREFIX%/}
  if [[ -n $ROOT ]]; then [[ $ROOT == /* ]] || usage_error "--root must be an absolute path"; ROOT=${ROOT%/}; fi
  if [[ -n $NATS_URL ]]; then
    local u urls
    IFS=, read -r -a urls <<<"$NATS_URL"
    for u in "${urls[@]}"; do
      [[ $u =~ ^(nats|tls|ws|wss)://[^[:space:]\"\'\\]+$ ]] || usage_error "--nats-url: '$u' is not a NATS URL like nats://host:4222"
    done
  fi
}

dest() { printf '%s%s' "$ROOT" "$1"; }

require_root() {
  (( DRY_RUN )) && return 0
  [[ -n $ROOT ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "must run as root (try: sudo $0 ...), or use --dry-run to see what it would do"
}

version_ge() { # a >= b, dotted numbers
  local IFS=. i a b
  read -r -a a <<<"$1"; read -r -a b <<<"$2"
  for i in 0 1 2; do
    (( 10#${a[i]:-0} > 10#${b[i]:-0} )) && return 0
    (( 10#${a[i]:-0} < 10#${b[i]:-0} )) && return 1
  done
  return 0
}

node_help() {
  cat >&2 <<EOF
Install Node.js $MIN_NODE or newer (20 LTS) system-wide, then run this script again:
  Debian/Ubuntu:  curl -fsSL https://deb.nodesource.com/setup_20.x | sudo -E bash - && sudo apt-get install -y nodejs
  RHEL/Rocky:     curl -fsSL https://rpm.nodesource.com/setup_20.x | sudo bash - && sudo dnf install -y nodejs
  any Linux:      the tarball from https://nodejs.org/en/download (put node in /usr/local/bin)
A Node from nvm or another per-user install is not usable by system services.
EOF
}

# Sets NODE_BIN to an absolute path of node >= MIN_NODE.
check_node() {
  local found ver
  found=$(command -v node 2>/dev/null || true)
  if [[ -z $found ]]; then node_help; die "node is not installed (Gantry needs Node.js >= $MIN_NODE)"; fi
  ver=$("$found" -p 'process.versions.node' 2>/dev/null) || die "$found does not run"
  if ! version_ge "$ver" "$MIN_NODE"; then node_help; die "node $ver at $found is too old (Gantry needs >= $MIN_NODE)"; fi
  NODE_BIN=$(cd "$(dirname "$found")" && pwd -P)/$(basename "$found")
  case $NODE_BIN in
    /home/*|/root/*|/run/user/*|/tmp/*) node_help; die "node at $NODE_BIN is in a per-user directory that the services cannot (or must not) use" ;;
  esac
  info "node $ver at $NODE_BIN"
}

# Sets SOURCE_DIR to a Gantry tree: --source DIR, --source GIT-URL (cloned to a temp
# directory), or the tree this script belongs to.
resolve_source() {
  local script_tree=$1 tmp
  if [[ -z $SOURCE ]]; then
    SOURCE_DIR=$script_tree
  elif [[ $SOURCE =~ ^(https?|ssh|git|file)://|^[^/]+@[^:]+: ]]; then
    command -v git >/dev/null || die "--source $SOURCE is a git URL, but git is not installed"
    if (( DRY_RUN )); then
      printf '[dry-run] git clone --depth 1 %q <temporary directory>  (then install from it)\n' "$SOURCE"
      SOURCE_DIR=$script_tree   # for the rest of the dry run, show it with this tree's files
      return 0
    fi
    tmp=$(mktemp -d /tmp/gantry-src.XXXXXX); _TMPDIRS+=("$tmp")
    run git clone --quiet --depth 1 "$SOURCE" "$tmp/gantry" || die "cannot clone $SOURCE"
    SOURCE_DIR=$tmp/gantry
  else
    [[ -d $SOURCE ]] || die "--source $SOURCE: no such directory"
    SOURCE_DIR=$(cd "$SOURCE" && pwd -P)
  fi
  local f
  for f in package.json pnpm-lock.yaml pnpm-workspace.yaml deploy/systemd deploy/config; do
    [[ -e $SOURCE_DIR/$f ]] || die "$SOURCE_DIR is not a Gantry tree (no $f); pass --source DIR"
  done
}

# Copies the tree into the prefix (without node_modules, .git and local state), so that files
# removed upstream disappear too; node_modules in the prefix are kept for pnpm to reuse.
sync_tree() {
  local target out
  target=$(dest "$PREFIX")
  case $PREFIX in /|/usr|/usr/*|/etc|/etc/*|/var|/home|/root|"") die "refusing to install into --prefix $PREFIX" ;; esac
  if [[ -d $target ]] && [[ $(cd "$target" && pwd -P) == "$SOURCE_DIR" ]]; then
    info "$target is the source tree itself: nothing to copy"
    return 0
  fi
  if ! (( DRY_RUN )) && [[ -d $target ]] && [[ -n $(ls -A "$target") ]] && [[ ! -f $target/pnpm-workspace.yaml ]]; then
    die "$target exists and is not a Gantry tree; move it away or choose another --prefix"
  fi
  run mkdir -p "$target"
  local excludes=(--exclude=/.git --exclude=node_modules --exclude=/.gantry/ --exclude=/.device/ --exclude=coverage/ --exclude='*.tsbuildinfo')
  if command -v rsync >/dev/null; then
    if (( DRY_RUN )); then
      run rsync -rlptD --delete --chmod=a+rX,go-w "${excludes[@]}" "$SOURCE_DIR/" "$target/"
      return 0
    fi
    printf '+ rsync -rlptD --delete ... %s/ %s/\n' "$SOURCE_DIR" "$target"
    out=$(rsync -rlptD --delete --chmod=a+rX,go-w --itemize-changes "${excludes[@]}" "$SOURCE_DIR/" "$target/") \
      || die "copying $SOURCE_DIR to $target failed"
    # Lines starting with "." only touch attributes (e.g. a directory's mtime after pnpm
    # install); anything else (">f", "cd", "*deleting") is a real change: an upgrade.
    out=$(printf '%s\n' "$out" | grep -v -e '^\.' -e '^$' || true)
    if [[ -n $out ]]; then CHANGED=1; info "updated $(printf '%s\n' "$out" | wc -l) paths in $target"; else info "$target is up to date"; fi
  else
    warn "rsync not found: copying with tar (files deleted upstream stay in $target)"
    run sh -c "tar -C \"\$1\" --exclude=./.git --exclude=node_modules --exclude=./.gantry --exclude=./.device -cf - . | tar -C \"\$2\" --no-same-owner -xf -" sh "$SOURCE_DIR" "$target"
    CHANGED=1
  fi
}

# pnpm from the packageManager field of package.json (pnpm@X.Y.Z), installed with npm if missing.
ensure_pnpm() {
  local want
  want=$(sed -n 's/.*"packageManager": *"pnpm@\([^"+]*\).*/\1/p' "$SOURCE_DIR/package.json" | head -n1)
  if command -v pnpm >/dev/null; then info "pnpm $(pnpm --version 2>/dev/null || echo '?') at $(command -v pnpm)"; return 0; fi
  command -v npm >/dev/null || die "neither pnpm nor npm is installed (npm comes with Node.js; reinstall Node)"
  run npm install --global "pnpm@${want:-10}" || die "npm install --global pnpm@${want:-10} failed"
  (( DRY_RUN )) || command -v pnpm >/dev/null || die "pnpm was installed but is not on PATH ($(npm prefix -g)/bin)"
}

install_deps() {
  local target
  target=$(dest "$PREFIX")
  if (( ! DRY_RUN )) && (( ! CHANGED )) && [[ -d $target/node_modules/tsx ]]; then
    info "dependencies are installed and the tree did not change: skipping pnpm install"
    return 0
  fi
  # CI=true: never prompt (pnpm asks before recreating an incompatible node_modules).
  run env CI=true pnpm --dir "$target" install --frozen-lockfile --prod=false \
    || die "pnpm install in $target failed (see above); the lockfile must match package.json"
  CHANGED=1
}

# put_file SRC DEST MODE OWNER:GROUP — installs SRC at DEST when the content or mode differs.
put_file() {
  local src=$1 dst=$2 mode=$3 owner=$4
  if [[ -f $dst ]] && cmp -s "$src" "$dst"; then
    if (( ! DRY_RUN )); then chmod "$mode" "$dst"; chown "$owner" "$dst" 2>/dev/null || true; fi
    info "$dst is up to date"
    return 1
  fi
  if (( DRY_RUN )); then
    printf '[dry-run] install -m %s -o %s -g %s <%s> %s\n' "$mode" "${owner%%:*}" "${owner##*:}" "$(describe "$src")" "$dst"
    return 0
  fi
  mkdir -p "$(dirname "$dst")"
  install -m "$mode" "$src" "$dst"
  chown "$owner" "$dst" 2>/dev/null || warn "cannot chown $owner $dst"
  info "wrote $dst"
  return 0
}
describe() { case $1 in /tmp/gantry-*) printf 'generated';; *) printf '%s' "$1";; esac; }

tmpfile() { local d; d=$(mktemp -d /tmp/gantry-install.XXXXXX); _TMPDIRS+=("$d"); printf '%s/%s' "$d" "$1"; }

# The unit from deploy/systemd with this install's prefix and node path.
install_unit() {
  local name=$1 src gen
  src=$SOURCE_DIR/deploy/systemd/$name
  [[ -f $src ]] || die "missing $src"
  gen=$(tmpfile "$name")
  P=$PREFIX N=$NODE_BIN awk '{ gsub("/opt/gantry", ENVIRON["P"]); sub("^ExecStart=/usr/bin/node ", "ExecStart=" ENVIRON["N"] " "); print }' "$src" >"$gen"
  if put_file "$gen" "$(dest "/etc/systemd/system/$name")" 0644 root:root; then CHANGED=1; fi
}

# systemd is usable (running as PID 1), or we are told not to start anything.
systemd_ok() {
  [[ -n $ROOT ]] && return 1
  (( DRY_RUN )) && return 0
  [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null
}

# Replaces the value of the line "NAME=..." (uncommented) in FILE, keeping everything else.
set_env_line() {
  local file=$1 name=$2 value=$3 out
  out=$(K=$name V=$value awk 'BEGIN { k = ENVIRON["K"] "=" } index($0, k) == 1 { print k ENVIRON["V"]; done = 1; next } { print } END { if (!done) print k ENVIRON["V"] }' "$file")
  printf '%s\n' "$out" >"$file"
}

# start_units UNIT... : daemon-reload, enable --now; restart the ones that already ran when
# this install changed something (an upgrade); then check that each is active.
start_units() {
  local u was_active=() failed=0
  if ! systemd_ok; then
    if [[ -n $ROOT ]]; then info "--root: not touching systemd"; return 0; fi
    if (( NO_START )); then warn "systemd is not running here: skipped daemon-reload and enabling (--no-start)"; return 0; fi
    die "systemd is not running on this host (no /run/systemd/system); files are installed, but nothing was started. Re-run with --no-start to skip this step."
  fi
  run systemctl daemon-reload
  if (( NO_START )); then
    info "--no-start: not enabling or starting $*; start with: systemctl enable --now $*"
    return 0
  fi
  for u in "$@"; do
    if (( ! DRY_RUN )) && systemctl is-active --quiet "$u"; then was_active+=("$u"); fi
  done
  run systemctl enable --now "$@"
  if (( CHANGED )) && (( ${#was_active[@]} )); then
    run systemctl restart "${was_active[@]}"
  fi
  (( DRY_RUN )) && return 0
  sleep 3
  for u in "$@"; do
    if systemctl is-active --quiet "$u"; then info "$u is running"
    else failed=1; warn "$u is not running; see: journalctl -u $u -n 50 --no-pager"; fi
  done
  (( failed == 0 )) || die "some services did not start"
}

#!/usr/bin/env bash
# Prepares the GPU-host check (test/device/README.md) on this machine: .device/payload.tar.xz
# (git-ignored) with node, nats-server, redis-server (and the shared libraries it needs beyond
# libc), the services' bundles, gantry-spawn and the check itself. The GPU host has no Node.js
# and reaches no registry; run.sh unpacks this there.
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=.device/stage
rm -rf "$stage" .device/payload.tar.xz
mkdir -p "$stage/bin" "$stage/lib" .git/info
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
[ -x dist/gantry-spawn ] || pnpm -s build:spawn
node --import tsx test/device/bundle.ts "$stage/bundles"
cp dist/gantry-spawn "$stage/bundles/"
# The agent as installed on a GPU host (pnpm build:agent, what deploy/install ships), with
# gantry-spawn beside it where it looks.
pnpm -s build:agent
mkdir -p "$stage/installed" && cp dist/gantry-agent.mjs dist/gantry-spawn "$stage/installed/"
cp "$(readlink -f "$(command -v node)")" "$stage/bin/node"
cp "$(readlink -f "$(command -v nats-server)")" "$stage/bin/nats-server"
cp "$(readlink -f "$(command -v redis-server)")" "$stage/bin/redis-server.real"
# Shared libraries of redis-server outside glibc (jemalloc, lzf, systemd, OpenSSL, ...).
ldd "$stage/bin/redis-server.real" | awk '/=> \// {print $3}' | grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' | xargs -r -I{} cp -L {} "$stage/lib/"
cat > "$stage/bin/redis-server" <<'SH'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$here/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/redis-server.real" "$@"
SH
chmod +x "$stage/bin/redis-server"
tar -C "$stage" -cf - . | xz -T0 -6 > .device/payload.tar.xz
rm -rf "$stage"
du -h .device/payload.tar.xz

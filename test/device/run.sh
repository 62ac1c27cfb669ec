#!/usr/bin/env bash
# The GPU-host check (test/device/README.md), run on the GPU host from the repository root of
# a copy of the checkout, with .device/payload.tar.xz made by prepare.sh. Writes everything
# under $OUT (default .device/out): the real nvidia-smi's answers to the agent's queries, how
# long each takes, the whole agent cycle on it (fork per cycle against the nvidia-smi loop),
# then gpu-host-check.mjs (a single-host Gantry, an agent on the real backend, a real
# PyTorch job recovered from its checkpoint) and the services' logs, all but the summary
# lines in one results.tgz (the device tool brings back a few files, not a tree).
# Exit status: the check's.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=${OUT:-$root/.device/out}
mkdir -p "$out/captures"
stage=$root/.device/stage
rm -rf "$stage" && mkdir -p "$stage"
# Unpacked where prepare.sh built it: the bundles name their files under this root.
xz -d -c .device/payload.tar.xz | tar -C "$stage" -xf -
sed -i "s#@@GANTRY_REPO_ROOT@@#$root#g" "$stage"/bundles/*.mjs
export PATH="$stage/bin:$PATH:/usr/local/nvidia/bin"
export GANTRY_BUNDLE_DIR=$stage/bundles GANTRY_TEST_NO_CONTAINERS=1 GANTRY_KEEP_TEST_DIRS=1
export TMPDIR=$stage/tmp && mkdir -p "$TMPDIR"
command -v openssl >/dev/null || export GANTRY_INTERNAL_TLS=off

section() { printf '\n== %s ==\n' "$*"; }
section host
{ uname -a; node --version; nats-server --version; redis-server --version; python3 --version 2>&1; nproc; } 2>&1 | tee "$out/host.txt"
smi=$(command -v nvidia-smi) || { echo "no nvidia-smi on PATH or in /usr/local/nvidia/bin"; exit 1; }

section "nvidia-smi captures ($smi)"
cap=$out/captures
mapfile -t fields < <(node "$stage/bundles/smi-fields.mjs")
"$smi" > "$cap/nvidia-smi.txt" 2>&1
"$smi" -L > "$cap/nvidia-smi-L.txt" 2>&1
"$smi" -q > "$cap/nvidia-smi-q.txt" 2>&1
"$smi" -q -d PCIE > "$cap/nvidia-smi-q-d-PCIE.txt" 2>&1; echo "exit $?" >> "$cap/nvidia-smi-q-d-PCIE.txt"
"$smi" pci -gErrCnt > "$cap/nvidia-smi-pci-gErrCnt.txt" 2>&1
"$smi" --query-gpu="${fields[0]}" --format=csv > "$cap/query-gpu-metrics.csv" 2>&1
"$smi" --query-gpu="${fields[0]}" --format=csv,noheader,nounits > "$cap/query-gpu-metrics-nounits.csv" 2>&1; echo "exit $?" >> "$cap/query-gpu-metrics-nounits.csv"
"$smi" --query-gpu="${fields[1]}" --format=csv,noheader,nounits > "$cap/query-gpu-inventory-nounits.csv" 2>&1; echo "exit $?" >> "$cap/query-gpu-inventory-nounits.csv"
"$smi" nvlink -s > "$cap/nvidia-smi-nvlink-s.txt" 2>&1
"$smi" topo -m > "$cap/nvidia-smi-topo-m.txt" 2>&1
"$smi" --help-query-gpu > "$cap/nvidia-smi-help-query-gpu.txt" 2>&1
# The agent follows /dev/kmsg for XIDs: can this host read it? (a count, not the host's log)
echo "/dev/kmsg: $(timeout 1 cat /dev/kmsg 2>&1 | wc -l) records read in 1 s ($(timeout 1 cat /dev/kmsg 2>&1 >/dev/null | head -1))" | tee "$out/kmsg.txt"
cat "$cap/nvidia-smi-L.txt" "$cap/query-gpu-metrics.csv"

section "one nvidia-smi query: wall, user, sys (s), 10 runs each"
TIMEFORMAT='%R %U %S'
for q in "--query-gpu=${fields[0]} --format=csv,noheader,nounits" "pci -gErrCnt" "--query-gpu=${fields[1]} --format=csv,noheader,nounits" "-q"; do
  echo "nvidia-smi ${q:0:40}..."
  # shellcheck disable=SC2086
  for _ in 1 2 3 4 5 6 7 8 9 10; do { time "$smi" $q > /dev/null; } 2>&1; done | tr '\n' ';'
  echo
done | tee "$out/smi-timing.txt"

section "the agent's whole collection cycle on the real nvidia-smi (fork per cycle vs nvidia-smi loop)"
BENCH_SMI_BINARY=$smi BENCH_SMI_CYCLES=${BENCH_SMI_CYCLES:-15} node "$stage/bundles/smi-cycle.mjs" 2>&1 | tee "$out/smi-cycle.txt"

section "a single-host Gantry on the real backend, and a real PyTorch job"
OUT=$out node "$stage/bundles/gpu-host-check.mjs" 2>&1 | tee "$out/check.txt"
status=${PIPESTATUS[0]}
for d in "$TMPDIR"/gantry-stack-*; do [ -d "$d/logs" ] && cp -r "$d/logs" "$out/logs" && rm -rf "$d"; done
section "again with the installed agent (dist/gantry-agent.mjs) and a fork per query (no nvidia-smi loop)"
mkdir -p "$out/installed-fork"
OUT=$out/installed-fork GANTRY_DEVICE_AGENT=$stage/installed/gantry-agent.mjs GANTRY_NVIDIA_SMI_LOOP=false node "$stage/bundles/gpu-host-check.mjs" 2>&1 | tee -a "$out/check.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
for d in "$TMPDIR"/gantry-stack-*; do [ -d "$d/logs" ] && cp -r "$d/logs" "$out/installed-fork/logs"; done
# The agent's own lines about the device and the kernel log, for the record.
grep -hiE 'backend|nvidia|kmsg|kernel log|smi' "$out"/logs/agent-*.log 2>/dev/null | head -40 > "$out/agent-device-lines.txt"
tar -C "$out" -czf "$root/.device/results.tgz" . && find "$out" -mindepth 1 -maxdepth 1 ! -name check.txt ! -name smi-cycle.txt ! -name smi-timing.txt -exec rm -rf {} + && mv "$root/.device/results.tgz" "$out/"
rm -rf "$stage"
exit "$status"

// A stand-in nvidia-smi for hosts without a GPU: a shell script that replays real captures.
// `--query-gpu` prints the H100 capture's 198-field row cut down to the requested fields (looked
// up by name in the header) and rejects clocks_event_reasons.* like a pre-535 driver (on stdout,
// exit 2); `-q` prints the H100's `nvidia-smi -q`; `pci -gErrCnt` the H200's real output as this
// GPU's; `-lms N` repeats every N ms as nvidia-smi does. Marker files in `dir` switch modes:
// `no-pci` (a driver refusing `pci`), `gpu-lost` (`pci` names a lost GPU and exits 15).
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, FIXTURES } from './fixtures.js';

/**
 * Shell that prints one reading (`reading`), or one every N ms with `-lms N` as nvidia-smi
 * does, after `prelude` (which sees `$loop`: 0 without -lms).
 */
export function everyLms(reading: string, prelude = ''): string {
  return `loop=0; prev=
for a in "$@"; do [ "$prev" = -lms ] && loop=$a; prev=$a; done
${prelude}
while :; do
${reading}
  [ "$loop" = 0 ] && exit 0
  sleep $(awk "BEGIN { print $loop / 1000 }")
done
`;
}

/** Writes the stand-in as `dir`/nvidia-smi and returns its path. */
export function fakeNvidiaSmi(dir: string): string {
  const path = join(dir, 'nvidia-smi');
  writeFileSync(join(dir, 'row.csv'), fixture('nvidia-smi/session-capture-h100-80gb-hbm3/query-gpu-all-fields-noheader-nounits.csv'));
  writeFileSync(path, `#!/bin/sh
${everyLms(`  case "$1" in
    --query-gpu=*)
      fields="\${1#--query-gpu=}"
      case "$fields" in *clocks_event_reasons.active*) echo 'Field "clocks_event_reasons.active" is not a valid field to query.'; exit 2;; esac
      node -e '
        const fs = require("fs");
        const header = fs.readFileSync(process.argv[1], "utf8").split("\\n")[0].split(",").map((h) => h.trim().replace(/ \\[.*\\]$/, ""));
        const row = fs.readFileSync(process.argv[2], "utf8").trim().split(",");
        console.log(process.argv[3].split(",").map((f) => { const i = header.indexOf(f.replace(/^clocks_throttle_reasons/, "clocks_event_reasons")); return i < 0 ? " [N/A]" : row[i]; }).join(","));
      ' "${FIXTURES}nvidia-smi/session-capture-h100-80gb-hbm3/query-gpu-all-fields.csv" "${dir}/row.csv" "$fields";;
    -q) cat "${FIXTURES}nvidia-smi/session-capture-h100-80gb-hbm3/nvidia-smi-q.txt";;
    pci)
      [ -e "${dir}/no-pci" ] && { echo 'Invalid combination of input arguments. Please run "nvidia-smi -h" for help.'; exit 3; }
      [ -e "${dir}/gpu-lost" ] && { echo 'Unable to determine the device handle for GPU 0000:18:00.0: GPU is lost.  Reboot the system to recover this GPU'; }
      sed 's/^GPU 0: NVIDIA H200 (UUID: [^)]*)/GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-9b6c5236-63fa-edad-c3e6-063b1cf51ac7)/' "${FIXTURES}nvidia-smi/session-capture-h200/pci-gErrCnt.txt"
      if [ -e "${dir}/gpu-lost" ]; then exit 15; fi;;
    *) exit 1;;
  esac`)}`);
  chmodSync(path, 0o755);
  return path;
}

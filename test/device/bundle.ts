// Bundles what the GPU-host check runs (test/device/prepare.sh): the services and the CLI as
// the local stack runs them, the check itself, the nvidia-smi cycle bench and a helper that
// prints the agent's nvidia-smi query fields. Each bundle reads files of the checkout through
// absolute paths (deploy/local/bundle.ts); they are written as a placeholder that run.sh sets
// to wherever the checkout is on the GPU host.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { buildBundles } from '../../deploy/local/bundle.js';
import { REPO_ROOT } from '../../deploy/local/services.js';

export const ROOT_PLACEHOLDER = '@@GANTRY_REPO_ROOT@@';
const out = process.argv[2] && resolve(process.argv[2]);
if (!out) throw new Error('usage: bundle.ts <out-dir>');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await buildBundles(out, {
  'gpu-host-check': 'test/device/gpu-host-check.ts',
  'smi-cycle': 'test/device/smi-cycle-main.ts',
  'smi-fields': 'test/device/smi-fields.ts',
// The harness looks for a container engine first (none there: GANTRY_TEST_NO_CONTAINERS=1).
}, ['testcontainers']);
// grpc-health-check reads its .proto files from its package folder in node_modules, which the
// GPU host has not: a copy goes beside the bundles, and the bundles are pointed at it.
const healthPkg = join(createRequire(join(REPO_ROOT, 'libs/service-kit/package.json')).resolve('grpc-health-check'), '../../..');
cpSync(join(healthPkg, 'proto'), join(out, 'grpc-health-check', 'proto'), { recursive: true });
for (const f of readdirSync(out)) {
  if (f.endsWith('.map')) { rmSync(join(out, f)); continue; }
  if (!f.endsWith('.mjs')) continue;
  const text = readFileSync(join(out, f), 'utf8')
    .replaceAll(join(healthPkg, 'build/src'), join(out, 'grpc-health-check', 'build/src'))
    .replaceAll(REPO_ROOT, ROOT_PLACEHOLDER);
  writeFileSync(join(out, f), text);
}

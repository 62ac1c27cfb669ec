// @gantry/proto, @gantry/sdk and @gantry/cli as someone outside the repository gets them:
// built to JavaScript with declarations and packed (`pnpm pack:packages`), installed with npm
// into a temporary project outside the repository (no workspace, no tsx; their third-party
// dependencies come from the npm registry, or npm's cache when it has them), then:
// - the README's SDK example, verbatim but for the gateway address, type-checked by tsc against
//   the installed declarations and run with plain node against a real stack: it must print every
//   rank's output and exit 0 once the job SUCCEEDED, and exit 1 when the job failed;
// - the installed `gantry` binary lists jobs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { TestStack } from '../harness/stack.js';

const work = mkdtempSync(join(tmpdir(), 'gantry-packages-'));
const consumer = join(work, 'consumer');
const tarballs = join(work, 'tarballs');
const standIns = join(work, 'bin');

interface Result { code: number; stdout: string; stderr: string }

/** The environment of a shell outside pnpm: without the npm_* and pnpm variables of `pnpm test`. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|pnpm_)/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function run(command: string, args: string[], cwd: string, timeoutMs: number, env = cleanEnv()): Promise<Result> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function ok(what: string, r: Result): Result {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r;
}

/** The ```ts block of the README's "## SDK" section. */
function readmeSdkExample(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## SDK\n'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!section || !m) throw new Error('README.md has no ```ts block under "## SDK"');
  return m[1]!;
}

async function packAndInstall(): Promise<void> {
  const started = Date.now();
  ok('pnpm pack:packages', await run('pnpm', ['pack:packages', '--pack-destination', tarballs], REPO_ROOT, 240_000, { ...process.env }));
  const packed = readdirSync(tarballs).filter((f) => f.endsWith('.tgz')).sort();
  expect(packed).toEqual(['gantry-cli-0.1.0.tgz', 'gantry-proto-0.1.0.tgz', 'gantry-sdk-0.1.0.tgz']);
  const built = Date.now();
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
  // @types/node as any TypeScript project on Node has it (the example calls process.cwd()).
  ok('npm install', await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...packed.map((f) => join(tarballs, f)), '@types/node@^20'], consumer, 180_000));
  console.log(`packages: built and packed in ${((built - started) / 1000).toFixed(1)} s, npm install in ${((Date.now() - built) / 1000).toFixed(1)} s`);
}

let stack: TestStack;

beforeAll(async () => {
  // A stand-in for torchrun on the simulated hosts: runs nothing, but like torchrun it needs the
  // script in its working directory.
  mkdirSync(standIns, { recursive: true });
  writeFileSync(join(standIns, 'torchrun'), [
    '#!/bin/sh',
    'script=; for a in "$@"; do case "$a" in *.py) script="$a"; break;; esac; done',
    '[ -f "$script" ] || { echo "torchrun: can\'t open file $(pwd)/$script" >&2; exit 2; }',
    'echo "torchrun $* on node $NODE_RANK of $NNODES, world size $WORLD_SIZE"',
  ].join('\n') + '\n');
  chmodSync(join(standIns, 'torchrun'), 0o755);
  stack = new TestStack({ agents: 2, env: { 'node-agent': { PATH: `${standIns}:${process.env.PATH}` } } });
  await Promise.all([stack.start(), packAndInstall()]);
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  if (!process.env.GANTRY_KEEP_TEST_DIRS) rmSync(work, { recursive: true, force: true });
});

describe('packed @gantry/sdk and @gantry/cli, installed outside the repository', () => {
  it('installs JavaScript and declarations, without tsx or any workspace link', () => {
    expect(relative(REPO_ROOT, consumer).startsWith('..')).toBe(true);
    for (const name of ['proto', 'sdk', 'cli']) {
      const pkg = JSON.parse(readFileSync(join(consumer, 'node_modules/@gantry', name, 'package.json'), 'utf8')) as { exports: Record<string, { default: string; types: string }>; dependencies?: Record<string, string> };
      for (const entry of Object.values(pkg.exports)) {
        expect(existsSync(join(consumer, 'node_modules/@gantry', name, entry.default)), `${name} ${entry.default}`).toBe(true);
        expect(existsSync(join(consumer, 'node_modules/@gantry', name, entry.types)), `${name} ${entry.types}`).toBe(true);
      }
      expect(Object.values(pkg.dependencies ?? {}).filter((v) => v.startsWith('workspace:'))).toEqual([]);
      expect(existsSync(join(consumer, 'node_modules/@gantry', name, 'src'))).toBe(false);
    }
    expect(existsSync(join(consumer, 'node_modules/tsx'))).toBe(false);
    expect(existsSync(join(consumer, 'node_modules/@gantry/proto/dist/gen/descriptor.binpb'))).toBe(true);
  });

  it('runs the README SDK example: type-checks, streams every rank, exits 0 once the job SUCCEEDED', async () => {
    const example = readmeSdkExample();
    expect(example.split("'127.0.0.1:7070'")).toHaveLength(2);
    writeFileSync(join(consumer, 'example.ts'), example.replace("'127.0.0.1:7070'", `'${stack.gatewayAddr}'`));
    writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, types: ['node'], outDir: 'out' },
      files: ['example.ts'],
    }, null, 2));
    ok('tsc', await run(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], consumer, 120_000));

    writeFileSync(join(consumer, 'train.py'), 'print("training")\n');
    const r = await run(process.execPath, ['out/example.js'], consumer, 90_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('[node-rank 0] torchrun train.py on node 0 of 2, world size 16');
    expect(r.stdout).toContain('[node-rank 1] torchrun train.py on node 1 of 2, world size 16');
  });

  it('the README SDK example exits 1 when the job did not succeed (no train.py in its working directory)', async () => {
    const elsewhere = join(work, 'elsewhere');
    mkdirSync(elsewhere, { recursive: true });
    const r = await run(process.execPath, [join(consumer, 'out/example.js')], elsewhere, 90_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`can't open file ${elsewhere}/train.py`);
    expect(r.stderr).toMatch(/Error: job j-\S+ JOB_STATE_FAILED: /);
  });

  it('runs the installed gantry binary', async () => {
    const bin = join(consumer, 'node_modules/.bin/gantry');
    const version = ok('gantry --version', await run(bin, ['--version'], consumer, 30_000));
    expect(version.stdout.trim()).toBe('0.1.0');
    const list = ok('gantry job list', await run(bin, ['job', 'list', '--addr', stack.gatewayAddr], consumer, 30_000));
    expect(list.stdout).toMatch(/^ID\s+NAME/);
    expect(list.stdout).toContain('SUCCEEDED');
    const json = ok('gantry -o json job list', await run(bin, ['-o', 'json', 'job', 'list', '--addr', stack.gatewayAddr], consumer, 30_000));
    expect((JSON.parse(json.stdout) as { jobs: unknown[] }).jobs.length).toBeGreaterThanOrEqual(1);
  });
});

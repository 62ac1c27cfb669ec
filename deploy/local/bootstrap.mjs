#!/usr/bin/env node
// Makes a fresh machine (Node 20+ and npm only) ready to run Gantry from this checkout:
// pnpm, the workspace's dependencies, and the nats-server and redis-server binaries (and, when
// run without a task as .ci/run does, Debian's chromium for the browser test), and the flush
// admission shim and the rank spawner where a C compiler is (pnpm build:admit, build:spawn). Plain
// JavaScript with no dependencies, because it runs before anything is installed.
// Usage: node deploy/local/bootstrap.mjs [demo|stack:up|stack:down|test ...args]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`bootstrap: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

const [major] = process.versions.node.split('.').map(Number);
if (major < 20) {
  console.error(`bootstrap: Gantry needs Node.js 20 or newer, this is ${process.versions.node}`);
  process.exit(1);
}

if (!has('pnpm')) {
  console.log('bootstrap: installing pnpm 10 with npm');
  run('npm', ['install', '--global', 'pnpm@10']);
}

const [task, ...rest] = process.argv.slice(2);
// Chromium is for the tests only (the status page's browser test drives /usr/bin/chromium):
// installed when preparing for tests (no task, as .ci/run does), not for the demo or the stack.
const forTests = !task ? [['chromium', 'chromium']] : [];
const missing = [['nats-server', 'nats-server'], ['redis-server', 'redis-server'], ...forTests].filter(([bin]) => !has(bin) && !existsSync(`/usr/sbin/${bin}`));
if (missing.length > 0) {
  const pkgs = missing.map(([, pkg]) => pkg);
  console.log(`bootstrap: installing ${pkgs.join(', ')} with apt-get`);
  if (!has('apt-get')) {
    console.error(`bootstrap: ${pkgs.join(' and ')} not found and apt-get is not available; install them and retry`);
    process.exit(1);
  }
  const aptGet = (args) => (process.getuid?.() === 0 ? run('apt-get', args, aptOpts) : run('sudo', ['apt-get', ...args], aptOpts));
  const aptOpts = { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } };
  aptGet(['update', '-qq']);
  aptGet(['install', '-y', '-qq', ...pkgs]);
}

if (!existsSync(join(root, 'node_modules', '.modules.yaml'))) {
  console.log('bootstrap: installing dependencies (pnpm install --frozen-lockfile)');
  run('pnpm', ['install', '--frozen-lockfile']);
}

// The native parts, where a C compiler is: the flush admission shim (dist/libgantry-admit.so)
// for jobs with checkpoint.admit_flushes, and the rank spawner (dist/gantry-spawn). Both are
// optional, so a machine without a compiler only warns: such jobs' ranks are then refused, and
// the agents fork their ranks themselves.
if (has(process.env.CC || 'cc')) {
  const r = spawnSync('pnpm', ['-s', 'build:admit'], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) console.error('bootstrap: warning: `pnpm build:admit` failed; jobs with checkpoint.admit_flushes will be refused');
  const s = spawnSync('pnpm', ['-s', 'build:spawn'], { stdio: 'inherit', cwd: root });
  if (s.status !== 0) console.error('bootstrap: warning: `pnpm build:spawn` failed; agents will fork their ranks themselves');
} else {
  console.error('bootstrap: warning: no C compiler (cc): the flush admission shim and the rank spawner are not built; jobs with checkpoint.admit_flushes will be refused, and agents fork their ranks themselves');
}

if (task) {
  const scripts = { demo: 'deploy/local/demo.ts', 'stack:up': 'deploy/local/stack.ts', 'stack:down': 'deploy/local/stack.ts' };
  const target = scripts[task];
  if (!target) {
    console.error(`bootstrap: unknown task ${task}`);
    process.exit(2);
  }
  const args = ['--import', 'tsx', target, ...(task.startsWith('stack:') ? [task.slice(6)] : []), ...rest];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
  process.exit(r.status ?? 1);
}

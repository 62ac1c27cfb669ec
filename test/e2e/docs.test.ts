// The commands of README.md and docs/cli.md, run as they are written against a real stack.
//
// Every shell code block line and every inline `pnpm ...` / `gantry ...` / `npm ...` command of
// the two documents is extracted when the test is collected, so a command added to the docs is
// run (or must be listed in SKIPPED with its reason: an unclassified one fails). Each runnable
// command runs through bash, in document order, with only these substitutions:
// - the gateway: GANTRY_ADDR (the documented variable) names the test stack's gateway;
// - job ids (j-...) name a job of the state the command needs: a SUCCEEDED job, a RUNNING one for
//   `job cancel`, a FAILED one for `job retry`;
// - sim-node-N (the local stack's names) is node-N, `.gantry/agents/sim-node-N` that agent's
//   state folder, and job.yaml, policy.yaml, policy.json and health.yaml are files in a temporary folder;
// - `gantry` is the CLI, run outside the repository: this run's bundle of it (cliCommand in
//   deploy/local/services.ts; libs/cli/bin/gantry.js, the documented binary, without bundles);
//   `pnpm ...` runs from the repository root, as documented, except that `pnpm gantry ...` runs
//   as written only once (the first such command: pnpm, then the CLI's sources under tsx) and
//   is `gantry ...` from the repository root otherwise (see PNPM_GANTRY_AS_WRITTEN);
// - the simulated hosts have a stand-in `torchrun` on their PATH (it prints its arguments).
// Each must exit 0 (or the code in EXPECTED_CODE). Jobs a command leaves unfinished (a submit
// without --wait) are cancelled before the next command. Synopses (`gantry job retry ID`) are
// not run, but each documented subcommand must be run by at least one concrete command.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GantryClient } from '@gantry/sdk';
import { JobState, isTerminalJobState, type Job } from '@gantry/proto';
import { REPO_ROOT, cliCommand } from '../../deploy/local/services.js';
import { TestStack, eventually } from '../harness/stack.js';

const DOCS = ['README.md', 'docs/cli.md'];

/** Commands that are not run here, each with the reason. Keys are the command as written. */
const SKIPPED: Record<string, string> = {
  'npm run demo': 'installs tools and starts the local stack on its fixed ports, left running; the same stack commands run here against a TestStack',
  'pnpm demo': 'same as npm run demo',
  'pnpm stack:up': 'starts the local stack on its fixed ports (7070, 14222, 16379, ...), left running; a developer may have one up already',
  'pnpm stack:down': 'stops the local stack that pnpm stack:up started',
  'pnpm test': 'the test suite itself, this file included',
  'node deploy/local/bootstrap.mjs': 'installs pnpm, the dependencies, nats-server and redis-server (system packages)',
  '.ci/run': 'CI itself: bootstrap, gen:check, lint and the whole test suite',
  'sudo deploy/install/install-agent.sh --nats-url nats://nats.cluster:4222 --scheduler-key command-signing.pub --nats-seed agent-gpu-001.nk': 'installs into /opt/gantry and enables a systemd unit on a GPU host (test/e2e/install-agent.test.ts runs it into a temporary root)',
  'deploy/install/install-control-plane.sh': 'installs the control plane into /opt/gantry with systemd units',
  'pnpm build:agent': 'a build step (dist/gantry-agent.mjs for the install scripts and pnpm bench:agent), not a stack command',
  'pnpm pack:packages': 'run by test/e2e/packages.test.ts, which installs the tarballs outside the repository',
  'pnpm gen': 'rewrites libs/proto/src/gen while other tests read it; .ci/run runs pnpm gen:check',
  'pnpm gen:check': 'run by .ci/run',
  'pnpm lint': 'run by .ci/run',
  'pnpm bench:scheduler': 'a benchmark of minutes (20,000 jobs on 4,096 simulated nodes)',
  'pnpm bench:agent': 'a benchmark of minutes (1,000 simulated agents with real jobs, the installed bundle)',
  'pnpm bench:list': 'a benchmark of minutes (100,000 jobs written to Redis, then paged through the gateway)',
  'pnpm bench:throughput': 'a benchmark of minutes (2,000 jobs through a 4-agent stack)',
  'pnpm bench:submit': 'a benchmark of minutes (the submission half of bench:throughput)',
  'pnpm bench:scale': 'a benchmark of about 7 minutes (the scale targets\' benchmarks one after another, 10,000 simulated agents among them)',
  'pnpm bench:scale list agents': 'a benchmark of minutes (100,000 jobs in Redis, then 10,000 simulated agents)',
  'pnpm bench:scale agents': 'a benchmark of minutes (10,000 simulated agents)',
  'pnpm bench:telemetry': 'a benchmark (the scheduler\'s telemetry ingest draining 4,000 batches through real NATS and Redis)',
  'pnpm bench:exclusions': 'a benchmark (20,000 pending jobs on 4,096 simulated nodes, several cycles)',
  'pnpm bench:recovery': 'a benchmark of minutes (two real stacks of 12 agents, 26 jobs with faults)',
  'pnpm eval:detection': 'an evaluation of minutes (63 simulated nodes over four weeks)',
  'pnpm bench:checkpoint': 'a benchmark (~1 min): the queueing model on its own redis-server, then the end-to-end half on a test stack (test/sim/checkpoint-admission/e2e.ts, sharing test/e2e/storage-stack.ts with the e2e tests)',
  // Inline mentions of a tool or subcommand by name, not commands to run as written.
  'gantry': 'names the binary',
  'gantry admin config set': 'names the subcommand; its concrete form (with -f) runs from the CLI block',
  'npm install': 'names the tool; test/e2e/packages.test.ts installs the packed tarballs with it',
};

/** Documented exit codes other than 0, by command as written. */
const EXPECTED_CODE: Record<string, number> = {};

interface DocCommand {
  /** The command as written (continuations joined, comment removed). */
  text: string;
  where: string;
}

/** `#` starts a comment when it begins a word outside quotes. */
function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) { if (c === quote) quote = ''; continue; }
    if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

const COMMAND_START = /^(pnpm|npm|npx|node|gantry|sudo|libs\/cli\/bin\/gantry\.js|\.ci\/run|deploy\/\S+\.sh)(\s|$)/;

function extract(): { commands: DocCommand[]; synopses: DocCommand[] } {
  const commands: DocCommand[] = [];
  const synopses: DocCommand[] = [];
  for (const doc of DOCS) {
    const lines = readFileSync(join(REPO_ROOT, doc), 'utf8').split('\n');
    let fence: string | undefined;
    let pending = '';
    let pendingLine = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const where = `${doc}:${i + 1}`;
      const f = /^```(\S*)/.exec(line);
      if (f) { fence = fence === undefined ? f[1]! : undefined; continue; }
      if (fence !== undefined) {
        if (!['sh', 'bash', 'shell', 'console'].includes(fence)) continue;
        let text = stripComment(line);
        const continued = /\\\s*$/.test(text);
        text = text.replace(/\\\s*$/, '').trim();
        if (!pending) pendingLine = i + 1;
        pending = pending ? `${pending} ${text}` : text;
        if (continued) continue;
        if (pending) commands.push({ text: pending.replace(/\s+/g, ' '), where: `${doc}:${pendingLine}` });
        pending = '';
        continue;
      }
      for (const m of line.matchAll(/`([^`]+)`/g)) {
        const text = m[1]!.trim();
        if (!COMMAND_START.test(text)) continue;
        // A synopsis: placeholders in capitals (ID, NAME, FILE), [optional] parts or "...".
        if (/\.\.\.|\[|\b[A-Z][A-Z_]*\b/.test(text.replace(/^\S+/, ''))) synopses.push({ text, where });
        else commands.push({ text, where });
      }
    }
  }
  return { commands, synopses };
}

const { commands, synopses } = extract();
const seen = new Set<string>();
const unique = commands.filter((c) => (seen.has(c.text) ? false : (seen.add(c.text), true)));
const runnable = (t: string) => SKIPPED[t] === undefined && /^(pnpm gantry|gantry|libs\/cli\/bin\/gantry\.js|pnpm agent sim inject)\s/.test(t);
// Fault injection changes a node for good: after every other command.
const toRun = [...unique.filter((c) => runnable(c.text) && !c.text.startsWith('pnpm agent')), ...unique.filter((c) => c.text.startsWith('pnpm agent'))];
/**
 * The one `pnpm gantry ...` command that runs as written. pnpm and the TypeScript loader cost
 * ~2 CPU-s a command, and the CLI they run is the one `gantry` runs, so every other such command
 * runs as `gantry ...` from the repository root (the same CLI, arguments and working folder).
 */
const PNPM_GANTRY_AS_WRITTEN = toRun.find((c) => c.text.startsWith('pnpm gantry '))?.text;
const asRun = (text: string) => (text.startsWith('pnpm gantry ') && text !== PNPM_GANTRY_AS_WRITTEN ? text.replace(/^pnpm gantry /, 'gantry ') : text);

/** `gantry job list ...` -> "job list" (the subcommand a command or synopsis names). */
function subcommand(text: string): string {
  // Without [optional] parts and flags.
  const words = text.replace(/^(pnpm gantry|gantry|libs\/cli\/bin\/gantry\.js)\s+/, '').replace(/\[[^\]]*\]/g, ' ').split(/\s+/).filter((w) => w && !w.startsWith('-'));
  return words[0] === 'admin' ? words.slice(0, 3).join(' ') : words.slice(0, 2).join(' ');
}

const work = mkdtempSync(join(tmpdir(), 'gantry-docs-'));
const bin = join(work, 'bin');
let stack: TestStack;
let client: GantryClient;
const fixtures = new Map<string, Job>();
const ran: string[] = [];

beforeAll(async () => {
  mkdirSync(bin);
  // The documented `gantry` binary, and a torchrun for the simulated hosts.
  const cli = cliCommand();
  writeFileSync(join(bin, 'gantry'), `#!/bin/sh\nexec ${[cli.command, ...cli.args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')} "$@"\n`);
  writeFileSync(join(bin, 'torchrun'), '#!/bin/sh\necho "torchrun stand-in: $* (node $NODE_RANK of $NNODES)"\n');
  for (const f of ['gantry', 'torchrun']) chmodSync(join(bin, f), 0o755);
  stack = await new TestStack({ agents: 2, env: { 'node-agent': { PATH: `${bin}:${process.env.PATH}` } } }).start();
  client = new GantryClient({ address: stack.gatewayAddr });
  writeFileSync(join(work, 'job.yaml'), 'name: docs-job-file\nnodes: 1\ngpusPerNode: 1\ncommand: [sh, -c, "echo from job.yaml"]\n');
  const { configJson } = await client.getSchedulingConfig();
  writeFileSync(join(work, 'policy.yaml'), `# the policy in force, as YAML (JSON is YAML)\n${configJson}\n`);
  writeFileSync(join(work, 'health.yaml'), '# a subset: the defaults fill the rest\nwindowSec: 60\nxid:\n  policy:\n    48: {action: quarantine-now}\n');
}, 120_000);

afterAll(async () => {
  client?.close();
  await stack?.stop();
  if (!process.env.GANTRY_KEEP_TEST_DIRS) rmSync(work, { recursive: true, force: true });
});

async function waitEnded(id: string): Promise<Job> {
  return eventually(`job ${id} to end`, async () => {
    const job = await client.getJob(id);
    return isTerminalJobState(job.state) ? job : undefined;
  }, 60_000, 200);
}

/** A job in the state `kind` names, made on first use. */
async function fixture(kind: 'succeeded' | 'running' | 'failed'): Promise<Job> {
  const have = fixtures.get(kind);
  if (have) return have;
  const command = { succeeded: ['sh', '-c', 'echo docs fixture rank $NODE_RANK'], running: ['sleep', '300'], failed: ['sh', '-c', 'echo failing; exit 3'] }[kind];
  const { job } = await client.submitJob({ name: `docs-${kind}`, nodes: 1, gpusPerNode: 1, command });
  let ready: Job;
  if (kind === 'running') {
    ready = await eventually('the fixture job to run', async () => {
      const j = await client.getJob(job!.id);
      return j.state === JobState.JOB_STATE_RUNNING ? j : undefined;
    }, 60_000, 200);
  } else {
    ready = await waitEnded(job!.id);
    expect(ready.state, `fixture ${kind}: ${ready.reason}`).toBe(kind === 'succeeded' ? JobState.JOB_STATE_SUCCEEDED : JobState.JOB_STATE_FAILED);
  }
  fixtures.set(kind, ready);
  return ready;
}

async function substitute(text: string): Promise<string> {
  let out = text;
  const ids = out.match(/\bj-[a-z0-9][a-z0-9-]*/g) ?? [];
  if (ids.length > 0) {
    const sub = subcommand(out);
    const job = await fixture(sub === 'job cancel' ? 'running' : sub === 'job retry' ? 'failed' : 'succeeded');
    for (const id of ids) out = out.replaceAll(id, job.id);
  }
  out = out.replace(/\.gantry\/agents\/sim-node-(\d+)/g, (_, i: string) => stack.agentStateDir(Number(i)));
  out = out.replace(/\bsim-node-(\d+)/g, 'node-$1');
  out = out.replace(/(^|[\s=>])(job\.yaml|policy\.yaml|policy\.json|health\.yaml)(?=\s|$)/g, (_, pre: string, f: string) => `${pre}${join(work, f)}`);
  out = out.replace(/--addr\s+\S+/g, `--addr ${stack.gatewayAddr}`);
  // Without jq the JSON is checked by the test instead.
  if (/\|\s*jq\b/.test(out) && !(await sh('command -v jq', work)).code) return out;
  return out.replace(/\s*\|\s*jq\b.*$/, '');
}

interface Result { code: number; stdout: string; stderr: string }

function sh(command: string, cwd: string): Promise<Result> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|pnpm_)/i.test(k)) env[k] = v;
  Object.assign(env, { GANTRY_ADDR: stack.gatewayAddr, PATH: `${bin}:${process.env.PATH}` });
  return new Promise((resolve) => {
    execFile('bash', ['-o', 'pipefail', '-c', command], { cwd, env, timeout: 80_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Cancels every unfinished job that is not a fixture, and waits until it ended. */
async function cancelLeftovers(): Promise<void> {
  const keep = new Set([...fixtures.values()].map((j) => j.id));
  for await (const job of client.listAllJobs()) {
    if (keep.has(job.id) || isTerminalJobState(job.state)) continue;
    await client.cancelJob(job.id, 'docs test: left by a command without --wait').catch(() => undefined);
    await waitEnded(job.id);
  }
}

describe('README.md and docs/cli.md commands', () => {
  it('finds the documented commands', () => {
    expect(toRun.length).toBeGreaterThanOrEqual(20);
    expect(PNPM_GANTRY_AS_WRITTEN, 'a `pnpm gantry ...` command to run as written').toBeDefined();
  });

  for (const c of unique) {
    const reason = SKIPPED[c.text];
    if (reason !== undefined) {
      // it.skip: listed as skipped, with the reason, in every run's report.
      it.skip(`${c.where}: ${c.text} (skipped: ${reason})`, () => {});
    } else if (!runnable(c.text)) {
      it(`${c.where}: ${c.text}`, () => {
        throw new Error(`a documented command that this test neither runs nor lists in SKIPPED with a reason: ${c.text}`);
      });
    }
  }

  for (const c of toRun) {
    it(`${c.where}: ${c.text}`, async () => {
      const command = await substitute(asRun(c.text));
      const cwd = c.text.startsWith('gantry ') ? work : REPO_ROOT;
      const r = await sh(command, cwd);
      ran.push(subcommand(c.text));
      const expected = EXPECTED_CODE[c.text] ?? 0;
      expect(r.code, `${command}\n(cwd ${cwd}) exited ${r.code}\nstdout: ${r.stdout.slice(-3000)}\nstderr: ${r.stderr.slice(-3000)}`).toBe(expected);
      if (/\|\s*jq\b/.test(c.text) && !/\|\s*jq\b/.test(command)) {
        expect((JSON.parse(r.stdout) as { jobs: { id: string }[] }).jobs.map((j) => j.id).length).toBeGreaterThan(0);
      }
      if (/>\s*policy\.json\b/.test(c.text)) expect(JSON.parse(readFileSync(join(work, 'policy.json'), 'utf8'))).toBeTypeOf('object');
      if (c.text.startsWith('pnpm agent sim inject xid')) {
        const [, xid, gpu] = /xid (\d+) --gpu (\d+)/.exec(command)!;
        await eventually('the injected XID in the node events', async () => {
          const { events } = await client.listNodeEvents('node-0');
          return events.some((e) => e.event?.$case === 'xid' && e.event.xid.xid === Number(xid) && e.event.xid.gpuIndex === Number(gpu)) || undefined;
        }, 30_000, 250);
      }
      await cancelLeftovers();
    }, 120_000);
  }

  it('the documented job file is accepted as it is', async () => {
    const cli = readFileSync(join(REPO_ROOT, 'docs/cli.md'), 'utf8');
    const yaml = /### Job file \(YAML\)[\s\S]*?```yaml\n([\s\S]*?)```/.exec(cli)?.[1];
    expect(yaml, 'docs/cli.md has a ```yaml block under "### Job file (YAML)"').toBeDefined();
    writeFileSync(join(work, 'documented-job.yaml'), yaml!);
    const r = await sh('gantry -o json job submit -f documented-job.yaml', work);
    expect(r.code, r.stderr).toBe(0);
    await cancelLeftovers();
  }, 60_000);

  it('runs every documented subcommand at least once', () => {
    const documented = new Set(synopses.filter((s) => /^(pnpm gantry|gantry)\s/.test(s.text)).map((s) => subcommand(s.text)).filter((s) => /^[a-z]/.test(s)));
    // A one-word subcommand (`gantry report --since 30d`) is run by any command that starts with it.
    const missing = [...documented].filter((s) => !ran.some((r) => r === s || r.startsWith(`${s} `)));
    expect(missing, 'subcommands with a synopsis in the docs but no concrete command that ran').toEqual([]);
  });
});

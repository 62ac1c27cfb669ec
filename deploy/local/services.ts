// How to launch each Gantry process from this checkout (used by the local stack and by the
// test harness): node with the tsx loader, from the repository root, or, where bundles of the
// working tree were built for this run (deploy/local/bundle.ts), node on the bundle.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect as netConnect } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

export type ServiceName = 'gateway' | 'scheduler' | 'checkpoint' | 'node-agent';

/**
 * Names the folder of bundles built from the working tree for this run (deploy/local/bundle.ts)
 * to the processes of the run: the e2e tests' global setup sets it for the test workers. Unset
 * (and with no folder passed): the sources run under tsx. Bundles are never looked for anywhere
 * else, so a stale one is never run.
 */
export const BUNDLE_DIR_ENV = 'GANTRY_BUNDLE_DIR';

/** `node <bundle>` with its source map for stack traces, when bundles were built for this run. */
function bundled(name: string, dir: string | undefined): string[] | undefined {
  return dir ? ['--enable-source-maps', join(dir, `${name}.mjs`)] : undefined;
}

/** A service's command: its bundle in bundleDir when bundles were built, else its sources under tsx. */
export function serviceCommand(service: ServiceName, bundleDir = process.env[BUNDLE_DIR_ENV]): { command: string; args: string[]; cwd: string } {
  const args = bundled(service, bundleDir) ?? ['--import', 'tsx', join(REPO_ROOT, 'services', service, 'src', 'main.ts')];
  return { command: process.execPath, args, cwd: REPO_ROOT };
}

/** The `gantry` CLI: its bundle when built for this run, else its bin (the sources under tsx). */
export function cliCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: bundled('gantry', process.env[BUNDLE_DIR_ENV]) ?? [join(REPO_ROOT, 'libs/cli/bin/gantry.js')] };
}

/** dist/gantry-spawn (pnpm build:spawn, run by bootstrap): the agents' rank spawner. */
const SPAWN_HELPER = join(REPO_ROOT, 'dist', 'gantry-spawn');

/** Environment of a simulated agent on this machine (no config file, simulated GPUs). */
export function simAgentEnv(name: string, stateDir: string, gpus = 8): NodeJS.ProcessEnv {
  return {
    GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: name, GANTRY_NODE_ADDRESS: '127.0.0.1', GANTRY_STATE_DIR: stateDir,
    DEVICE_BACKEND: 'sim', SIM_GPUS: String(gpus),
    // Ranks as the developer's user; when that is root (a CI box), explicitly allowed
    // (agents refuse uid 0 otherwise; docs/security.md, rank users).
    GANTRY_RANKS_ALLOW_ROOT: 'true',
    // Ranks forked by gantry-spawn when it is built, as on an installed host (else by the agent).
    ...(existsSync(SPAWN_HELPER) && { GANTRY_SPAWN_HELPER: SPAWN_HELPER }),
  };
}

/** Topology of simulated agent i in a small local cluster: 2 nodes per leaf switch, one spine. */
export function simTopology(i: number): Record<string, string> {
  return {
    TOPOLOGY_LEAF_SWITCH: `leaf-${Math.floor(i / 2)}`,
    TOPOLOGY_SPINE: 'spine-0',
    TOPOLOGY_RACK: `rack-${Math.floor(i / 2)}`,
    TOPOLOGY_NVLINK_DOMAIN: `nvl-${i}`,
  };
}

/** Whether something accepts TCP connections on 127.0.0.1:port (readiness of a server). */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Process-group ids of the ranks an agent's state file says are running (ranks outlive their
 * agent by design: whoever tears a local stack down stops them). The agent rewrites the file in
 * place (services/node-agent/src/runner/state-file.ts), so a read that meets a write half done
 * (unparseable, or parsed with differing first and last sequence numbers) is tried again.
 */
export function runningRankPids(agentStateDir: string): number[] {
  const file = join(agentStateDir, 'agent-state.json');
  for (let attempt = 0; ; attempt++) {
    if (!existsSync(file)) return [];
    try {
      const state = JSON.parse(readFileSync(file, 'utf8')) as { writeSeq?: number; writeEnd?: number; ranks?: Record<string, { pid?: number; phase?: string }> };
      // A read that met a write half done can still parse: its first and last sequence numbers differ.
      if (state.writeSeq !== state.writeEnd) throw new Error(`${file} is being written`);
      return Object.values(state.ranks ?? {}).filter((r) => r.phase === 'running' && (r.pid ?? 0) > 0).map((r) => r.pid!);
    } catch (err) {
      if (attempt >= 20) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

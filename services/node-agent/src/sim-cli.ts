// `gantry-agent sim inject <fault> [...]`: hands a fault to the simulated backend of a
// running agent on this host (through a folder in its state directory: no inbound port).
// An Xid is also written straight into the simulated kernel log, as the kernel would: it is
// there even while the agent is down, and a restarted agent reads it from the backlog.
// `gantry-agent sim reboot` reboots the simulated host (new boot id, empty kernel log).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { defaultHostModel, FAULT_KINDS, SimKernelRing, simKernelDir, xidKernelMessage, type Fault, type FaultKind } from './device/index.js';
import { injectDir } from './host-telemetry.js';

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

export function simProgram(stateDir: () => string, write: (msg: string) => void): Command {
  const program = new Command('gantry-agent').exitOverride();
  const sim = program.command('sim').description('control the simulated device backend');
  sim.command('reboot')
    .description('reboot the simulated host: a new boot id, an empty kernel log, every GPU back (for a stopped agent)')
    .option('--state-dir <dir>', "the agent's state directory (default: from its configuration)")
    .action((o: { stateDir?: string }) => {
      const state = o.stateDir ?? stateDir();
      const boot = new SimKernelRing(simKernelDir(state)).reboot();
      write(`rebooted the simulated host of ${state} (boot ${boot.bootId})\n`);
    });
  sim.command('inject')
    .argument('<fault>', `one of ${FAULT_KINDS.join(', ')}`)
    .argument('[xid]', 'the Xid number, for `xid`', int)
    .option('--gpu <index>', 'GPU index', int)
    .option('--mount <path>', 'NFS mountpoint')
    .option('--device <name>', 'RDMA device, e.g. mlx5_0')
    .option('--port <n>', 'RDMA port', int)
    .option('--duration <seconds>', 'how long the fault lasts', int)
    .option('--param <key=value...>', 'fault-specific parameters')
    .option('--state-dir <dir>', "the running agent's state directory (default: from its configuration)")
    .action((kind: string, xid: number | undefined, o: { gpu?: number; mount?: string; device?: string; port?: number; duration?: number; param?: string[]; stateDir?: string }) => {
      if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new InvalidArgumentError(`unknown fault ${JSON.stringify(kind)}; one of ${FAULT_KINDS.join(', ')}`);
      if (kind === 'xid' && xid === undefined) throw new InvalidArgumentError('`xid` needs the Xid number, e.g. sim inject xid 79 --gpu 3');
      const params: Record<string, string | number | boolean> = {};
      for (const p of o.param ?? []) {
        const [k, v] = p.split('=');
        if (!k || v === undefined) throw new InvalidArgumentError(`--param expects key=value, got ${JSON.stringify(p)}`);
        params[k] = Number.isFinite(Number(v)) ? Number(v) : v;
      }
      if (xid !== undefined) params.xid = xid;
      const state = o.stateDir ?? stateDir();
      if (xid !== undefined) {
        const kernel = new SimKernelRing(simKernelDir(state));
        // The GPUs the agent's backend recorded; before its first start, the default host's.
        const gpus = kernel.host()?.gpus ?? defaultHostModel().gpuBuses.map((b, index) => ({ index, pciBusId: `00000000:${b}:00.0`, uuid: '' }));
        const gpu = gpus.find((g) => g.index === (o.gpu ?? 0));
        if (!gpu) throw new InvalidArgumentError(`no GPU ${o.gpu ?? 0} on the simulated host (it has ${gpus.length})`);
        kernel.append(3, xidKernelMessage(gpu.index, gpu.pciBusId, xid, params));
        if (xid === 79) kernel.markLost(gpu.index);
        params.logged = true;
      }
      if (kind === 'gpu-lost') new SimKernelRing(simKernelDir(state)).markLost(o.gpu ?? 0);
      const fault: Fault = { fault: kind as FaultKind, gpu: o.gpu, mount: o.mount, device: o.device, port: o.port, duration: o.duration, params };
      const dir = injectDir(state);
      mkdirSync(dir, { recursive: true });
      const name = `${Date.now()}-${process.pid}.json`;
      writeFileSync(join(dir, `${name}.tmp`), JSON.stringify(fault));
      renameSync(join(dir, `${name}.tmp`), join(dir, name));
      write(`queued ${kind}${xid !== undefined ? ` ${xid}` : ''} for the agent using ${state}\n`);
    });
  return program;
}

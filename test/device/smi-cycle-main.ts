// The nvidia-smi cycle bench (services/node-agent/bench/smi-cycle.ts) as an entry of its own for
// the GPU-host check: run.sh runs it with BENCH_SMI_BINARY set to the host's nvidia-smi.
import { benchSmiCycle, printSmiBench } from '../../services/node-agent/bench/smi-cycle.js';

const intervalMs = Number(process.env.BENCH_SMI_INTERVAL_MS ?? 1000);
printSmiBench(await benchSmiCycle(undefined, intervalMs), intervalMs);

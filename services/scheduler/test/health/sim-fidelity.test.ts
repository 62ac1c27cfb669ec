// The detection evaluation's generator (test/sim/detection) builds batches straight from the
// simulated hosts for speed; this checks, over a few simulated hours, that what it builds is
// exactly what the agent's own parsers, rate derivation and to-proto make of the same hosts'
// raw text, and that XIDs come through the agent's kernel-log parser mapped to their GPU.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ClusterSim } from '../../../../test/sim/detection/cluster.js';
import { parseScenario } from '../../../../test/sim/detection/scenario.js';

describe('detection scenario generator', () => {
  it('produces the batches and XIDs an agent would send', () => {
    const path = fileURLToPath(new URL('../../../../test/sim/detection/scenarios/four-weeks-63x8.json', import.meta.url));
    const sc = parseScenario(JSON.parse(readFileSync(path, 'utf8')));
    // Two faults early on so that XIDs flow: an ECC storm ending in XID 48, a sudden XID 79.
    sc.days = 1;
    sc.faults = [
      { id: 'storm', kind: 'ecc-storm', node: 3, gpu: 2, atHours: 2, precursorHours: 1, xid: 48 },
      { id: 'drop', kind: 'sudden-xid', node: 7, gpu: 5, atHours: 3, xid: 79 },
    ];
    const sim = new ClusterSim(sc, { fidelityEveryHours: 1 });
    const xids = [];
    for (let k = 0; k < (4 * 3600) / sc.intervalSec; k++) {
      const w = sim.step();
      // Every online host reports once per interval (a host out for repair does not).
      expect(new Set(w.batches.map((b) => b.node)).size).toBe(w.batches.length);
      expect(w.batches.length).toBeGreaterThanOrEqual(61);
      xids.push(...w.xids);
    }
    expect(sim.fidelity.mismatches).toEqual([]);
    expect(sim.fidelity.compared).toBeGreaterThan(100);
    expect(xids.filter((x) => x.node === 'node-03').map((x) => [x.xid, x.gpuIndex])).toEqual(expect.arrayContaining([[48, 2], [63, 2]]));
    expect(xids.filter((x) => x.node === 'node-07').map((x) => [x.xid, x.gpuIndex, x.mnemonic])).toEqual([[79, 5, 'ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS']]);
    expect(sim.labels.find((l) => l.id === 'storm')).toMatchObject({ category: 'hardware', precursor: true, node: 'node-03', xid: 48 });
  });
});

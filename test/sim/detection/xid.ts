// XIDs as the agent sees them: the driver's kernel-log line (rendered with the sim backend's
// kmsg renderer, in the sim backend's wording), parsed by the agent's XidLogParser against
// the host's GPU inventory and turned into a gantry.v1 XidEvent by the agent's to-proto.
import type { XidEvent } from '@gantry/proto';
import { renderKmsg } from '../../../services/node-agent/src/device/sim/render.js';
import { XID_TEXT } from '../../../services/node-agent/src/device/sim/sim-backend.js';
import { GpuInventory } from '../../../services/node-agent/src/collectors/pci.js';
import { XidLogParser } from '../../../services/node-agent/src/collectors/xid/parse.js';
import { xidEventToProto } from '../../../services/node-agent/src/collectors/to-proto.js';
import type { HostSim } from './host.js';


/** Kernel-log reader of one host: renders driver lines and parses them like the agent. */
export class HostKernelLog {
  private parser: XidLogParser;
  private seq = 1000;

  constructor(private readonly host: HostSim, private readonly uptimeAtStart: number) {
    this.parser = this.newParser();
  }

  private newParser(): XidLogParser {
    const inv = new GpuInventory(this.host.gpus.map((g) => ({ index: g.index, uuid: g.uuid, model: g.name, memoryMiB: g.memoryTotalMiB, pciBusId: g.busId })));
    return new XidLogParser({ inventory: inv });
  }

  /** After a repair the agent re-fingerprints: new GPUs, new inventory. */
  refreshInventory(): void {
    this.parser = this.newParser();
  }

  xid(gpu: number, xid: number, atMs: number, simSec: number): XidEvent[] {
    const g = this.host.gpus[gpu]!;
    const bus = g.busId.replace(/^0000/, '').replace(/\.\d$/, '');
    const who = xid === 79 || xid === 48 || xid === 63 || xid === 64 ? '' : `pid=${4242 + gpu}, name=python3, `;
    const line = renderKmsg(3, this.seq++, this.uptimeAtStart + simSec, `NVRM: Xid (PCI:${bus}): ${xid}, ${who}${XID_TEXT[xid] ?? 'simulated Xid'}`);
    return this.parser.push(line).map((e) => xidEventToProto(e, this.host.name, new Date(atMs)));
  }
}

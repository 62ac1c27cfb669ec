// XIDs as the agent sees them: the driver's kernel-log line (rendered with the sim backend's
// kmsg renderer, in the sim backend's wording), parsed by the agent's XidLogParser against
// the host's GPU inventory and turned into a gantry.v1 XidEvent by the agent's to-proto.
import type { XidEvent } from '@gantry/proto';
import { renderKmsg } from '../../../services/node-agent/src/device/sim/render.js';
import { GpuInventory } from '../../../services/node-agent/src/collectors/pci.js';
import { XidLogParser } from '../../../services/node-agent/src/collectors/xid/parse.js';
import { xidEventToProto } from '../../../services/node-agent/src/collectors/to-proto.js';
import type { HostSim } from './host.js';

const XID_TEXT: Record<number, string> = {
  13: 'Graphics SM Warp Exception on (GPC 1, TPC 0, SM 0): Illegal Instruction Encoding',
  31: 'Ch 0000003a, intr 10000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_3 faulted @ 0x17_00592000. Fault is of type FAULT_PDE ACCESS_TYPE_READ',
  43: 'Ch 00000010',
  48: 'An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0.',
  63: 'Row Remapper: New row marked for remapping, reset gpu to activate.',
  64: 'Row Remapper: Failed to remap row, reset gpu to activate.',
  74: 'NVLink: fatal error detected on link 3(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)',
  79: 'GPU has fallen off the bus.',
  94: 'Contained: SM (0x1). RST: No, D-RST: No',
  95: 'Uncontained: FBHUB. RST: Yes, D-RST: No',
  119: 'Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected function 76 (GSP_RM_CONTROL) (0x20803032 0x58c).',
  145: 'Fatal RLW error on link 5 (0x00000004)',
  149: 'Fatal NETIR link event on link 2 (0x00000001)',
};

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

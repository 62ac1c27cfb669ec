// Renders simulated state as the exact raw text the real sources produce, so simulated
// readings go through the production parsers: nvidia-smi CSV (noheader, nounits) for any
// field list, `nvidia-smi pci -gErrCnt`, /proc/self/mountstats, /sys/class/infiniband files,
// `ethtool -S`, and /dev/kmsg records.

export interface GpuState {
  index: number;
  uuid: string;
  busId: string; // 00000000:18:00.0
  name: string;
  memoryTotalMiB: number;
  memoryUsedMiB: number;
  util: number;
  memUtil: number;
  tempC: number;
  memTempC: number;
  powerW: number;
  powerLimitW: number;
  smClock: number;
  memClock: number;
  maxSmClock: number;
  reasonsMask: number;
  throttleUs: Record<string, number>;
  eccVolSbe: number;
  eccVolDbe: number;
  eccAggSbe: number;
  eccAggDbe: number;
  remapCorrectable: number;
  remapUncorrectable: number;
  remapPending: boolean;
  remapFailure: boolean;
  pcieReplays: number;
  pcieRecoveries: number;
  lost: boolean;
}

const fmt2 = (n: number): string => n.toFixed(2);
const int = (n: number): string => String(Math.round(n));
const hex16 = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(16, '0')}`;
const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');

// H100 uses row remapping; nvidia-smi answers [N/A] for page retirement (as in the real capture).
const GPU_FIELD: Record<string, (g: GpuState) => string> = {
  index: (g) => String(g.index),
  uuid: (g) => g.uuid,
  name: (g) => g.name,
  'pci.bus_id': (g) => g.busId.toUpperCase(),
  'utilization.gpu': (g) => int(g.util),
  'utilization.memory': (g) => int(g.memUtil),
  'memory.used': (g) => int(g.memoryUsedMiB),
  'memory.total': (g) => int(g.memoryTotalMiB),
  'memory.free': (g) => int(g.memoryTotalMiB - g.memoryUsedMiB - 480),
  'temperature.gpu': (g) => int(g.tempC),
  'temperature.memory': (g) => int(g.memTempC),
  'power.draw': (g) => fmt2(g.powerW),
  'power.draw.instant': (g) => fmt2(g.powerW),
  'power.limit': (g) => fmt2(g.powerLimitW),
  'enforced.power.limit': (g) => fmt2(g.powerLimitW),
  'clocks.current.sm': (g) => int(g.smClock),
  'clocks.current.graphics': (g) => int(g.smClock),
  'clocks.current.memory': (g) => int(g.memClock),
  'clocks.max.sm': (g) => int(g.maxSmClock),
  pstate: () => 'P0',
  'clocks_event_reasons.active': (g) => hex16(g.reasonsMask),
  'clocks_event_reasons.supported': () => hex16(0x1ff),
  'ecc.errors.corrected.volatile.total': (g) => int(g.eccVolSbe),
  'ecc.errors.uncorrected.volatile.total': (g) => int(g.eccVolDbe),
  'ecc.errors.corrected.aggregate.total': (g) => int(g.eccAggSbe),
  'ecc.errors.uncorrected.aggregate.total': (g) => int(g.eccAggDbe),
  'retired_pages.single_bit_ecc.count': () => '[N/A]',
  'retired_pages.double_bit.count': () => '[N/A]',
  'retired_pages.pending': () => '[N/A]',
  'remapped_rows.correctable': (g) => int(g.remapCorrectable),
  'remapped_rows.uncorrectable': (g) => int(g.remapUncorrectable),
  'remapped_rows.pending': (g) => yesNo(g.remapPending),
  'remapped_rows.failure': (g) => yesNo(g.remapFailure),
  'pcie.link.gen.current': () => '5',
  'pcie.link.width.current': () => '16',
  'driver_version': () => '580.159.04',
};

const IDENTITY = new Set(['index', 'uuid', 'name', 'pci.bus_id']);

/** `--query-gpu=<fields> --format=csv,noheader,nounits` for these GPUs. */
export function renderGpuCsv(gpus: readonly GpuState[], fields: readonly string[]): string {
  return gpus.map((g) => fields.map((f) => {
    if (g.lost && !IDENTITY.has(f)) return '[GPU is lost]';
    const counter = /^clocks_event_reasons_counters\.(.+)$/.exec(f);
    if (counter) return int(g.throttleUs[counter[1]!] ?? 0);
    return GPU_FIELD[f]?.(g) ?? '[N/A]';
  }).join(', ')).join('\n') + '\n';
}

/**
 * `nvidia-smi pci -gErrCnt` as driver 580 prints it on an H200 (the real capture is a test
 * fixture). A lost GPU is left out (nvidia-smi cannot reach it).
 */
export function renderPciErrorCounters(gpus: readonly GpuState[]): string {
  const lines: string[] = [];
  for (const g of gpus.filter((x) => !x.lost)) {
    const counters: [string, number][] = [
      ['REPLAY_COUNTER', g.pcieReplays], ['REPLAY_ROLLOVER_COUNTER', 0], ['L0_TO_RECOVERY_COUNTER', g.pcieRecoveries],
      ['CORRECTABLE_ERRORS', 0], ['NAKS_RECEIVED', 0], ['RECEIVER_ERROR', 0], ['BAD_TLP', 0], ['NAKS_SENT', 0], ['BAD_DLLP', 0],
      ['NON_FATAL_ERROR', 0], ['FATAL_ERROR', 0], ['UNSUPPORTED_REQ', 0], ['LCRC_ERROR', 0],
    ];
    lines.push(`GPU ${g.index}: ${g.name} (UUID: ${g.uuid})`, ...counters.map(([k, v]) => `    ${`${k}:`.padEnd(25)}${v}`), '    LANE_ERROR:              ',
      ...Array.from({ length: 16 }, (_, lane) => `\t lane ${String(lane).padStart(2)}: 0`));
  }
  return `${lines.join('\n')}\n`;
}

export interface NfsOpState {
  ops: number; trans: number; timeouts: number; sent: number; recv: number; queue: number; rtt: number; exec: number; errors: number;
}

export interface MountState {
  device: string;
  mountpoint: string;
  fstype: 'nfs' | 'nfs4';
  ageSeconds: number;
  events: number[];
  bytes: number[]; // normal read/write, direct read/write, server read/write, read/write pages
  xprt: { port: number; bind: number; connect: number; connectTime: number; idle: number; sends: number; recvs: number; badXids: number;
    reqU: number; bklogU: number; maxSlots: number; sendingU: number; pendingU: number };
  ops: Map<string, NfsOpState>;
}

/** NFSv4.2 client op list in kernel order (as in the real mountstats capture). */
export const NFS4_OPS = ['NULL', 'READ', 'WRITE', 'COMMIT', 'OPEN', 'OPEN_CONFIRM', 'OPEN_NOATTR', 'OPEN_DOWNGRADE', 'CLOSE',
  'SETATTR', 'FSINFO', 'RENEW', 'SETCLIENTID', 'SETCLIENTID_CONFIRM', 'LOCK', 'LOCKT', 'LOCKU', 'ACCESS', 'GETATTR', 'LOOKUP',
  'LOOKUP_ROOT', 'REMOVE', 'RENAME', 'LINK', 'SYMLINK', 'CREATE', 'PATHCONF', 'STATFS', 'READLINK', 'READDIR', 'SERVER_CAPS',
  'DELEGRETURN', 'GETACL', 'SETACL', 'FS_LOCATIONS', 'RELEASE_LOCKOWNER', 'SECINFO', 'FSID_PRESENT', 'EXCHANGE_ID',
  'CREATE_SESSION', 'DESTROY_SESSION', 'SEQUENCE', 'GET_LEASE_TIME', 'RECLAIM_COMPLETE', 'LAYOUTGET', 'GETDEVICEINFO',
  'LAYOUTCOMMIT', 'LAYOUTRETURN', 'SECINFO_NO_NAME', 'TEST_STATEID', 'FREE_STATEID', 'GETDEVICELIST', 'BIND_CONN_TO_SESSION',
  'DESTROY_CLIENTID', 'SEEK', 'ALLOCATE', 'DEALLOCATE', 'LAYOUTSTATS', 'CLONE', 'COPY', 'OFFLOAD_CANCEL', 'LOOKUPP',
  'LAYOUTERROR', 'COPY_NOTIFY', 'GETXATTR', 'SETXATTR', 'LISTXATTRS', 'REMOVEXATTR', 'READ_PLUS'];

/** NFSv3 procedures. */
export const NFS3_OPS = ['NULL', 'GETATTR', 'SETATTR', 'LOOKUP', 'ACCESS', 'READLINK', 'READ', 'WRITE', 'CREATE', 'MKDIR',
  'SYMLINK', 'MKNOD', 'REMOVE', 'RMDIR', 'RENAME', 'LINK', 'READDIR', 'READDIRPLUS', 'FSSTAT', 'FSINFO', 'PATHCONF', 'COMMIT'];

const i = (n: number): string => String(Math.max(0, Math.round(n)));

export function renderMountstats(mounts: readonly MountState[]): string {
  const out = [
    'device sysfs mounted on /sys with fstype sysfs',
    'device proc mounted on /proc with fstype proc',
    'device /dev/nvme0n1p2 mounted on / with fstype ext4',
    'device tmpfs mounted on /dev/shm with fstype tmpfs',
  ];
  for (const m of mounts) {
    const v4 = m.fstype === 'nfs4';
    out.push(`device ${m.device} mounted on ${m.mountpoint} with fstype ${m.fstype} statvers=1.1`);
    out.push(`\topts:\trw,vers=${v4 ? '4.2' : '3'},rsize=1048576,wsize=1048576,namlen=255,acregmin=3,acregmax=60,acdirmin=30,acdirmax=60,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.1.5,local_lock=none`);
    out.push(`\tage:\t${i(m.ageSeconds)}`);
    out.push('\tcaps:\tcaps=0xfffbc0b7,wtmult=512,dtsize=1048576,bsize=0,namlen=255');
    if (v4) out.push('\tnfsv4:\tbm0=0xfdffafff,bm1=0xf9be3e,bm2=0x60800,acl=0x0,sessions,pnfs=not configured,lease_time=90,lease_expired=0');
    out.push('\tsec:\tflavor=1,pseudoflavor=1');
    out.push(`\tevents:\t${m.events.map(i).join(' ')} `);
    out.push(`\tbytes:\t${m.bytes.map(i).join(' ')} `);
    out.push(`\tRPC iostats version: 1.1  p/v: 100003/${v4 ? 4 : 3} (nfs)`);
    const x = m.xprt;
    out.push(`\txprt:\ttcp ${[x.port, x.bind, x.connect, x.connectTime, x.idle, x.sends, x.recvs, x.badXids, x.reqU, x.bklogU, x.maxSlots, x.sendingU, x.pendingU].map(i).join(' ')}`);
    out.push('\tper-op statistics');
    for (const [name, o] of m.ops) {
      out.push(`\t${name.padStart(12)}: ${[o.ops, o.trans, o.timeouts, o.sent, o.recv, o.queue, o.rtt, o.exec, o.errors].map(i).join(' ')}`);
    }
    out.push('');
  }
  return out.join('\n');
}

export interface PortState {
  device: string;
  port: number;
  linkLayer: string;
  rateText: string;
  hcaType: string;
  firmwareVersion: string;
  up: boolean;
  counters: Record<string, number>;
  hwCounters: Record<string, number>;
}

export function renderSysfs(ports: readonly PortState[]): Map<string, string> {
  const tree = new Map<string, string>();
  for (const p of ports) {
    tree.set(`${p.device}/hca_type`, `${p.hcaType}\n`);
    tree.set(`${p.device}/fw_ver`, `${p.firmwareVersion}\n`);
    tree.set(`${p.device}/board_id`, 'MT_0000000838\n');
    const base = `${p.device}/ports/${p.port}`;
    tree.set(`${base}/link_layer`, `${p.linkLayer}\n`);
    tree.set(`${base}/rate`, `${p.up ? p.rateText : '10 Gb/sec (4X SDR)'}\n`);
    tree.set(`${base}/state`, p.up ? '4: ACTIVE\n' : '1: DOWN\n');
    tree.set(`${base}/phys_state`, p.up ? '5: LinkUp\n' : '2: Polling\n');
    for (const [k, v] of Object.entries(p.counters)) tree.set(`${base}/counters/${k}`, `${i(v)}\n`);
    for (const [k, v] of Object.entries(p.hwCounters)) tree.set(`${base}/hw_counters/${k}`, `${i(v)}\n`);
  }
  return tree;
}

export function renderEthtool(counters: Record<string, number>): string {
  return ['NIC statistics:', ...Object.entries(counters).map(([k, v]) => `     ${k}: ${i(v)}`)].join('\n') + '\n';
}

/** A /dev/kmsg record: "prio,seq,usec,flags;message". */
export function renderKmsg(priority: number, seq: number, uptimeSeconds: number, message: string): string {
  return `${priority},${seq},${Math.round(uptimeSeconds * 1e6)},-;${message}`;
}

// NVIDIA Xid events from kernel log lines. `parseXidLine` is the pure single-line parser;
// `XidLogParser` wraps it for a stream: it joins dmesg continuation lines (the multi-line
// "has fallen off the bus" report), learns bus→UUID from "NVRM: GPU at PCI:..." lines,
// drops the second report of one bus-drop (an Xid 79 followed by its plain-text twin) and
// maps bus ids to the GPU inventory.
import { normalizePciBusId, GpuInventory } from '../pci.js';
import { lookupXid, type XidSeverityName } from './catalog.js';
import { parseKernelLogLine, type KernelLogOptions, type KernelLogRecord } from './kernel-log.js';

export interface XidMatch {
  xid: number;
  /** Normalised bus id (`00000000:bb:dd.f`); undefined when the line names none. */
  pciBusId?: string;
  pid?: number;
  processName?: string;
  /** The driver's text after the Xid number (and pid/name). */
  message: string;
  /** True when the line had no Xid number: a "fallen off the bus" report, taken as Xid 79. */
  inferred: boolean;
  /** NVLink5 Xids say Fatal / Nonfatal; undefined when the message does not. */
  fatal?: boolean;
}

export interface XidEvent extends XidMatch {
  raw: string;
  time?: Date;
  uptimeSeconds?: number;
  gpuIndex?: number;
  gpuUuid?: string;
  mnemonic: string;
  meaning: string;
  causeClass: string;
  severity: XidSeverityName;
  immediateAction: string;
  investigatoryAction: string;
  orchestratorHint: string;
  /** Stable for the same log record: hash of the line plus its occurrence count. */
  eventId: string;
}

const BUS = String.raw`(?:PCI:)?([0-9a-fA-F]{1,8}:[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}(?:\.[0-7])?)`;
const XID = new RegExp(String.raw`NVRM: Xid \(${BUS}\): (\d{1,5})(?:,\s*(.*))?$`);
const PID = /^pid=(?:'?<unknown>'?|'?(\d+)'?),\s*/;
const NAME = /^name=([^,]*),\s*/;
const FALLEN = /fallen off the bus/i;
const BUS_ANYWHERE = new RegExp(String.raw`\b${BUS}\b`);
const GPU_AT = new RegExp(String.raw`NVRM: GPU at ${BUS}: (GPU-[0-9a-fA-F-]+)`);
const FATALITY = /\b(Nonfatal|Non-fatal|Fatal)\b/;

function fatality(message: string): boolean | undefined {
  const m = FATALITY.exec(message);
  if (!m) return undefined;
  return m[1] === 'Fatal';
}

/** The Xid in one kernel message (prefix already removed), or undefined. Never throws. */
export function parseXidMessage(message: string): XidMatch | undefined {
  const m = XID.exec(message);
  if (m) {
    const xid = Number(m[2]);
    let rest = m[3] ?? '';
    let pid: number | undefined;
    let processName: string | undefined;
    const p = PID.exec(rest);
    if (p) {
      if (p[1] !== undefined) pid = Number(p[1]);
      rest = rest.slice(p[0].length);
      const n = NAME.exec(rest);
      if (n) {
        const name = n[1]!.trim();
        if (name !== '' && name !== '<unknown>') processName = name;
        rest = rest.slice(n[0].length);
      }
    }
    const bus = normalizePciBusId(m[1]);
    const fatal = fatality(rest);
    return {
      xid, inferred: false, message: rest.trim(),
      ...(bus ? { pciBusId: bus } : {}),
      ...(pid !== undefined && Number.isSafeInteger(pid) ? { pid } : {}),
      ...(processName ? { processName } : {}),
      ...(fatal !== undefined ? { fatal } : {}),
    };
  }
  if (FALLEN.test(message) && /NVRM/.test(message)) {
    const b = BUS_ANYWHERE.exec(message);
    const bus = normalizePciBusId(b?.[1]);
    return { xid: 79, inferred: true, message: message.trim(), ...(bus ? { pciBusId: bus } : {}) };
  }
  return undefined;
}

/** One kernel log line in any supported format → the Xid it reports, or undefined. */
export function parseXidLine(line: string, options?: KernelLogOptions): XidMatch | undefined {
  try {
    return parseXidMessage(parseKernelLogLine(line, options).message);
  } catch {
    return undefined;
  }
}

/** FNV-1a 32-bit, hex: a cheap stable id for a log line. */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

export interface XidLogParserOptions extends KernelLogOptions {
  inventory?: GpuInventory;
  /** Suppress an inferred bus-drop within this many log records of a report for the same bus. */
  duplicateWindow?: number;
}

interface Pending {
  record: KernelLogRecord;
  raw: string;
  message: string;
  emitted: boolean;
}

/** Stateful line-at-a-time parser for a kernel log stream. */
export class XidLogParser {
  private inventory: GpuInventory;
  private readonly learnedUuid = new Map<string, string>();
  private readonly recentBusDrops = new Map<string, number>();
  private readonly occurrences = new Map<string, number>();
  private pending: Pending | undefined;
  private lineNo = 0;
  private readonly window: number;

  constructor(private readonly options: XidLogParserOptions = {}) {
    this.inventory = options.inventory ?? new GpuInventory();
    this.window = options.duplicateWindow ?? 16;
  }

  setInventory(inventory: GpuInventory): void {
    this.inventory = inventory;
  }

  /** Feeds one line; returns the events it completes (usually none or one). Never throws. */
  push(line: string): XidEvent[] {
    try {
      return this.pushUnsafe(line);
    } catch {
      return [];
    }
  }

  private pushUnsafe(line: string): XidEvent[] {
    this.lineNo++;
    const record = parseKernelLogLine(line, this.options);
    if (record.format === 'continuation' && this.pending) {
      // dmesg indents the follow-on lines of one printk; judge the joined message.
      const p = this.pending;
      p.message = `${p.message} ${record.message.replace(/^NVRM:\s*/, '')}`;
      p.raw = `${p.raw}\n${line}`;
      if (p.emitted) return [];
      return this.evaluate(p);
    }
    const p: Pending = { record, raw: line, message: record.message, emitted: false };
    this.pending = p;
    const at = GPU_AT.exec(record.message);
    if (at) {
      const bus = normalizePciBusId(at[1]);
      if (bus) this.learnedUuid.set(bus, at[2]!);
    }
    return this.evaluate(p);
  }

  private evaluate(p: Pending): XidEvent[] {
    const match = parseXidMessage(p.message);
    if (!match) return [];
    p.emitted = true;
    const key = match.pciBusId ?? '?';
    if (match.xid === 79) {
      const last = this.recentBusDrops.get(key);
      this.recentBusDrops.set(key, this.lineNo);
      // The driver prints an Xid 79 and then "GPU ... has fallen off the bus" (or the other
      // way round): one event, not two. Only the inferred twin is dropped.
      if (match.inferred && last !== undefined && this.lineNo - last <= this.window) return [];
    }
    return [this.toEvent(match, p)];
  }

  private toEvent(match: XidMatch, p: Pending): XidEvent {
    const gpu = this.inventory.byPciBusId(match.pciBusId);
    const uuid = gpu?.uuid ?? (match.pciBusId ? this.learnedUuid.get(match.pciBusId) : undefined);
    const entry = lookupXid(match.xid);
    // A Nonfatal NVLink5 report does not take the GPU down; do not page anyone for it.
    const severity = match.fatal === false && entry.severity === 'critical' ? 'warning' : entry.severity;
    const hash = fnv1a(p.raw);
    const n = (this.occurrences.get(hash) ?? 0) + 1;
    this.occurrences.set(hash, n);
    if (this.occurrences.size > 4096) this.occurrences.clear();
    return {
      ...match,
      raw: p.raw,
      ...(p.record.time ? { time: p.record.time } : {}),
      ...(p.record.uptimeSeconds !== undefined ? { uptimeSeconds: p.record.uptimeSeconds } : {}),
      ...(gpu ? { gpuIndex: gpu.index } : {}),
      ...(uuid ? { gpuUuid: uuid } : {}),
      mnemonic: entry.mnemonic,
      meaning: entry.meaning,
      causeClass: entry.causeClass,
      severity,
      immediateAction: entry.immediateAction,
      investigatoryAction: entry.investigatoryAction,
      orchestratorHint: entry.orchestratorHint,
      eventId: `${p.record.seq !== undefined ? `k${p.record.seq}-` : ''}${hash}-${n}`,
    };
  }
}

/** Convenience for a whole log text (tests, one-shot dmesg reads). */
export function parseXidLog(text: string, options?: XidLogParserOptions): XidEvent[] {
  const parser = new XidLogParser(options);
  const out: XidEvent[] = [];
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    out.push(...parser.push(line));
  }
  return out;
}

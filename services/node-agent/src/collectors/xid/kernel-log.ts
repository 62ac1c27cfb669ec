// Splits one kernel log line, in any of the shapes the agent may read it in, into its
// prefix (time, host, kmsg priority/sequence) and the kernel message itself. The XID parser
// only ever looks at the message, so every source (raw /dev/kmsg, dmesg, dmesg --ctime,
// syslog, journalctl short / short-iso / no host, dmesg --decode iso) feeds the same code.

export type KernelLogFormat =
  | 'kmsg' | 'dmesg' | 'dmesg-ctime' | 'dmesg-decode-iso' | 'syslog' | 'journalctl-iso'
  | 'journalctl-short' | 'continuation' | 'bare';

export interface KernelLogRecord {
  format: KernelLogFormat;
  message: string;
  /** Wall-clock time when the prefix carries one (ctime, ISO, syslog with a given year). */
  time?: Date;
  /** Seconds since boot (dmesg, kmsg). */
  uptimeSeconds?: number;
  host?: string;
  /** /dev/kmsg syslog priority (facility*8+level) and sequence number. */
  priority?: number;
  seq?: number;
}

const MONTHS: Record<string, number> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};

const KMSG = /^(\d{1,3}),(\d+),(\d+),[^;]*;(.*)$/;
const DMESG = /^\[\s*(\d+\.\d+)\]\s?(.*)$/;
const DMESG_CTIME = /^\[(?:\w{3} )?(\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})\]\s?(.*)$/;
const DECODE_ISO = /^\w+\s*:\s*\w+\s*:\s*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)[,.]?(\d*)([+-]\d\d:?\d\d|Z)?\s(.*)$/;
const SYSLOG = /^(\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?: (\S+))? kernel: (.*)$/;
const JOURNAL_ISO = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)(?: (\S+))? kernel: (.*)$/;
const SHORT = /^kernel: (.*)$/;
const CONTINUATION = /^\s+(\S.*)$/;
const UPTIME_IN_MESSAGE = /^\[\s*(\d+\.\d+)\]\s?(.*)$/;

function isoDate(text: string): Date | undefined {
  // ISO with "+0000" (journalctl short-iso) needs a colon for Date.parse.
  const t = text.replace(',', '.').replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  const ms = Date.parse(t);
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

function monthDay(mon: string, day: string, h: string, m: string, s: string, year: number | undefined): Date | undefined {
  const month = MONTHS[mon];
  if (month === undefined || year === undefined) return undefined;
  const d = new Date(year, month, Number(day), Number(h), Number(m), Number(s));
  return Number.isFinite(d.getTime()) ? d : undefined;
}

export interface KernelLogOptions {
  /** Year for syslog/journalctl "Mon dd hh:mm:ss" stamps, which carry none. */
  year?: number;
}

/** Never throws; a line with no recognised prefix is a bare message. */
export function parseKernelLogLine(raw: string, options: KernelLogOptions = {}): KernelLogRecord {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  let m: RegExpExecArray | null;
  if ((m = KMSG.exec(line))) {
    const usec = Number(m[3]);
    return { format: 'kmsg', message: m[4]!, priority: Number(m[1]), seq: Number(m[2]), uptimeSeconds: usec / 1e6 };
  }
  if ((m = DMESG.exec(line))) {
    return { format: 'dmesg', message: m[2]!, uptimeSeconds: Number(m[1]) };
  }
  if ((m = DMESG_CTIME.exec(line))) {
    const time = monthDay(m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, Number(m[6]));
    return { format: 'dmesg-ctime', message: m[7]!, ...(time ? { time } : {}) };
  }
  if ((m = DECODE_ISO.exec(line))) {
    const time = isoDate(`${m[1]}${m[2] ? `.${m[2].slice(0, 3)}` : ''}${m[3] ?? ''}`);
    return { format: 'dmesg-decode-iso', message: m[4]!, ...(time ? { time } : {}) };
  }
  if ((m = SYSLOG.exec(line))) {
    const time = monthDay(m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, options.year);
    return withUptime({ format: 'syslog', message: m[7]!, ...(m[6] ? { host: m[6] } : {}), ...(time ? { time } : {}) });
  }
  if ((m = JOURNAL_ISO.exec(line))) {
    const time = isoDate(m[1]!);
    return withUptime({ format: 'journalctl-iso', message: m[3]!, ...(m[2] ? { host: m[2] } : {}), ...(time ? { time } : {}) });
  }
  if ((m = SHORT.exec(line))) return withUptime({ format: 'journalctl-short', message: m[1]! });
  if ((m = CONTINUATION.exec(line))) return { format: 'continuation', message: m[1]! };
  return { format: 'bare', message: line };
}

// syslog copies of the kernel ring buffer keep the "[  199.234935]" uptime stamp.
function withUptime(r: KernelLogRecord): KernelLogRecord {
  const m = UPTIME_IN_MESSAGE.exec(r.message);
  return m ? { ...r, message: m[2]!, uptimeSeconds: Number(m[1]) } : r;
}

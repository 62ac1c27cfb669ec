// `gantry report` views: the terminal tables and the self-contained HTML page.
import { describe, expect, it } from 'vitest';
import { FailureClass, OperationsReport } from '@gantry/proto';
import { escapeHtml, reportHtml, scriptJson } from '../src/commands/report-html.js';
import { fmtRate, fmtSeconds, reportView } from '../src/commands/report-view.js';

const report = OperationsReport.fromPartial({
  from: new Date('2026-11-02T00:00:00Z'),
  to: new Date('2026-12-02T00:00:00Z'),
  nodes: 63,
  jobs: 12,
  xidFailures: [{ xid: 79, mnemonic: 'GPU_HAS_FALLEN_OFF_THE_BUS', component: 'hardware', failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, events: 4, nodes: 3 }],
  components: [{ component: 'hardware', events: 4, share: 1 }],
  attemptFailures: [{ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, attempts: 2 }],
  exclusions: { quarantines: 5, blames: 2, total: 7, nodes: 4, topNodes: [{ node: 'node-41</script><b>', count: 3 }, { node: 'node-12', count: 2 }, { node: 'node-3', count: 1 }], top3Share: 6 / 7 },
  detection: { faultXids: 10, suspectedBeforeXid: 2, leadSeconds: [600, 39_000], medianLeadSeconds: 19_800, suspicions: 30, falseAlarms: 25, falseAlarmsPerDay: 0.84 },
  retryChains: { chains: 12, attempts: 73, succeeded: 4, failed: 8, open: 0, successShare: 1 / 3, retries: 61, retryIntervalMedianSeconds: 660, retryIntervalP25Seconds: 600, retryIntervalP75Seconds: 660 },
  checkpoints: { checkpoints: 3, bytes: 3e12, targets: [{ target: 'ckpt', checkpoints: 3, bytes: 3e12, medianBytesPerSecond: 30e9, peakBytesPerSecond: 40e9, capacityBytesPerSecond: 250e9, peakShareOfCapacity: 0.16, linkBytesPerSecond: 400e9, peakShareOfLink: 0.1 }] },
  nfs: { nodes: 48, samples: 100, writeOps: 1000, queueMs: 93_100, rttMs: 5_000, executeMs: 100_000, queueShare: 0.931, coveredFrom: new Date('2026-12-01T23:00:00Z') },
  limits: ['node-7: the event log keeps its last 1000 entries'],
});

describe('gantry report views', () => {
  it('terminal tables carry every analysis', () => {
    const text = reportView(report);
    expect(text).toContain('Operations report 2026-11-02 00:00 .. 2026-12-02 00:00 UTC (30 days): 63 nodes, 12 jobs created');
    expect(text).toMatch(/79\s+GPU_HAS_FALLEN_OFF_THE_BUS\s+hardware\s+node-fault\s+4\s+3/);
    expect(text).toContain('85.7% of exclusions');
    expect(text).toContain('2 (20.0%)');
    expect(text).toContain('0.84 per day');
    expect(text).toContain('12 over 73 attempts: 4 succeeded, 8 failed, 0 open');
    expect(text).toContain('median 11.0m (IQR 10.0m..11.0m, 61 retries)');
    expect(text).toMatch(/ckpt\s+3\s+3\.0 TB\s+30\.0 GB\/s\s+40\.0 GB\/s\s+250\.0 GB\/s\s+16\.0%/);
    expect(text).toContain('93.1% of execute time');
    expect(text).toContain('node-7: the event log keeps its last 1000 entries');
  });

  it('the HTML page embeds chart.js and escapes every value', () => {
    const html = reportHtml(report);
    expect(html).toContain('new Chart(');
    expect(html.length).toBeGreaterThan(150_000); // chart.js itself, embedded
    expect(html).not.toMatch(/<script[^>]*src=/);
    expect(html).not.toContain('node-41</script><b>');
    expect(html).toContain('node-41\\u003c/script\\u003e\\u003cb\\u003e');
    // The page's data parses back to the report.
    const data = /<script type="application\/json" id="report">([^<]*)<\/script>/.exec(html)![1]!;
    expect(OperationsReport.fromJSON(JSON.parse(data))).toEqual(report);
  });

  it('helpers', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    expect(scriptJson({ s: '</script>\u2028' })).toBe('{"s":"\\u003c/script\\u003e\\u2028"}');
    expect(fmtSeconds(42)).toBe('42s');
    expect(fmtSeconds(39_000)).toBe('10.8h');
    expect(fmtRate(250e9)).toBe('250.0 GB/s');
  });
});

// `gantry report --html FILE`: one self-contained page (no network needed to view it): the
// report's tables, and charts drawn by chart.js, whose UMD build is read from node_modules
// and embedded. Every value from the report is escaped: text through escapeHtml, the data
// the charts read as JSON that cannot end its <script> element.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { OperationsReport, failureClassName } from '@gantry/proto';
import { CHECKPOINT_HEAD, checkpointRows, fmtSeconds, pct } from './report-view.js';

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** JSON safe inside <script type="application/json">: no "</script", "<!--", or line separators JS would choke on. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** chart.js's UMD build, from the installed package (its exports map hides dist/, so resolve the package and look beside it). */
export function chartJsSource(): string {
  const main = createRequire(import.meta.url).resolve('chart.js');
  const src = readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
  if (/<\/script/i.test(src)) throw new Error('chart.js build contains "</script": cannot embed it');
  return src;
}

function htmlTable(head: string[], rows: string[][]): string {
  if (rows.length === 0) return '<p class="none">none in the window</p>';
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

/** What the page's script charts, computed here so the script stays small. */
function chartData(r: OperationsReport): unknown {
  return {
    xids: { labels: r.xidFailures.map((x) => `XID ${x.xid}`), values: r.xidFailures.map((x) => x.events) },
    components: { labels: r.components.map((c) => c.component), values: r.components.map((c) => c.events) },
    exclusions: { labels: r.exclusions?.topNodes.map((n) => n.node) ?? [], values: r.exclusions?.topNodes.map((n) => n.count) ?? [], rest: (r.exclusions?.total ?? 0) - (r.exclusions?.topNodes.reduce((s, n) => s + n.count, 0) ?? 0) },
    lead: { labels: (r.detection?.leadSeconds ?? []).map((_, i) => `#${i + 1}`), hours: (r.detection?.leadSeconds ?? []).map((s) => s / 3600) },
    chains: { labels: ['succeeded', 'failed', 'open'], values: [r.retryChains?.succeeded ?? 0, r.retryChains?.failed ?? 0, r.retryChains?.open ?? 0] },
    checkpoints: {
      labels: r.checkpoints?.targets.map((t) => t.target || '(no target)') ?? [],
      peakOfCapacity: r.checkpoints?.targets.map((t) => 100 * t.peakShareOfCapacity) ?? [],
      peakOfLinks: r.checkpoints?.targets.map((t) => 100 * t.peakShareOfLink) ?? [],
    },
    nfs: r.nfs && r.nfs.writeOps > 0 ? { queue: r.nfs.queueMs / r.nfs.writeOps, rest: Math.max(0, (r.nfs.executeMs - r.nfs.queueMs) / r.nfs.writeOps) } : undefined,
  };
}

const PAGE_SCRIPT = `
const data = JSON.parse(document.getElementById('report-data').textContent);
const bar = (id, labels, datasets, opts = {}) => new Chart(document.getElementById(id), { type: 'bar', data: { labels, datasets }, options: { animation: false, plugins: { legend: { display: datasets.length > 1 } }, ...opts } });
const pie = (id, labels, values) => new Chart(document.getElementById(id), { type: 'doughnut', data: { labels, datasets: [{ data: values }] }, options: { animation: false } });
bar('chart-xids', data.xids.labels, [{ label: 'events', data: data.xids.values }]);
pie('chart-components', data.components.labels, data.components.values);
bar('chart-exclusions', [...data.exclusions.labels, 'all other nodes'], [{ label: 'exclusions', data: [...data.exclusions.values, data.exclusions.rest] }]);
bar('chart-lead', data.lead.labels, [{ label: 'hours before the XID', data: data.lead.hours }]);
pie('chart-chains', data.chains.labels, data.chains.values);
bar('chart-checkpoints', data.checkpoints.labels, [{ label: 'peak % of storage capacity', data: data.checkpoints.peakOfCapacity }, { label: 'peak % of link capacity', data: data.checkpoints.peakOfLinks }]);
if (data.nfs) bar('chart-nfs', ['WRITE'], [{ label: 'queue ms', data: [data.nfs.queue] }, { label: 'rest of execute ms', data: [data.nfs.rest] }], { indexAxis: 'y', scales: { x: { stacked: true }, y: { stacked: true } } });
`;

export function reportHtml(r: OperationsReport, chartJs: string = chartJsSource()): string {
  const e = r.exclusions;
  const d = r.detection;
  const c = r.retryChains;
  const n = r.nfs;
  const title = `Gantry operations report ${r.from?.toISOString() ?? ''} .. ${r.to?.toISOString() ?? ''}`;
  const canvas = (id: string) => `<div class="chart"><canvas id="${id}"></canvas></div>`;
  const section = (h: string, body: string) => `<section><h2>${escapeHtml(h)}</h2>\n${body}\n</section>`;
  const body = [
    `<h1>${escapeHtml(title)}</h1>`,
    `<p>${escapeHtml(`${r.nodes} nodes, ${r.jobs} jobs created in the window.`)}</p>`,
    section('Failures by XID and component', canvas('chart-xids') + canvas('chart-components') + htmlTable(['XID', 'mnemonic', 'component', 'recovery', 'events', 'nodes'],
      r.xidFailures.map((x) => [String(x.xid), x.mnemonic, x.component, x.failureClass ? failureClassName(x.failureClass) : '-', String(x.events), String(x.nodes)]))
      + htmlTable(['failed attempts by class', 'attempts'], r.attemptFailures.map((a) => [failureClassName(a.failureClass), String(a.attempts)]))),
    section('Exclusions', `<p>${escapeHtml(`${e?.total ?? 0} exclusions (quarantines ${e?.quarantines ?? 0}, blames ${e?.blames ?? 0}) on ${e?.nodes ?? 0} nodes; the top 3 nodes caused ${pct(e?.top3Share ?? 0)}.`)}</p>` + canvas('chart-exclusions')),
    section('Detection', `<p>${escapeHtml(`${d?.suspectedBeforeXid ?? 0} of ${d?.faultXids ?? 0} node-fault XIDs suspected before the XID, median lead ${fmtSeconds(d?.medianLeadSeconds ?? 0)}; ${d?.falseAlarms ?? 0} false alarms of ${d?.suspicions ?? 0} suspicions (${(d?.falseAlarmsPerDay ?? 0).toFixed(2)} per day).`)}</p>` + canvas('chart-lead')),
    section('Retry chains', `<p>${escapeHtml(`${c?.chains ?? 0} chains over ${c?.attempts ?? 0} attempts, ${pct(c?.successShare ?? 0)} of the ended ones succeeded; median ${fmtSeconds(c?.retryIntervalMedianSeconds ?? 0)} between retries (IQR ${fmtSeconds(c?.retryIntervalP25Seconds ?? 0)}..${fmtSeconds(c?.retryIntervalP75Seconds ?? 0)}).`)}</p>` + canvas('chart-chains')),
    section('Checkpoint throughput', canvas('chart-checkpoints') + htmlTable(CHECKPOINT_HEAD.map((h) => h.toLowerCase()), checkpointRows(r))),
    section('NFS WRITE latency', n && n.samples > 0
      ? `<p>${escapeHtml(`${pct(n.queueShare)} of WRITE execute time was queueing in the client (${Math.round(n.writeOps)} WRITEs on ${n.nodes} nodes since ${n.coveredFrom?.toISOString() ?? '-'}).`)}</p>${canvas('chart-nfs')}`
      : '<p class="none">no NFS WRITE telemetry in the window</p>'),
    r.limits.length > 0 ? section('Limits', `<ul>${r.limits.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>`) : '',
  ].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.chart{max-width:40em;margin:1em 0}.none{color:#777}</style>
</head><body>
${body}
<script type="application/json" id="report-data">${scriptJson(chartData(r))}</script>
<script type="application/json" id="report">${scriptJson(OperationsReport.toJSON(r))}</script>
<script>${chartJs}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}

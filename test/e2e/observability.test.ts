// The alert rules and Grafana dashboards against the metrics the services really export: a real
// stack runs a job, an XID and an ECC storm so that the health and recovery series exist, then
// every /metrics endpoint (scheduler, gateway, checkpoint service, each agent) is scraped and
// every metric and label that deploy/prometheus/rules.yml and deploy/grafana/dashboards/*.json
// name must be among them. Every gantry_* family has HELP text. Where promtool is installed
// (Debian's `prometheus` package), `promtool check rules` checks the rules and every panel query,
// and `promtool test rules` runs deploy/prometheus/rules.test.yml.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobState, NodeState } from '@gantry/proto';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { eventually, type TestStack } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';
import { sim } from '../harness/tools.js';
import { FAST_HEALTH, FAST_RECOVERY } from '../harness/fast-config.js';

// `yaml` is a dependency of the services, not of the test package: borrow the scheduler's.
const { parse: parseYaml } = createRequire(join(REPO_ROOT, 'services/scheduler/package.json'))('yaml') as { parse: (s: string) => unknown };

const setup = stackPerTest();

/** Labels Prometheus adds to every scraped series (target labels), not exported by a service. */
const TARGET_LABELS = new Set(['instance', 'job']);

// ---------------------------------------------------------------------------------------------
// The exposition format: families with HELP/TYPE, and every sample's name and label names.

interface Exported {
  /** sample name (gantry_x_bucket, gantry_x_count ...) -> label names seen on it, per service */
  samples: Map<string, Set<string>>;
  /** family -> HELP text */
  help: Map<string, string>;
  /** family -> TYPE */
  type: Map<string, string>;
  /** sample name -> services exporting it */
  services: Map<string, Set<string>>;
}

function parseExposition(text: string, into: Exported): void {
  for (const line of text.split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [, name, ...rest] = line.slice(2).split(' ');
      into.help.set(name!, rest.join(' ').trim());
    } else if (line.startsWith('# TYPE ')) {
      const [, name, t] = line.slice(2).split(' ');
      into.type.set(name!, t!);
    } else if (line && !line.startsWith('#')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s/.exec(line);
      if (!m) continue;
      const labels = new Set<string>();
      for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) labels.add(l[1]!);
      const set = into.samples.get(m[1]!) ?? new Set<string>();
      for (const l of labels) set.add(l);
      into.samples.set(m[1]!, set);
      const svc = /service="([^"]*)"/.exec(m[3] ?? '')?.[1] ?? '?';
      into.services.set(m[1]!, (into.services.get(m[1]!) ?? new Set()).add(svc));
    }
  }
}

/** Every metrics port a stack's processes logged ("metricsPort":N), by process name. */
function metricsPorts(stack: TestStack): Map<string, number> {
  const names = ['scheduler-0', 'gateway', 'checkpoint', ...stack.agents.map((_, i) => `agent-${stack.nodeName(i)}`)];
  const out = new Map<string, number>();
  for (const n of names) {
    const m = /"metricsPort":(\d+)/.exec(stack.logsOf(n));
    if (m) out.set(n, Number(m[1]));
  }
  return out;
}

async function scrapeAll(stack: TestStack): Promise<Exported> {
  const exported: Exported = { samples: new Map(), help: new Map(), type: new Map(), services: new Map() };
  for (const [name, port] of metricsPorts(stack)) {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    if (!res.ok) throw new Error(`${name}: /metrics answered ${res.status}`);
    parseExposition(await res.text(), exported);
  }
  return exported;
}

// ---------------------------------------------------------------------------------------------
// PromQL: the metric names a query selects (with the label names of their matchers) and the label
// names it groups or matches on. A scanner, not a parser: enough for what rules and panels use.

const AGGREGATORS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2', ...AGGREGATORS, ...GROUPING]);
/** Series Prometheus itself makes for every target. */
const SYNTHETIC: Record<string, string[]> = { up: [], scrape_duration_seconds: [], scrape_samples_scraped: [] };

interface Selector { metric: string; labels: string[] }
interface Query { selectors: Selector[]; grouping: string[] }

/** Grafana's variables, as Prometheus would see them once Grafana substituted them. */
function grafanaToPromql(expr: string): string {
  return expr.replace(/\$\{?__(rate_interval|interval|range)\}?/g, '5m').replace(/\$\{(\w+)(:\w+)?\}|\$(\w+)/g, 'x');
}

function scanPromql(expr: string): Query {
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  let i = 0;
  const s = expr;
  const skipSpace = () => { while (i < s.length && /\s/.test(s[i]!)) i++; };
  const readIdent = () => { const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(s.slice(i)); if (!m) return ''; i += m[0].length; return m[0]; };
  const readString = () => { const q = s[i]!; i++; while (i < s.length && s[i] !== q) i += s[i] === '\\' ? 2 : 1; i++; };
  const readMatchers = (): string[] => {
    const labels: string[] = [];
    i++; // {
    for (;;) {
      skipSpace();
      if (s[i] === '}' || i >= s.length) { i++; return labels; }
      if (s[i] === ',') { i++; continue; }
      if (s[i] === '"' || s[i] === "'") { readString(); continue; } // {"metric.name"} (UTF-8 names): not used here
      const name = readIdent();
      if (!name) throw new Error(`cannot read the matchers of ${JSON.stringify(expr)} at ${i}`);
      labels.push(name);
      skipSpace();
      while (/[=!~]/.test(s[i] ?? '')) i++;
      skipSpace();
      if (s[i] === '"' || s[i] === "'" || s[i] === '`') readString();
      else throw new Error(`a label matcher without a quoted value in ${JSON.stringify(expr)}`);
    }
  };
  const readList = (): string[] => {
    const out: string[] = [];
    i++; // (
    for (;;) {
      skipSpace();
      if (s[i] === ')' || i >= s.length) { i++; return out; }
      if (s[i] === ',') { i++; continue; }
      const name = readIdent();
      if (!name) throw new Error(`cannot read a label list in ${JSON.stringify(expr)} at ${i}`);
      out.push(name);
    }
  };
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (c === '"' || c === "'" || c === '`') { readString(); continue; }
    if (c === '[') { while (i < s.length && s[i] !== ']') i++; i++; continue; }
    if (/[0-9.]/.test(c)) { while (i < s.length && /[0-9a-zA-Z.+_]/.test(s[i]!)) i++; continue; }
    if (c === '{') { selectors.push({ metric: '', labels: readMatchers() }); continue; }
    if (/[a-zA-Z_:]/.test(c)) {
      const ident = readIdent();
      skipSpace();
      if (GROUPING.has(ident)) { if (s[i] === '(') grouping.push(...readList()); continue; }
      if (s[i] === '(' || KEYWORDS.has(ident)) continue; // a function, an aggregation, an operator
      selectors.push({ metric: ident, labels: s[i] === '{' ? readMatchers() : [] });
      continue;
    }
    i++;
  }
  return { selectors, grouping };
}

// ---------------------------------------------------------------------------------------------
// What the rule file and the dashboards ask for.

interface Rule { record?: string; alert?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
interface Use { where: string; expr: string; annotations?: Record<string, string> }

const RULES = join(REPO_ROOT, 'deploy/prometheus/rules.yml');
/** Unit tests of the alerts on synthetic series (`promtool test rules`). */
const RULES_TEST = join(REPO_ROOT, 'deploy/prometheus/rules.test.yml');
const DASHBOARDS = join(REPO_ROOT, 'deploy/grafana/dashboards');

function ruleFile(): Rule[] {
  const doc = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

interface Panel { title?: string; type?: string; targets?: { expr?: string }[]; panels?: Panel[] }
interface Dashboard { uid: string; title: string; panels: Panel[]; templating?: { list: { name: string; query?: string | { query?: string }; definition?: string }[] } }

function dashboardUses(): Use[] {
  const uses: Use[] = [];
  for (const f of readdirSync(DASHBOARDS).filter((x) => x.endsWith('.json')).sort()) {
    const d = JSON.parse(readFileSync(join(DASHBOARDS, f), 'utf8')) as Dashboard;
    const walk = (ps: Panel[]) => {
      for (const p of ps) {
        for (const t of p.targets ?? []) if (t.expr) uses.push({ where: `${f} panel "${p.title}"`, expr: grafanaToPromql(t.expr) });
        walk(p.panels ?? []);
      }
    };
    walk(d.panels);
    for (const v of d.templating?.list ?? []) {
      const q = typeof v.query === 'string' ? v.query : v.query?.query;
      // label_values(metric, label) / query_result(expr)
      const lv = q ? /^label_values\((.*),\s*([a-zA-Z_]\w*)\)$/.exec(q) : null;
      if (lv) uses.push({ where: `${f} variable $${v.name}`, expr: `sum by (${lv[2]}) (${grafanaToPromql(lv[1]!)})` });
      else if (q) uses.push({ where: `${f} variable $${v.name}`, expr: grafanaToPromql(q.replace(/^query_result\((.*)\)$/, '$1')) });
    }
  }
  return uses;
}

/**
 * Every metric and label the rules and dashboards use that no scraped series has, one line each.
 * A recorded series (`record:`) carries the labels its expression groups by (or, without
 * grouping, those of the series it reads).
 */
function unknownReferences(exported: Exported, rules: Rule[], dashboards: Use[]): string[] {
  const problems: string[] = [];
  const known = new Map<string, Set<string>>();
  // A family with no series yet (a counter nothing has incremented) is known by name, without labels.
  for (const [family, type] of exported.type) {
    const names = type === 'histogram' ? [`${family}_bucket`, `${family}_sum`, `${family}_count`] : type === 'summary' ? [family, `${family}_sum`, `${family}_count`] : [family];
    for (const n of names) known.set(n, new Set(['service', ...(n.endsWith('_bucket') ? ['le'] : []), ...TARGET_LABELS]));
  }
  for (const [name, labels] of exported.samples) known.set(name, new Set([...labels, ...TARGET_LABELS]));
  for (const [name, labels] of Object.entries(SYNTHETIC)) known.set(name, new Set([...labels, ...TARGET_LABELS]));
  const labelsOf = (q: Query) => new Set([...q.selectors.flatMap((sel) => [...(known.get(sel.metric) ?? [])]), ...TARGET_LABELS]);
  const check = (where: string, expr: string, annotations?: Record<string, string>): Query => {
    const q = scanPromql(expr);
    for (const sel of q.selectors) {
      if (!sel.metric) { problems.push(`${where}: a selector without a metric name: ${expr}`); continue; }
      const labels = known.get(sel.metric);
      if (!labels) { problems.push(`${where}: metric ${sel.metric} is not exported by any service`); continue; }
      for (const l of sel.labels) if (!labels.has(l)) problems.push(`${where}: ${sel.metric} has no label "${l}" (it has ${[...labels].sort().join(', ')})`);
    }
    const available = labelsOf(q);
    for (const l of q.grouping) if (!available.has(l)) problems.push(`${where}: groups or matches on label "${l}", which none of its series has`);
    for (const m of Object.values(annotations ?? {}).flatMap((t) => [...t.matchAll(/\$labels\.([a-zA-Z_]\w*)/g)])) {
      if (!available.has(m[1]!)) problems.push(`${where}: an annotation names $labels.${m[1]}, which none of its series has`);
    }
    return q;
  };
  // Recording rules first (in order: one may read an earlier one), then alerts, then panels.
  for (const r of rules.filter((x) => x.record)) {
    const q = check(`rules.yml record ${r.record}`, r.expr);
    const labels = q.grouping.length > 0 ? new Set([...q.grouping.filter((l) => l !== 'le'), ...TARGET_LABELS]) : labelsOf(q);
    known.set(r.record!, labels);
  }
  for (const r of rules.filter((x) => x.alert)) check(`rules.yml alert ${r.alert}`, r.expr, r.annotations);
  for (const u of dashboards) check(u.where, u.expr, u.annotations);
  return problems;
}

/** Names and units: counters end in _total, durations and sizes in base units. */
function namingProblems(exported: Exported): string[] {
  const problems: string[] = [];
  for (const [family, type] of exported.type) {
    if (!family.startsWith('gantry_')) continue;
    const help = exported.help.get(family);
    if (!help) problems.push(`${family}: no HELP text`);
    if (type === 'counter' && !family.endsWith('_total')) problems.push(`${family}: a counter whose name does not end in _total`);
    if (/_(ms|milliseconds|microseconds|minutes|hours|kilobytes|megabytes|gigabytes|kb|mb|gb)(_|$)/.test(family)) problems.push(`${family}: not in a base unit (seconds, bytes)`);
  }
  return problems;
}

function promtool(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

describe('observability: alert rules and dashboards against the metrics the services export', () => {
  it('the rule file and the dashboards are well formed, and promtool accepts the rules where it is installed', () => {
    const rules = ruleFile();
    const alerts = rules.filter((r) => r.alert);
    expect(alerts.length).toBeGreaterThan(20);
    for (const a of alerts) {
      expect(a.for, `${a.alert} has a for:`).toMatch(/^\d+[smh]$/);
      expect(a.labels?.severity, `${a.alert} severity`).toMatch(/^(info|warning|critical)$/);
      expect(a.annotations?.summary, `${a.alert} summary`).toBeTruthy();
      expect(a.annotations?.description, `${a.alert} description`).toBeTruthy();
    }
    const names = rules.map((r) => r.alert ?? r.record);
    expect(new Set(names).size, 'rule names are unique').toBe(names.length);
    for (const r of rules.filter((x) => x.record)) expect(r.record).toMatch(/^gantry:[a-z0-9_]+:[a-z0-9_]+$/);
    const files = readdirSync(DASHBOARDS).filter((f) => f.endsWith('.json')).sort();
    expect(files).toEqual(['cluster-overview.json', 'jobs.json', 'node-health.json', 'storage-fabric.json']);
    const uids = files.map((f) => (JSON.parse(readFileSync(join(DASHBOARDS, f), 'utf8')) as Dashboard).uid);
    expect(new Set(uids).size).toBe(files.length);
    // Every panel reads the provisioned datasource.
    const ds = parseYaml(readFileSync(join(REPO_ROOT, 'deploy/grafana/provisioning/datasources/gantry-prometheus.yaml'), 'utf8')) as { datasources: { uid: string }[] };
    for (const f of files) {
      const text = readFileSync(join(DASHBOARDS, f), 'utf8');
      for (const m of text.matchAll(/"uid": "([^"]+)"/g)) if (m[1] !== '-- Grafana --' && !uids.includes(m[1]!)) expect(m[1]).toBe(ds.datasources[0]!.uid);
    }
    // Every panel query and template variable is seen by the reference check.
    expect(dashboardUses().length).toBeGreaterThan(70);
    for (const u of dashboardUses()) expect(scanPromql(u.expr).selectors.length, u.where).toBeGreaterThan(0);
    const tool = promtool();
    if (tool) {
      execFileSync(tool, ['check', 'rules', RULES], { encoding: 'utf8' });
      execFileSync(tool, ['test', 'rules', RULES_TEST], { encoding: 'utf8', cwd: join(REPO_ROOT, 'deploy/prometheus') });
      // The panels' queries too, as recording rules of a scratch file (JSON is YAML).
      const scratch = join(mkdtempSync(join(tmpdir(), 'gantry-panels-')), 'panels.yml');
      writeFileSync(scratch, JSON.stringify({ groups: [{ name: 'panels', rules: dashboardUses().map((u, i) => ({ record: `gantry:panel_query:n${i}`, expr: u.expr })) }] }));
      execFileSync(tool, ['check', 'rules', scratch], { encoding: 'utf8' });
    }
  });

  it('every metric and label the rules and panels use is exported by a service, with HELP text', async () => {
    const { stack, client } = await setup({
      agents: 3,
      env: {
        'node-agent': { TELEMETRY_INTERVAL_MS: '1000' },
        // A storage target, so that the storage admission gauges have series.
        checkpoint: { STORAGE_CONTROL_MS: '500', STORAGE_TARGETS: JSON.stringify([{ name: 'ckpt', mountPrefix: '/mnt/checkpoints', serverExport: '10.0.0.11:/checkpoints', writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9 }]) },
      },
    });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    await client.setHealthConfig(FAST_HEALTH);
    expect([...metricsPorts(stack).keys()].sort()).toEqual(['agent-node-0', 'agent-node-1', 'agent-node-2', 'checkpoint', 'gateway', 'scheduler-0']);

    // A job on a node that an ECC storm quarantines (health transitions and statuses, a recovery
    // and its duration), one that fails without retry (an exhausted chain), a call the gateway
    // refuses, and an XID on another host (whose agent is stopped at the end: a LOST node).
    await eventually('baselines', async () => ((await client.getClusterHealth()).nodesEvaluated === 3 ? true : undefined), 20_000);
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; else sleep 1; fi'] });
    const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const faulty = running.attempts[0]!.placement[0]!.node;
    await new Promise((r) => setTimeout(r, 2_000)); // a few quiet windows for the baselines
    await sim(stack, faulty, 'inject', 'ecc-storm', '--gpu', '2', '--duration', '600', '--param', 'sbeRate=50', '--param', 'remapFailure=false');
    const { job: bad } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command: ['false'] });
    // Refused by the gateway's guard (a map key over its bound) before any handler.
    await expect(client.submitJob({ nodes: 1, gpusPerNode: 8, command: ['true'], env: { ['K'.repeat(300)]: 'v' } })).rejects.toThrow(/INVALID_ARGUMENT/);
    await waitForJob(client, bad!.id, [JobState.JOB_STATE_FAILED], 30_000);
    await eventually(`${faulty} QUARANTINED`, async () => ((await client.getNode(faulty)).state === NodeState.NODE_STATE_QUARANTINED ? true : undefined), 30_000);
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED], 30_000);
    const other = ['node-0', 'node-1', 'node-2'].find((n) => n !== faulty && n !== done.attempts[1]!.placement[0]!.node)!;
    await sim(stack, other, 'inject', 'xid', '79', '--gpu', '3');

    // Series appear at the next collection (agents every second, storage gauges on scrape).
    const want = ['gantry_job_recoveries_total', 'gantry_job_recovery_exhausted_total', 'gantry_job_recovery_duration_seconds_bucket', 'gantry_health_nodes', 'gantry_health_transitions_total', 'gantry_health_node_quarantines_total', 'gantry_xid_events_total', 'gantry_xid_events_received_total', 'gantry_storage_pool_size', 'gantry_gateway_refusals_total'];
    let exported = await scrapeAll(stack);
    for (const deadline = Date.now() + 10_000; want.some((n) => !exported.samples.has(n)) && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 500));
      exported = await scrapeAll(stack);
    }
    expect(want.filter((n) => !exported.samples.has(n)), 'series the scenario should have produced').toEqual([]);
    expect(exported.services.get('gantry_scheduler_leader')).toEqual(new Set(['scheduler']));
    expect(exported.services.get('gantry_nfs_rpc_slot_table_utilization_ratio')).toEqual(new Set(['node-agent']));

    expect(unknownReferences(exported, ruleFile(), dashboardUses())).toEqual([]);
    expect(namingProblems(exported)).toEqual([]);

    // An agent that stops: its node is LOST, counted, and its heartbeat overdue.
    const victim = stack.agents.findIndex((_, i) => stack.nodeName(i) === other);
    await stack.agents[victim]!.kill();
    const scheduler = metricsPorts(stack).get('scheduler-0')!;
    const sample = async (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(await (await fetch(`http://127.0.0.1:${scheduler}/metrics`)).text())?.[1] ?? NaN);
    await eventually('gantry_nodes_lost_total 1', async () => ((await sample('gantry_nodes_lost_total')) === 1 ? true : undefined), 15_000, 250);
    expect(await sample('gantry_nodes_heartbeat_overdue')).toBe(1);
    // Nodes per state and each node's heartbeat age, read from Redis at this scrape.
    const text = await (await fetch(`http://127.0.0.1:${scheduler}/metrics`)).text();
    const labelled = (name: string, label: string) => new Map([...text.matchAll(new RegExp(`^${name}\\{[^}]*${label}="([^"]+)"[^}]*\\} (\\S+)$`, 'gm'))].map((m) => [m[1]!, Number(m[2])]));
    const states = labelled('gantry_nodes', 'state');
    expect([...states.values()].reduce((a, b) => a + b, 0)).toBe(3);
    expect(states.get('LOST')).toBe(1);
    expect(states.get('QUARANTINED')).toBeGreaterThanOrEqual(1); // the ECC storm's node
    expect(states.get('DRAINING')).toBe(0); // every state is exported, 0 when empty
    const ages = labelled('gantry_node_heartbeat_age_seconds', 'node');
    expect([...ages.keys()].sort()).toEqual(['node-0', 'node-1', 'node-2']);
    expect(ages.get(other)).toBeGreaterThanOrEqual(4); // the stack's HEARTBEAT_TIMEOUT_MS
    for (const [node, age] of ages) if (node !== other) expect(age, node).toBeLessThan(4);
  });

  it('the reference check itself: an unknown metric, label or grouping is named', () => {
    const exported: Exported = { samples: new Map([['gantry_x_total', new Set(['service', 'class'])]]), help: new Map(), type: new Map(), services: new Map() };
    const problems = unknownReferences(exported, [
      { record: 'gantry:x:rate5m', expr: 'sum by (class) (rate(gantry_x_total[5m]))' },
      { alert: 'A', expr: 'gantry:x:rate5m{class="a", grade="b"} > 0 and on (instance) gantry_y', annotations: { summary: '{{ $labels.node }}' } },
    ], [{ where: 'panel', expr: grafanaToPromql('sum without (mode) (rate(gantry_x_total{instance=~"$instance"}[$__rate_interval]))') }]);
    expect(problems).toEqual([
      'rules.yml alert A: gantry:x:rate5m has no label "grade" (it has class, instance, job)',
      'rules.yml alert A: metric gantry_y is not exported by any service',
      'rules.yml alert A: an annotation names $labels.node, which none of its series has',
      'panel: groups or matches on label "mode", which none of its series has',
    ]);
    expect(scanPromql('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="}"}[5m] offset 1h))) > bool 3 * b').selectors).toEqual([{ metric: 'a_bucket', labels: ['x'] }, { metric: 'b', labels: [] }]);
  });
});

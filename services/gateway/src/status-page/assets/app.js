// The status page's script: polls /api/snapshot every POLL_MS and redraws the tables. Every value
// from the server is user-influenced (node and job names, failure evidence from a job's output,
// event reasons) and is written as text (textContent, setAttribute), never parsed as HTML.
// The bearer token lives in this tab's sessionStorage only and is sent as the Authorization header.
'use strict';
(() => {
  const POLL_MS = 2000;
  const TOKEN_KEY = 'gantry.status.token';
  const TENANT_KEY = 'gantry.status.tenant';
  const $ = (id) => document.getElementById(id);

  /** An element with text content and attributes; children appended in order. */
  function el(tag, text, attrs, children) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children || []) e.appendChild(c);
    return e;
  }

  const ago = (iso) => {
    if (!iso) return '-';
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
  };
  const gbs = (b) => `${(b / 1e9).toFixed(b >= 10e9 ? 0 : 1)} GB/s`;
  const stateCell = (state) => el('td', state, { class: 'state', 'data-state': state });

  function fill(name, section, row) {
    const body = $(name).tBodies[0];
    const err = $(`${name}-error`);
    const rows = [];
    if ('error' in section) {
      err.textContent = section.error;
      err.hidden = false;
    } else {
      err.hidden = true;
      for (const item of section.items) rows.push(row(item));
      if (rows.length === 0) rows.push(el('tr', null, {}, [el('td', 'none', { class: 'muted', colspan: $(name).tHead.rows[0].cells.length })]));
    }
    body.replaceChildren(...rows);
  }

  function nodeRow(n) {
    const conditions = n.conditions.length ? n.conditions.map((c) => `${c.type}: ${c.reason}${c.message ? ` (${c.message})` : ''}`).join('; ') : '-';
    return el('tr', null, { 'data-node': n.name }, [
      el('td', n.name), stateCell(n.state + (n.cordoned ? ' (cordoned)' : '')), el('td', n.healthScore.toFixed(2)), el('td', conditions),
      el('td', `${n.gpusAllocated}/${n.gpus}`), el('td', ago(n.lastHeartbeat)), el('td', n.reason),
    ]);
  }

  function jobRow(j) {
    const compacted = j.attemptsCompacted ? [el('li', `attempts 1-${j.attemptsCompacted} compacted from the record`)] : [];
    const chain = el('ol', null, { class: 'chain' }, compacted.concat(j.attempts.map((a) => el('li', [
      `attempt ${a.number}`, a.grade && `(${a.grade})`, a.nodes.length ? `on ${a.nodes.join(', ')}` : '',
    ].filter(Boolean).join(' ') + (a.failure ? `: ${a.failureClass}${a.failedNode ? ` on ${a.failedNode}` : ''}: ${a.failure}` : '')))));
    return el('tr', null, { 'data-job': j.id }, [
      el('td', j.id), el('td', j.name), el('td', j.tenant || '-'), stateCell(j.state), el('td', j.attempt),
      el('td', `${j.recoveries}/${j.maxRecoveries}`), el('td', null, {}, [chain]), el('td', j.reason),
    ]);
  }

  const eventRow = (e) => el('tr', null, { 'data-event': e.seq }, [
    el('td', e.time ? new Date(e.time).toLocaleTimeString() : '-'), el('td', e.kind),
    el('td', e.kind === 'job' && e.jobName ? `${e.subject} (${e.jobName})` : e.subject),
    el('td', `${e.from === 'UNSPECIFIED' ? 'new' : e.from} → ${e.to}${e.attempt ? ` (attempt ${e.attempt})` : ''}`), el('td', e.reason),
  ]);

  const storageRow = (t) => el('tr', null, { 'data-target': t.name }, [
    el('td', t.name), el('td', t.mountPrefix), el('td', t.serverExport), el('td', `${gbs(t.writeBytesPerSecond)} / ${gbs(t.readBytesPerSecond)}`),
    el('td', t.writePool), el('td', t.readPool), el('td', t.degraded ? 'DEGRADED (shared storage fault)' : 'ok'),
  ]);

  let timer;
  async function poll() {
    clearTimeout(timer);
    const token = sessionStorage.getItem(TOKEN_KEY) || '';
    const tenant = sessionStorage.getItem(TENANT_KEY) || '';
    const status = $('status');
    try {
      const res = await fetch(`api/snapshot${tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' });
      const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
      if (!res.ok) throw new Error(`${res.status}: ${body.error}`);
      fill('nodes', body.nodes, nodeRow);
      fill('jobs', body.jobs, jobRow);
      fill('events', body.events, eventRow);
      fill('storage', body.storage, storageRow);
      status.textContent = `${body.authEnabled ? `Signed in as ${body.subject}` : 'Auth off'}; updated ${new Date(body.generatedAt).toLocaleTimeString()}`;
      status.className = '';
      document.body.dataset.updated = body.generatedAt;
    } catch (err) {
      status.textContent = `Not updated: ${err.message}`;
      status.className = 'stale';
    }
    timer = setTimeout(poll, POLL_MS);
  }

  $('token').value = sessionStorage.getItem(TOKEN_KEY) || '';
  $('tenant').value = sessionStorage.getItem(TENANT_KEY) || '';
  $('credentials').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    sessionStorage.setItem(TENANT_KEY, $('tenant').value.trim());
    void poll();
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
    void poll();
  });
  void poll();
})();

import { createHash } from 'node:crypto';

/*
 * The dashboard page: one HTML document with its style and script, no build
 * step and nothing fetched from elsewhere. It shows the snapshot it was
 * served with at once, then listens to /events (one snapshot a second) and
 * posts confirmed actions to /api/action. Everything from the queue is put
 * on the page as text, never as HTML.
 *
 * The style and script are inline and allowed by their hashes in the
 * Content-Security-Policy, which allows nothing else inline: no injected
 * script or style would run even if some text did end up as HTML.
 */
const STYLE = String.raw`
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
  header { background: #1d2330; color: #fff; padding: 12px 20px; display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0 16px 0 0; }
  .stat b { font-size: 20px; display: block; }
  .stat { font-size: 12px; color: #c6cbd6; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; padding: 16px 20px; }
  section { background: #fff; border-radius: 6px; padding: 10px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); overflow: auto; max-height: 420px; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 14px; margin: 4px 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eceef2; vertical-align: top; font-size: 13px; }
  th { color: #6b7385; font-weight: 600; }
  code { font-size: 12px; }
  .complete { color: #17803d; } .failed, .locked { color: #c02828; } .retrying, .canceled { color: #b06d00; } .revoked, .expired { color: #6b7385; }
  .silent { color: #c02828; }
  button { font-size: 12px; padding: 1px 8px; cursor: pointer; }
  pre { margin: 4px 0; white-space: pre-wrap; font-size: 12px; color: #7a1f1f; }
  #notice { padding: 6px 20px; min-height: 18px; font-size: 13px; }
  #truncated { padding: 0 20px; font-size: 13px; color: #b06d00; }
  .empty { color: #8b93a5; font-style: italic; }
  header input { font-size: 12px; }
  svg rect.done { fill: #3aa76d; } svg rect.fail { fill: #d64545; }
`;

const BODY = String.raw`
<header>
  <h1 id="title">huey-ts</h1>
  <div class="stat"><b data-testid="pending">–</b>pending</div>
  <div class="stat"><b data-testid="scheduled-count">–</b>scheduled</div>
  <div class="stat"><b data-testid="running-count">–</b>running</div>
  <div class="stat"><b data-testid="worker-count">–</b>workers</div>
  <div class="stat"><b data-testid="dead-count">–</b>dead letters</div>
  <div class="stat"><b data-testid="rate">–</b>done / failed, last minute</div>
  <div class="stat"><span data-testid="pause-control"></span></div>
  <div class="stat"><input id="find" data-testid="find" placeholder="task id" size="38" aria-label="task id"> <button id="find-button" data-testid="find-button">Status</button></div>
</header>
<div id="notice" data-testid="notice"></div>
<div id="truncated" data-testid="truncated"></div>
<main>
  <section class="wide"><h2>Throughput, last hour (per minute: completed, failed)</h2><svg id="chart" width="100%" height="90" preserveAspectRatio="none" viewBox="0 0 600 90"></svg></section>
  <section class="wide" id="task-section" hidden><h2>Task <button id="task-close">close</button></h2><div data-testid="task-status"></div></section>
  <section class="wide"><h2>Queues</h2><table data-testid="queues"></table></section>
  <section><h2>Running</h2><table data-testid="running"></table></section>
  <section><h2>Workers</h2><table data-testid="workers"></table></section>
  <section class="wide"><h2>Recent results and failures</h2><table data-testid="events"></table></section>
  <section><h2>Scheduled</h2><table data-testid="scheduled"></table></section>
  <section><h2>Pending (next first) <small data-testid="by-priority"></small></h2><table data-testid="pending-tasks"></table></section>
  <section><h2>Periodic tasks</h2><table data-testid="periodic"></table></section>
  <section><h2>Revoked</h2><table data-testid="revoked"></table></section>
  <section><h2>Locks held</h2><table data-testid="locks"></table></section>
  <section><h2>Dead letters</h2><table data-testid="dead"></table></section>
  <section class="wide"><h2>Failed tasks (failed for good, from their records)</h2><table data-testid="failed"></table></section>
</main>
`;

const SCRIPT = String.raw`
const token = new URLSearchParams(location.search).get('token');
const withToken = (path) => token ? path + '?token=' + encodeURIComponent(token) : path;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'onclick') node.onclick = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child == null ? '' : String(child)));
  return node;
}

function table(testid, headings, rows, empty) {
  const target = document.querySelector('[data-testid="' + testid + '"]');
  target.replaceChildren();
  if (rows.length === 0) { target.append(el('tr', {}, el('td', { class: 'empty' }, empty))); return; }
  target.append(el('tr', {}, ...headings.map((h) => el('th', {}, h))));
  for (const cells of rows) target.append(el('tr', {}, ...cells.map((c) => el('td', {}, c))));
}

function button(label, action, target, question) {
  return el('button', { 'data-action': action, 'data-target': target, onclick: () => act(action, target, question) }, label);
}

async function act(action, target, question) {
  if (!confirm(question)) return;
  const response = await fetch(withToken('/api/action'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action, target }) });
  const body = await response.json();
  document.getElementById('notice').textContent = body.message || body.error;
}

const time = (ms) => ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '';
const ago = (ms) => ((Date.now() - ms) / 1000).toFixed(1) + ' s';
// Arguments too large for the snapshot arrive as a cut preview string.
const call = (t) => t.name + '(' + (Array.isArray(t.args) ? t.args.map((a) => JSON.stringify(a)).join(', ') : String(t.args)) + ')';
// A waiting item that is not a task message: its reason and raw text, as text.
const corrupt = (t) => el('span', { class: 'failed', 'data-testid': 'corrupt' }, 'corrupt: ' + t.reason + ' ', el('code', {}, t.preview));

function chart(rows) {
  const svg = document.getElementById('chart');
  svg.replaceChildren();
  const now = Date.now();
  const start = now - now % 60000 - 59 * 60000;
  const max = Math.max(1, ...rows.map((r) => r[1] + r[2]));
  for (const [minute, done, failed] of rows) {
    const i = Math.round((minute - start) / 60000);
    if (i < 0 || i > 59) continue;
    const x = i * 10, hDone = 88 * done / max, hFail = 88 * failed / max;
    const a = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    a.setAttribute('class', 'done'); a.setAttribute('x', x); a.setAttribute('width', 8); a.setAttribute('y', 90 - hDone - hFail); a.setAttribute('height', hDone);
    const b = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    b.setAttribute('class', 'fail'); b.setAttribute('x', x); b.setAttribute('width', 8); b.setAttribute('y', 90 - hFail); b.setAttribute('height', hFail);
    svg.append(a, b);
  }
}

function render(s) {
  if (s.error) { document.getElementById('notice').textContent = 'storage error: ' + s.error; return; }
  document.getElementById('title').textContent = 'huey-ts: ' + s.name + ' (' + s.storage + ')';
  const set = (id, v) => document.querySelector('[data-testid="' + id + '"]').textContent = v;
  const live = s.workers.filter((w) => !w.silent);
  const last = s.throughput[s.throughput.length - 1];
  set('pending', s.pending); set('scheduled-count', s.scheduledCount); set('running-count', s.running.length);
  set('worker-count', live.length); set('dead-count', s.deadLetters);
  set('by-priority', s.pendingByPriority && s.pendingByPriority.length ? 'by priority: ' + s.pendingByPriority.map((p) => p[0] + ': ' + p[1]).join(', ') : '');
  set('truncated', s.truncated && s.truncated.length ? 'shortened to keep the page light: ' + s.truncated.join(', ') : '');
  set('rate', last && Date.now() - last[0] < 120000 ? last[1] + ' / ' + last[2] : '0 / 0');
  chart(s.throughput);
  table('running', ['task', 'id', 'worker', 'elapsed'], s.running.map((r) => [r.name, el('code', {}, r.id), r.worker, ago(r.started)]), 'nothing running');
  table('workers', ['worker', 'host', 'slots', 'heartbeat', 'running'], s.workers.map((w) => [w.id, w.host + ' (pid ' + w.pid + ')', w.concurrency, el('span', { class: w.silent ? 'silent' : '' }, ago(w.at) + ' ago' + (w.silent ? ' (silent)' : '')), w.running.length]), 'no worker has reported');
  table('events', ['at', 'task', 'id', 'outcome', 'took', ''], s.events.map((e) => [time(e.at), e.name, el('code', {}, e.id), el('span', { class: e.status, 'data-status': e.status }, e.status, e.error ? el('details', { open: '' }, el('summary', {}, 'error'), el('pre', { 'data-testid': 'stack' }, e.error)) : ''), e.ms.toFixed(1) + ' ms', e.message ? button('Retry', 'retry', e.id, 'Run ' + e.name + ' ' + e.id + ' again?') : '']), 'no runs yet');
  table('failed', ['ended', 'task', 'id', 'queue', 'error', ''], (s.failedTasks || []).map((f) => [time(f.ended), f.name, el('code', {}, f.id), f.queue, el('span', { class: 'failed' }, f.error),
    button('Requeue', 'requeue', f.id, 'Run ' + f.name + ' ' + f.id + ' again?')]), s.records ? 'no failed tasks' : 'task records are off (records: true keeps them, with a failed registry and status by id)');
  if (shownId) showStatus(shownId);
  table('dead', ['at', 'task', 'reason', ''], s.dead.map((d) => [time(d.at), d.name ? d.name + ' ' + d.id : '(unreadable)', d.reason, d.id ? button('Retry', 'retry', d.id, 'Put ' + d.name + ' ' + d.id + ' back on the queue?') : '']), 'no dead letters');
  const control = document.querySelector('[data-testid="pause-control"]');
  control.replaceChildren(s.paused
    ? el('span', {}, el('b', { class: 'failed' }, 'PAUSED'), button('Resume', 'resume', '', 'Let workers start tasks again?'))
    : button('Pause', 'pause', '', 'Stop workers from starting new tasks?'));
  table('queues', ['queue', 'pending', 'scheduled', 'dead letters', 'failed', 'workers', 'complete / failed', ''], (s.queues || []).map((q) => [
    q.name + (q.shards > 1 ? ' (' + q.shards + ' shards)' : ''), q.pending, q.scheduled, q.deadLetters, s.records ? q.failed : '–', q.workers, (q.runs.complete || 0) + ' / ' + (q.runs.failed || 0),
    q.paused ? el('span', {}, el('b', { class: 'failed' }, 'PAUSED '), button('Resume', 'resume-queue', q.name, 'Let workers start tasks of ' + q.name + ' again?'))
      : button('Pause', 'pause-queue', q.name, 'Stop workers from starting tasks of ' + q.name + '?')]), 'no queues');
  table('scheduled', ['eta', 'call', 'id', 'queue', ''], s.scheduled.map((t) => t.corrupt ? ['', corrupt(t), '', t.queue, ''] : [time(t.eta), call(t), el('code', {}, t.id), t.queue, button('Revoke', 'revoke', t.id, 'Revoke ' + t.name + ' ' + t.id + '?')]), 'nothing scheduled');
  table('pending-tasks', ['call', 'id', 'queue', 'priority', ''], s.pendingTasks.map((t) => t.corrupt ? [corrupt(t), '', t.queue, '', ''] : [call(t), el('code', {}, t.id), t.queue, t.priority, button('Revoke', 'revoke', t.id, 'Revoke ' + t.name + ' ' + t.id + '?')]), 'nothing pending');
  table('periodic', ['task', 'schedule', 'next run', ''], s.periodic.map((p) => [p.name, p.schedule, p.nextRun || '', button('Run now', 'run-periodic', p.name, 'Enqueue ' + p.name + ' now?')]), 'no periodic tasks');
  table('revoked', ['what', '', ''], s.revoked.map((r) => [r.kind === 'task' ? 'every call of' : 'task id', el('code', {}, r.target), button('Restore', r.kind === 'task' ? 'restore-task' : 'restore', r.target, 'Restore ' + r.target + '?')]), 'nothing revoked');
  table('locks', ['lock', ''], s.locks.map((name) => [name, button('Flush', 'flush-lock', name, 'Flush lock ' + name + '?')]), 'no lock held');
}

// A task's record, found by id, shown until closed and read again with every snapshot (live progress).
let shownId = null;
async function showStatus(id) {
  shownId = id;
  const section = document.getElementById('task-section');
  const target = document.querySelector('[data-testid="task-status"]');
  section.hidden = false;
  const url = new URL('/api/status', location.href);
  url.search = '';
  url.searchParams.set('id', id);
  if (token) url.searchParams.set('token', token);
  let body;
  try {
    body = await (await fetch(url)).json();
  } catch (error) {
    body = { error: String(error) };
  }
  if (shownId !== id) return; // another search since
  if (body.error) { target.replaceChildren(el('p', { class: 'empty', 'data-testid': 'task-missing' }, body.error)); return; }
  const t = body.status;
  const rows = [
    ['id', el('code', {}, t.id)], ['task', t.name], ['queue', t.queue],
    ['state', el('span', { class: t.state, 'data-testid': 'task-state' }, t.state)],
    ['created', t.created || ''], ['enqueued', t.enqueued || ''], ['due', t.eta || ''], ['started', t.started || ''], ['ended', t.ended || ''],
    ['worker', t.worker || ''], ['retries left', t.retries == null ? '' : t.retries],
    ['error', t.error ? el('pre', {}, t.error.name + ': ' + t.error.message) : ''],
    ['progress', t.progress === undefined ? '' : el('code', { 'data-testid': 'task-progress' }, JSON.stringify(t.progress))],
    ['log', t.log.length ? el('pre', { 'data-testid': 'task-log' }, t.log.join('\n')) : ''],
  ];
  const table = el('table', {});
  for (const [label, value] of rows) table.append(el('tr', {}, el('th', {}, label), el('td', {}, value)));
  target.replaceChildren(table, t.state === 'failed' ? button('Requeue', 'requeue', t.id, 'Run ' + t.name + ' ' + t.id + ' again?') : '');
}
const find = document.getElementById('find');
document.getElementById('find-button').onclick = () => { if (find.value.trim()) showStatus(find.value.trim()); };
find.onkeydown = (event) => { if (event.key === 'Enter' && find.value.trim()) showStatus(find.value.trim()); };
document.getElementById('task-close').onclick = () => { shownId = null; document.getElementById('task-section').hidden = true; };

// The snapshot the page came with, shown before the first event.
const initial = document.getElementById('initial-snapshot').textContent;
if (initial) render(JSON.parse(initial));

const events = new EventSource(withToken('/events'));
events.onmessage = (event) => render(JSON.parse(event.data));
events.onerror = () => {
  // Closed for good when the server refused the stream (too many open pages): it does not retry then.
  document.getElementById('notice').textContent = events.readyState === EventSource.CLOSED
    ? 'no live updates (the dashboard has too many open pages, or stopped): reload to try again'
    : 'reconnecting to the dashboard...';
};
events.onopen = () => { document.getElementById('notice').textContent = ''; };
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Sent with every response of the dashboard: no other site may frame it, nothing runs but the page's own script. */
export const SECURITY_HEADERS = {
  'content-security-policy': [
    "default-src 'self'",
    `script-src ${hash(SCRIPT)}`,
    `style-src ${hash(STYLE)}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // The address may carry the token: never hand it to another site.
  'referrer-policy': 'no-referrer',
};

/**
 * The page with `snapshotJson` inside it, so it is not blank until the
 * first event. The JSON sits in a data block (never run, so outside the
 * script policy); every "<" is escaped, so no text in it can close the block.
 */
export function pageHtml(snapshotJson: string): string {
  const data = snapshotJson.replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>huey-ts dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${STYLE}</style>
</head>
<body>${BODY}<script type="application/json" id="initial-snapshot">${data}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

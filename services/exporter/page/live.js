// The live page: polls /api/summary every 2 s and redraws. Plain DOM and SVG, no libraries, so
// the exporter serves it without a build step or any external asset. Text goes in through
// textContent only: label values come from Kafka records.
'use strict';

const REFRESH_MS = 2000;
const SVG = 'http://www.w3.org/2000/svg';
const KNOWN_OUTCOMES = ['completed', 'failed', 'timed_out', 'aborted', 'unfinished'];

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function outcomeColor(outcome) {
  return `var(--${KNOWN_OUTCOMES.includes(outcome) ? outcome : 'other'})`;
}

/** Seconds as a short human duration: 850 µs, 12.5 ms, 1.20 s. */
function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds === 0) return '0';
  if (seconds < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  // Unary + drops trailing zeros: 50 ms, not 50.0 ms.
  if (seconds < 1) {
    const ms = seconds * 1000;
    return `${+(ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0))} ms`;
  }
  return `${+seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
}

/** A bucket bound as a tick label: 1ms, 2.5s, +Inf. */
function bound(seconds) {
  if (seconds === null) return '+Inf';
  if (seconds < 1) return `${+(seconds * 1000).toFixed(1)}ms`;
  return `${+seconds.toFixed(1)}s`;
}

const count = new Intl.NumberFormat();

function renderStatus(s) {
  const pill = $('ready');
  pill.textContent = s.ready ? 'ready' : 'not ready';
  pill.className = `pill ${s.ready ? 'pill-ok' : 'pill-bad'}`;
  $('updated').textContent = `updated ${new Date(s.atMs).toLocaleTimeString()}`;
  const reasons = $('reasons');
  reasons.hidden = s.ready || s.readiness.length === 0;
  reasons.textContent = s.readiness.join(' · ');
}

function renderTiles(s) {
  const last = s.quantiles[s.quantiles.length - 1];
  for (const q of ['p50', 'p90', 'p99']) $(q).textContent = duration(last ? last[q] : null);
  const completed = s.latency.find((l) => l.outcome === 'completed');
  $('budget-label').textContent = duration(s.budgetSeconds);
  $('within').textContent =
    completed && completed.withinBudget !== null
      ? `${(completed.withinBudget * 100).toFixed(1)} %`
      : '—';
  $('prepares').textContent = count.format(s.outcomes.reduce((n, o) => n + o.count, 0));
  $('consumed').textContent = count.format(s.recordsConsumed);
  $('invalid').textContent = count.format(s.recordsInvalid);
  $('window').textContent = String(s.quantileWindowSeconds);
  $('window2').textContent = String(s.quantileWindowSeconds);
}

function renderDistributions(s) {
  const root = $('distributions');
  root.replaceChildren();
  const bounds = [...s.bounds, null];
  const budgetIndex = s.bounds.indexOf(s.budgetSeconds);
  for (const d of s.latency) {
    const box = el('div', 'dist');
    const head = el('div', 'dist-head');
    const name = el('span', 'name');
    const dot = el('span', 'dot');
    dot.style.background = outcomeColor(d.outcome);
    name.append(dot, d.outcome);
    const mean = d.count > 0 ? d.sum / d.count : null;
    head.append(
      name,
      el('span', 'muted', `${count.format(d.count)} observed · mean ${duration(mean)}`),
    );
    const bars = el('div', 'bars');
    const max = Math.max(1, ...d.perBucket);
    d.perBucket.forEach((n, i) => {
      const bar = el('div', n === 0 ? 'bar empty' : 'bar');
      // 85 %: the tallest bar leaves room above it for its count and the budget label.
      bar.style.height = `${(n / max) * 85}%`;
      if (n > 0) {
        bar.style.background = outcomeColor(d.outcome);
        bar.append(el('span', 'n', count.format(n)));
      }
      const lower = i === 0 ? 0 : bounds[i - 1];
      bar.title = `${bound(lower)} – ${bound(bounds[i])}: ${count.format(n)}`;
      bars.append(bar);
    });
    if (budgetIndex >= 0) {
      const line = el('div', 'budget');
      line.style.left = `${((budgetIndex + 1) / bounds.length) * 100}%`;
      line.title = `budget ${duration(s.budgetSeconds)}`;
      line.append(el('span', 'budget-label', `${duration(s.budgetSeconds)} budget`));
      bars.append(line);
    }
    const ticks = el('div', 'ticks');
    bounds.forEach((b, i) =>
      ticks.append(el('span', '', i % 2 === 0 || b === null ? bound(b) : '')),
    );
    box.append(head, bars, ticks);
    root.append(box);
  }
}

function renderQuantiles(s) {
  const chart = $('quantiles');
  chart.replaceChildren();
  const W = 640;
  const H = 240;
  const pad = { left: 58, right: 12, top: 12, bottom: 26 };
  const points = s.quantiles;
  const values = points.flatMap((p) => [p.p50, p.p90, p.p99]).filter((v) => v !== null);
  if (points.length === 0 || values.length === 0) {
    chart.append(
      svg(
        'text',
        { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' },
        'No completed prepares yet',
      ),
    );
    return;
  }
  const t0 = points[0].atMs;
  const t1 = Math.max(points[points.length - 1].atMs, t0 + 1);
  const yMax = niceCeiling(Math.max(...values));
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (W - pad.left - pad.right);
  const y = (v) => H - pad.bottom - (v / yMax) * (H - pad.top - pad.bottom);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    chart.append(
      svg('line', { x1: pad.left, x2: W - pad.right, y1: y(v), y2: y(v), class: 'grid' }),
    );
    chart.append(
      svg(
        'text',
        { x: pad.left - 8, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' },
        duration(v),
      ),
    );
  }
  for (const [t, anchor] of [
    [t0, 'start'],
    [(t0 + t1) / 2, 'middle'],
    [t1, 'end'],
  ]) {
    chart.append(
      svg(
        'text',
        { x: x(t), y: H - 6, 'text-anchor': anchor, class: 'axis' },
        new Date(t).toLocaleTimeString(),
      ),
    );
  }
  for (const [key, cls] of [
    ['p50', 'l50'],
    ['p90', 'l90'],
    ['p99', 'l99'],
  ]) {
    // A window without completions is a gap, not a zero.
    let d = '';
    let pen = 'M';
    for (const p of points) {
      if (p[key] === null) {
        pen = 'M';
        continue;
      }
      d += `${pen}${x(p.atMs).toFixed(1)},${y(p[key]).toFixed(1)} `;
      pen = 'L';
    }
    if (d !== '') chart.append(svg('path', { d, class: `line ${cls}` }));
    const last = [...points].reverse().find((p) => p[key] !== null);
    if (last)
      chart.append(
        svg('circle', { cx: x(last.atMs), cy: y(last[key]), r: 3, class: `dot-${cls}` }),
      );
  }
}

/** 1, 2 or 5 times a power of ten, at or above v. */
function niceCeiling(v) {
  if (v <= 0) return 0.001;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function renderOutcomes(s) {
  const body = $('outcomes').tBodies[0];
  body.replaceChildren();
  const total = s.outcomes.reduce((n, o) => n + o.count, 0);
  for (const o of s.outcomes) {
    const row = el('tr');
    const name = el('td', 'name');
    const dot = el('span', 'dot');
    dot.style.background = outcomeColor(o.outcome);
    name.append(dot, o.outcome.replace('_', ' '));
    const barCell = el('td');
    const track = el('div', 'track');
    const fill = el('div', 'fill');
    fill.style.width = `${total > 0 ? (o.count / total) * 100 : 0}%`;
    fill.style.background = outcomeColor(o.outcome);
    track.append(fill);
    barCell.append(track);
    row.dataset.outcome = o.outcome;
    row.append(
      name,
      barCell,
      el('td', 'count', count.format(o.count)),
      el('td', 'pct', total > 0 ? `${((o.count / total) * 100).toFixed(1)} %` : '—'),
    );
    body.append(row);
  }
}

// The slowest-prepares table's order: a click on a heading sorts by it, a second click reverses.
const slowestSort = { key: 'seconds', desc: true };
let lastSummary = null;

function compareBy(key, desc) {
  return (a, b) => {
    const x = a[key];
    const y = b[key];
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(y);
    return desc ? -c : c;
  };
}

function renderSlowest(s) {
  $('slowest-window').textContent = String(Math.round(s.slowestWindowSeconds / 60));
  $('budget-label2').textContent = duration(s.budgetSeconds);
  const table = $('slowest');
  for (const th of table.tHead.rows[0].cells) {
    th.setAttribute(
      'aria-sort',
      th.dataset.sort === slowestSort.key
        ? slowestSort.desc
          ? 'descending'
          : 'ascending'
        : 'none',
    );
  }
  const body = table.tBodies[0];
  body.replaceChildren();
  const rows = [...s.slowest].sort(compareBy(slowestSort.key, slowestSort.desc));
  for (const p of rows) {
    const over = p.seconds > s.budgetSeconds;
    const row = el('tr', over ? 'over' : '');
    row.dataset.vm = p.vm;
    const outcome = el('td', 'name');
    const dot = el('span', 'dot');
    dot.style.background = outcomeColor(p.outcome);
    outcome.append(dot, p.outcome.replace('_', ' '));
    const seconds = el('td', 'num seconds', duration(p.seconds));
    seconds.title = `${p.seconds} s`;
    if (over) seconds.append(el('span', 'badge', 'over budget'));
    const when = el('td', 'when', new Date(p.closedAtMs).toLocaleTimeString());
    when.title = new Date(p.closedAtMs).toISOString();
    row.append(
      el('td', '', p.host),
      el('td', '', p.vm),
      el('td', 'device', p.device),
      el('td', '', p.target),
      outcome,
      seconds,
      when,
    );
    body.append(row);
  }
  $('slowest-empty').hidden = rows.length > 0;
}

function renderHosts(s) {
  const body = $('hosts').tBodies[0];
  body.replaceChildren();
  for (const h of s.hosts) {
    const row = el('tr', h.overBudget > 0 ? 'over' : '');
    row.dataset.host = h.host;
    row.append(
      el('td', 'name', h.host),
      el('td', 'num prepares', count.format(h.prepares)),
      el('td', 'num p99', duration(h.p99)),
      el('td', 'num over', count.format(h.overBudget)),
    );
    body.append(row);
  }
  $('hosts-empty').hidden = s.hosts.length > 0;
}

for (const th of document.querySelectorAll('#slowest th[data-sort]')) {
  th.querySelector('button').addEventListener('click', () => {
    const key = th.dataset.sort;
    slowestSort.desc = slowestSort.key === key ? !slowestSort.desc : key === 'seconds';
    slowestSort.key = key;
    if (lastSummary) renderSlowest(lastSummary);
  });
}

async function refresh() {
  try {
    const response = await fetch('/api/summary', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const s = await response.json();
    renderStatus(s);
    renderTiles(s);
    renderDistributions(s);
    renderQuantiles(s);
    renderOutcomes(s);
    renderSlowest(s);
    renderHosts(s);
    lastSummary = s;
  } catch (error) {
    const pill = $('ready');
    pill.textContent = 'exporter unreachable';
    pill.className = 'pill pill-bad';
    $('updated').textContent = String(error.message || error);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();

// The Proxima dashboard. Everything comes from /api/dashboard (polled every 2 s for what changed
// since the last answer) and /health (services, every 30 s). No reload; a failed poll keeps the
// last picture and says so.
'use strict';

const WINDOW_MS = 15 * 60 * 1000;
const POLL_MS = 2000;
const $ = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

const state = { since: 0, eventsAfter: 0, times: [], series: {}, charts: {}, health: null, lastOk: 0 };

// ---- numbers ---------------------------------------------------------------------------------

function si(v, unit = '') {
  if (v == null || !isFinite(v)) return '–';
  const a = Math.abs(v);
  const [d, s] = a >= 1e9 ? [1e9, 'G'] : a >= 1e6 ? [1e6, 'M'] : a >= 1e3 ? [1e3, 'k'] : [1, ''];
  const x = v / d;
  return (Math.abs(x) >= 100 || x === Math.round(x) ? x.toFixed(0) : x.toFixed(1)) + ' ' + s + unit;
}
const bytes = v => si(v, 'B');
const pct = v => (v == null ? '–' : (100 * v).toFixed(0) + ' %');
const last = arr => { for (let i = arr.length - 1; i >= 0; i--) if (arr[i] != null) return arr[i]; return null; };

// ---- charts ----------------------------------------------------------------------------------

const PALETTE = ['#4a78c2', '#1a8a3a', '#c98a00', '#c62828', '#7b4fb0', '#2a9d9d', '#7a7f85'];

// Each chart: which series (by key or key prefix), axis of each, and how to show numbers.
const CHARTS = [
  { id: 'dns', prefix: 'dns.', label: k => k.slice(4), fmt: v => si(v, 'q/s') },
  // Only the rcodes that occurred in the window (NOERROR when none did).
  { id: 'dns_rcode', prefix: 'dns_rcode.', active: true, label: k => k.slice(10), fmt: v => si(v, '/s') },
  { id: 'http', keys: ['http_requests', 'http_bytes'], label: k => ({ http_requests: 'requests/s', http_bytes: 'bytes/s' }[k]),
    scale: k => (k === 'http_bytes' ? 'b' : 'y'), fmt: (v, k) => (k === 'http_bytes' ? bytes(v) + '/s' : si(v, 'req/s')) },
  { id: 'integrity', keys: ['http_hit_ratio', 'refused_zones', 'corrupt_blobs'],
    label: k => ({ http_hit_ratio: 'hit ratio', refused_zones: 'refused zones/s', corrupt_blobs: 'corrupt blobs/s' }[k]),
    scale: k => (k === 'http_hit_ratio' ? 'r' : 'y'), fmt: (v, k) => (k === 'http_hit_ratio' ? pct(v) : si(v, '/s')) },
  { id: 'cache', keys: ['cache_ops', 'cache_keys', 'cache_memory'], label: k => ({ cache_ops: 'ops/s', cache_keys: 'keys', cache_memory: 'memory' }[k]),
    scale: k => (k === 'cache_ops' ? 'y' : k === 'cache_keys' ? 'k' : 'm'), hidden: k => k === 'cache_memory',
    fmt: (v, k) => (k === 'cache_memory' ? bytes(v) : k === 'cache_keys' ? si(v) : si(v, 'ops/s')) },
  { id: 'transfer', keys: ['transfer_in', 'transfer_out'], label: k => ({ transfer_in: 'in', transfer_out: 'out' }[k]), fmt: v => bytes(v) + '/s' },
];

function chartKeys(c) {
  if (c.keys) return c.keys.filter(k => k in state.series);
  const keys = Object.keys(state.series).filter(k => k.startsWith(c.prefix)).sort();
  if (!c.active) return keys;
  const seen = keys.filter(k => state.series[k].some(v => v > 0));
  return seen.length ? seen : keys.filter(k => k.endsWith('.NOERROR'));
}

function buildChart(c, keys) {
  const el = $('chart-' + c.id);
  el.innerHTML = '';
  const scales = { x: { time: true } };
  const axes = [{ stroke: '#66707a', grid: { stroke: '#f0f2f4' } }];
  const used = [];
  const series = [{}];
  keys.forEach((k, i) => {
    const scale = c.scale ? c.scale(k) : 'y';
    if (!used.includes(scale) && !(c.hidden && c.hidden(k))) {
      used.push(scale);
      axes.push({ scale, side: used.length === 1 ? 3 : 1, stroke: '#66707a', grid: { show: used.length === 1, stroke: '#f0f2f4' },
        size: 56, values: (u, vals) => vals.map(v => (scale === 'r' ? pct(v) : scale === 'm' || c.id === 'transfer' || scale === 'b' ? bytes(v) : si(v))) });
    }
    scales[scale] = scale === 'r' ? { range: [0, 1] } : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] };
    series.push({ label: c.label(k), scale, stroke: PALETTE[i % PALETTE.length], width: 1.5, show: !(c.hidden && c.hidden(k)),
      value: (u, v) => c.fmt(v, k), spanGaps: false });
  });
  const opts = { width: Math.max(200, el.clientWidth), height: 170, scales, axes, series,
    legend: { live: true }, cursor: { drag: { x: false, y: false } } };
  return new uPlot(opts, chartData(keys), el);
}

function chartData(keys) {
  return [state.times.map(t => t / 1000), ...keys.map(k => state.series[k])];
}

function drawCharts() {
  for (const c of CHARTS) {
    const keys = chartKeys(c);
    const have = state.charts[c.id];
    if (!have || have.keys.join() !== keys.join()) {
      if (have) have.plot.destroy();
      state.charts[c.id] = { keys, plot: buildChart(c, keys) };
    } else {
      have.plot.setData(chartData(keys));
    }
    // The latest value of every series, in words, next to the chart's title.
    const now = document.querySelector(`.now[data-group="${c.id}"]`);
    // data-value: the latest point; data-peak: the highest in the window (what the chart's
    // line reaches), for tools that read the page.
    now.innerHTML = keys.map(k => {
      const peak = Math.max(0, ...state.series[k].filter(v => v != null));
      return `<span data-series="${esc(k)}" data-value="${last(state.series[k]) ?? ''}" data-peak="${peak}">${esc(c.label(k))} <b>${esc(c.fmt(last(state.series[k]), k))}</b></span>`;
    }).join(' · ');
  }
}

window.addEventListener('resize', () => {
  for (const c of Object.values(state.charts)) {
    const el = c.plot.root.parentElement;
    c.plot.setSize({ width: Math.max(200, el.clientWidth), height: 170 });
  }
});

function mergePoints(p) {
  const n = state.times.length;
  for (const k of Object.keys(p.series)) {
    if (!(k in state.series)) state.series[k] = new Array(n).fill(null);
  }
  state.times.push(...p.times);
  for (const k of Object.keys(state.series)) {
    const add = p.series[k] || new Array(p.times.length).fill(null);
    state.series[k].push(...add);
  }
  // Keep the window (the node keeps the same 15 minutes).
  const cut = state.times.findIndex(t => t >= state.times[state.times.length - 1] - WINDOW_MS);
  if (cut > 0) {
    state.times.splice(0, cut);
    for (const k of Object.keys(state.series)) state.series[k].splice(0, cut);
  }
  if (p.times.length) state.since = p.times[p.times.length - 1];
}

// ---- the map ---------------------------------------------------------------------------------

// Projects the members' coordinate vectors on their two main axes (PCA by power iteration), so
// distances on the map approximate predicted RTTs whatever the coordinates' dimension.
function project(vecs) {
  const n = vecs.length, d = vecs[0].length;
  const mean = new Array(d).fill(0);
  vecs.forEach(v => v.forEach((x, i) => (mean[i] += x / n)));
  const c = vecs.map(v => v.map((x, i) => x - mean[i]));
  const cov = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => c.reduce((s, v) => s + v[i] * v[j], 0)));
  const axes = [];
  for (let a = 0; a < Math.min(2, d); a++) {
    let v = Array.from({ length: d }, (_, i) => (i === a ? 1 : 0.1));
    for (let it = 0; it < 60; it++) {
      let w = cov.map(row => row.reduce((s, x, j) => s + x * v[j], 0));
      axes.forEach(u => { const dot = w.reduce((s, x, i) => s + x * u[i], 0); w = w.map((x, i) => x - dot * u[i]); });
      const norm = Math.hypot(...w);
      if (norm < 1e-9) break;
      v = w.map(x => x / norm);
    }
    axes.push(v);
  }
  while (axes.length < 2) axes.push(new Array(d).fill(0));
  return c.map(v => axes.map(u => v.reduce((s, x, i) => s + x * u[i], 0)));
}

function drawMap(members) {
  const svg = $('map');
  const placed = members.map(m => ({ m, v: m.coordinate && m.coordinate.global && m.coordinate.global.vec }));
  const withVec = placed.filter(p => Array.isArray(p.v) && p.v.length > 0);
  let pts;
  if (withVec.length === placed.length && placed.length > 0) {
    const xy = project(withVec.map(p => p.v));
    pts = withVec.map((p, i) => ({ m: p.m, x: xy[i][0], y: xy[i][1] }));
  } else {
    pts = placed.map((p, i) => ({ m: p.m, x: Math.cos((2 * Math.PI * i) / placed.length), y: Math.sin((2 * Math.PI * i) / placed.length) }));
  }
  const xs = pts.map(p => p.x), ys = pts.map(p => p.y);
  const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
  // Coordinates that have not spread yet (a new cluster) would all sit on one spot.
  if (!(span > 0.5)) pts.forEach((p, i) => { p.x += 2 * Math.cos((2 * Math.PI * i) / pts.length); p.y += 2 * Math.sin((2 * Math.PI * i) / pts.length); });
  const [x0, x1] = [Math.min(...pts.map(p => p.x)), Math.max(...pts.map(p => p.x))];
  const [y0, y1] = [Math.min(...pts.map(p => p.y)), Math.max(...pts.map(p => p.y))];
  // Room on the right for the labels.
  const s = Math.min(260 / ((x1 - x0) || 1), 230 / ((y1 - y0) || 1));
  const sx = x => 170 + (x - (x0 + x1) / 2) * s, sy = y => 150 - (y - (y0 + y1) / 2) * s;
  const scaleMs = span > 0.5 ? Math.pow(10, Math.floor(Math.log10(80 / s))) : null;
  svg.innerHTML = pts.map((p, i) => {
    const m = p.m, cx = sx(p.x).toFixed(1), cy = sy(p.y).toFixed(1);
    return (m.self ? `<circle class="self-ring" cx="${cx}" cy="${cy}" r="10"/>` : '') +
      `<circle class="member ${esc(m.state)}" data-i="${i}" data-peer="${esc(m.peer_id)}" data-state="${esc(m.state)}" cx="${cx}" cy="${cy}" r="6.5"/>` +
      `<text x="${(+cx + 12).toFixed(1)}" y="${(+cy + 3).toFixed(1)}">…${esc(m.peer_id.slice(-6))}${m.self ? ' (this node)' : ''}</text>`;
  }).join('') + (scaleMs ? `<line x1="10" y1="290" x2="${10 + scaleMs * s}" y2="290" stroke="#66707a"/><text x="10" y="284">${scaleMs} ms</text>` : '');
  const tip = $('map-tip');
  svg.querySelectorAll('circle.member').forEach(c => {
    const m = pts[+c.dataset.i].m;
    c.addEventListener('mouseenter', () => {
      const addr = (m.addrs && (m.addrs.http || m.addrs.quic)) || m.quic;
      tip.innerHTML = `<b>…${esc(m.peer_id.slice(-12))}</b>${m.self ? ' (this node)' : ''}<br>${esc(m.state)} · ${esc(addr || '')}<br>` +
        `RTT measured ${m.rtt_ms == null ? '–' : m.rtt_ms.toFixed(2) + ' ms'}, predicted ${m.coord_distance_ms == null ? '–' : m.coord_distance_ms.toFixed(2) + ' ms'}`;
      const box = svg.getBoundingClientRect(), card = $('map-card').getBoundingClientRect(), cb = c.getBoundingClientRect();
      tip.style.left = Math.min(cb.left - card.left + 12, box.width - 200) + 'px';
      tip.style.top = (cb.top - card.top + 14) + 'px';
      tip.hidden = false;
    });
    c.addEventListener('mouseleave', () => (tip.hidden = true));
  });
}

// ---- tables ----------------------------------------------------------------------------------

function siteLink(name) {
  // Browsers send *.localhost to loopback themselves, and the gateway serves NAME.localhost as
  // NAME: from this machine a site opens without any resolver set up. From elsewhere the name
  // itself is used (it resolves once the system resolver asks the node).
  const http = state.health && state.health.services && state.health.services.http;
  if (!http) return null;
  const port = http.listen.slice(http.listen.lastIndexOf(':') + 1);
  const here = location.hostname;
  const local = here === 'localhost' || here === '::1' || here === '[::1]' || /^127\./.test(here);
  return `http://${local ? name + '.localhost' : name}:${port}/`;
}

function drawNames(doc) {
  const st = doc.store;
  const used = st.capacity ? Math.min(1, st.bytes / st.capacity) : 0;
  $('store').innerHTML = `Blob store: ${si(st.blobs)} blobs, ${bytes(st.bytes)} of ${bytes(st.capacity)}` +
    `<div class="bar"><div style="width:${(100 * used).toFixed(1)}%"></div></div>`;
  if (!doc.names.length) return;
  $('names').innerHTML = '<tr><th>name</th><th>site</th><th class="num">records</th><th class="num">seq</th></tr>' + doc.names.map(n => {
    const link = n.site ? siteLink(n.name) : null;
    const site = !n.site ? '<span class="muted">none</span>'
      : `${link ? `<a class="site-link" data-name="${esc(n.name)}" href="${esc(link)}" target="_blank" rel="noopener">open</a> ` : ''}` +
        `<span class="${n.site_held ? 'ok' : 'warn'}" title="manifest ${esc(n.site)}">${n.site_held ? 'held here' : 'fetched on demand'}</span>`;
    return `<tr class="name" data-name="${esc(n.name)}"><td>${esc(n.name)}</td><td>${site}</td><td class="num">${n.records}</td><td class="num">${n.sequence}</td></tr>`;
  }).join('') + (doc.names_total > doc.names.length
    ? `<tr><td colspan="4" class="muted small">${doc.names.length} of ${doc.names_total} names shown (sites held here first)</td></tr>` : '');
}

function drawCache(c) {
  if (!c) return;
  const cl = c.cluster;
  const rows = [['keys', si(c.keys)]];
  if (cl) {
    rows.push(['majority', cl.majority ? '<span class="ok">yes: writes accepted</span>' : '<span class="bad">no: writes refused</span>'],
      ['copies', cl.stale ? '<span class="warn">catching up</span>' : '<span class="ok">current</span>'],
      ['view', `epoch ${cl.epoch}, ${cl.members} members, ${cl.replication_factor} copies per slot`],
      ['slots owned', `<span data-test="slots">${cl.slots_primary + cl.slots_replica}</span> (${cl.slots_primary} primary, ${cl.slots_replica} replica)`],
      ['ranges pulled', `${cl.ranges_pulling} pulling now, ${cl.ranges_exporting} pulled from here recently`]);
  } else {
    rows.push(['cluster', 'alone (no mesh)']);
  }
  $('cache').innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('');
  const links = cl ? cl.links : [];
  $('links').innerHTML = links.length ? '<tr><th>replication to</th><th class="num">lag (records)</th></tr>' +
    links.map(l => `<tr><td><code>…${esc(l.peer.slice(-12))}</code></td><td class="num ${l.in_flight > 1000 ? 'warn' : ''}">${l.in_flight}</td></tr>`).join('') : '';
}

function drawEvents(events) {
  const ol = $('events');
  for (const e of events) {
    const li = document.createElement('li');
    li.dataset.kind = e.kind;
    const t = new Date(e.t);
    li.innerHTML = `<time datetime="${t.toISOString()}">${t.toLocaleTimeString([], { hour12: false })}</time><span class="kind ${esc(e.kind)}">${esc(e.kind)}</span><span>${esc(e.text)}</span>`;
    ol.prepend(li);
    state.eventsAfter = Math.max(state.eventsAfter, e.seq);
  }
  while (ol.children.length > 200) ol.lastChild.remove();
  if (!ol.children.length) ol.innerHTML = '<li class="muted">nothing yet</li>';
  else ol.querySelectorAll('li.muted').forEach(li => li.remove());
}

function drawMembers(members) {
  $('members').innerHTML = '<tr><th>peer</th><th>state</th><th>standing</th><th>address</th><th class="num">RTT measured</th><th class="num">predicted</th></tr>' +
    members.map(m => {
      const st = m.standing || {};
      const standing = st.trust === 'certified' ? `certified: ${(st.roles || []).join(', ') || 'no roles'}` : (st.trust || '');
      const addr = (m.addrs && (m.addrs.quic || m.addrs.http)) || m.quic;
      return `<tr><td><code>${esc(m.peer_id)}</code>${m.self ? ' <b>(this node)</b>' : ''}</td><td class="${esc(m.state)}">${esc(m.state)}</td>` +
        `<td class="small">${esc(standing)}</td><td><code>${esc(addr || '')}</code></td>` +
        `<td class="num">${m.rtt_ms == null ? '–' : m.rtt_ms.toFixed(2) + ' ms'}</td><td class="num">${m.coord_distance_ms == null ? '–' : m.coord_distance_ms.toFixed(2) + ' ms'}</td></tr>`;
    }).join('');
}

function drawHealth(h) {
  $('peer').textContent = h.peer_id;
  $('services').innerHTML = '<tr><th>service</th><th>listen</th><th>protocol</th></tr>' +
    Object.entries(h.services).map(([n, s]) => `<tr><td>${esc(n)}</td><td><code>${esc(s.listen)}</code></td><td>${esc(s.protocol)}</td></tr>`).join('');
}

// ---- polling ---------------------------------------------------------------------------------

async function getJson(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    const r = await fetch(url, { signal: ctl.signal, cache: 'no-store' });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return await r.json();
  } finally {
    clearTimeout(timer);
  }
}

let lastHealth = 0;
async function poll() {
  try {
    if (!state.health || Date.now() - lastHealth > 30000) {
      state.health = await getJson('/health');
      lastHealth = Date.now();
      drawHealth(state.health);
    }
    const doc = await getJson(`/api/dashboard?since=${state.since}&events_after=${state.eventsAfter}`);
    mergePoints(doc.points);
    const h = state.health;
    $('summary').textContent = `version ${h.version} · up ${Math.round(doc.uptime_secs)} s · ${doc.members.length} members · data in ${h.data_dir}`;
    drawCharts();
    drawMap(doc.members);
    drawNames(doc);
    drawCache(doc.cache);
    drawEvents(doc.events);
    drawMembers(doc.members);
    state.lastOk = Date.now();
    $('status').textContent = '';
    document.body.dataset.updated = String(doc.now);
  } catch (e) {
    $('status').textContent = `not updated since ${state.lastOk ? new Date(state.lastOk).toLocaleTimeString() : 'start'}: ${e.message || e}`;
  } finally {
    // One poll at a time: a slow node is never asked twice at once.
    setTimeout(poll, POLL_MS);
  }
}
poll();

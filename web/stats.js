// The marketing team's page: a stream's audience figures (kept after it ends) and a
// viewers-over-time chart, from GET /api/streams/{stream}/stats with an admin token taken
// from the URL fragment (#key=…). Refreshes every 10 s. Everything goes in as text or SVG
// attributes, never HTML.

import { fragmentParam, formatDuration, setState, streamFromUrl } from '/page.js';

const $ = (id) => document.getElementById(id);
const stream = streamFromUrl();
const key = fragmentParam('key');
const SVG = 'http://www.w3.org/2000/svg';

$('stream').textContent = stream;
$('export').href = `/api/streams/${encodeURIComponent(stream)}/chat`;

function drawChart(points) {
  const svg = $('chart');
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  if (points.length < 2) {
    const text = document.createElementNS(SVG, 'text');
    text.setAttribute('x', '300');
    text.setAttribute('y', '100');
    text.setAttribute('text-anchor', 'middle');
    text.textContent = 'Not enough samples yet (one every 10 s).';
    svg.appendChild(text);
    return;
  }
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  const max = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => 40 + ((t - t0) / Math.max(1, t1 - t0)) * 550;
  const y = (v) => 180 - (v / max) * 160;
  const axis = document.createElementNS(SVG, 'path');
  axis.setAttribute('d', 'M40 20 V180 H590');
  axis.setAttribute('class', 'axis');
  svg.appendChild(axis);
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' '));
  line.setAttribute('class', 'series');
  svg.appendChild(line);
  for (const [value, label] of [[max, String(max)], [0, '0']]) {
    const text = document.createElementNS(SVG, 'text');
    text.setAttribute('x', '34');
    text.setAttribute('y', String(y(value) + 4));
    text.setAttribute('text-anchor', 'end');
    text.textContent = label;
    svg.appendChild(text);
  }
}

async function refresh() {
  try {
    const response = await fetch(`/api/streams/${encodeURIComponent(stream)}/stats`, {
      headers: key ? { Authorization: `Bearer ${key}` } : {},
    });
    const body = await response.json();
    if (!response.ok) {
      setState('error', body.message || `HTTP ${response.status}`);
      return;
    }
    const { audience, chat } = body;
    $('viewers').textContent = String(audience.viewers);
    $('peak').textContent = String(audience.peak_viewers);
    $('unique').textContent = String(audience.unique_viewers);
    $('total').textContent = formatDuration(audience.total_watch_seconds * 1000);
    $('average').textContent = formatDuration(audience.average_watch_seconds * 1000);
    $('messages').textContent = String(chat.chat_messages);
    $('chatters').textContent = String(chat.chatters);
    drawChart(body.viewers_over_time || []);
    setState(body.live ? 'live' : 'ended', body.live ? 'Live now' : 'Not live');
  } catch (error) {
    setState('error', `Cannot load the figures: ${error.message}`);
  }
}

refresh();
setInterval(refresh, 10_000);

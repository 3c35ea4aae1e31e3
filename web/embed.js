// The embeddable player, for an <iframe>: the video, the stream's title, logo and accent
// colour (from the settings API, overridden by ?title=, ?logo=, ?accent=), an unmute button,
// and the same waiting / live / ended states as the watch page. No chat.

import { watch } from '/sdk/directo.js';
import { fragmentParam, setState, streamFromUrl } from '/page.js';

const $ = (id) => document.getElementById(id);
const stream = streamFromUrl();
const params = new URLSearchParams(location.search);
const player = $('player');
const unmute = $('unmute');
let viewer = null;
let wasLive = false;
let lastFrames = 0;
let lastPc = null;

function show(state, overlayText) {
  setState(state, overlayText || 'Live');
  $('live-badge').hidden = state !== 'live';
  $('overlay').hidden = state === 'live';
  $('overlay-text').textContent = overlayText;
}

/** Only http(s) URLs or paths on this server become the logo. */
function safeUrl(value) {
  if (!value) return null;
  if (value.startsWith('/') && !value.startsWith('//')) return value;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

async function applyBranding() {
  let settings = {};
  try {
    const response = await fetch(`/api/streams/${encodeURIComponent(stream)}/settings`);
    if (response.ok) settings = await response.json();
  } catch {
    // No settings: the defaults and the query string still apply.
  }
  const title = params.get('title') ?? settings.title ?? stream;
  const logo = safeUrl(params.get('logo') ?? settings.logo_url ?? '');
  const accent = params.get('accent') ?? settings.accent_color ?? '';
  $('title').textContent = title;
  document.title = title;
  if (logo) {
    $('logo').src = logo;
    $('logo').hidden = false;
  }
  if (/^#?[0-9a-fA-F]{6}$/.test(accent)) {
    document.documentElement.style.setProperty('--accent', accent.startsWith('#') ? accent : `#${accent}`);
  }
}

async function connect() {
  show('connecting', 'Connecting…');
  try {
    viewer = await watch({ stream, token: fragmentParam('token') || params.get('token') || undefined, video: player });
  } catch (error) {
    show('error', error.message);
    if (error.retryable) setTimeout(connect, Math.max(2000, (error.retryAfter ?? 0) * 1000));
    return;
  }
  window.directoSession = viewer;
  viewer.on('live', () => (wasLive = true));
  viewer.on('offline', () => show(wasLive ? 'ended' : 'waiting', wasLive ? 'The stream has ended.' : 'Waiting for the presenter…'));
  viewer.on('reconnecting', () => show('reconnecting', 'Reconnecting…'));
  show('waiting', viewer.live === false ? 'Waiting for the presenter…' : 'Starting…');
}

async function checkFrames() {
  const stats = await viewer?.stats().catch(() => null);
  if (!stats) return;
  // A reconnect brings a new peer whose counters start again from zero.
  if (viewer.pc !== lastPc) {
    lastPc = viewer.pc;
    lastFrames = 0;
  }
  const moving = stats.framesDecoded > lastFrames;
  lastFrames = stats.framesDecoded;
  if (moving && viewer.live !== false && window.directoState !== 'live') {
    wasLive = true;
    show('live', '');
  }
}
setInterval(checkFrames, 500);

unmute.addEventListener('click', () => {
  player.muted = !player.muted;
  if (!player.muted) player.play().catch(() => {});
});
function refreshUnmute() {
  unmute.textContent = player.muted ? 'Unmute' : 'Mute';
  unmute.classList.toggle('is-muted', player.muted);
}
player.addEventListener('volumechange', refreshUnmute);
refreshUnmute();

if (stream) {
  applyBranding();
  connect();
} else {
  show('error', 'No stream name: embed /embed/NAME');
}

// The watch page: plays the stream as soon as it is live (muted autoplay, then the unmute
// button), says "waiting for the presenter" before and "ended" after, and shows the chat
// with the presenter's messages highlighted. The SDK reconnects by itself after a drop.
//
// For tests: `window.directoState` is 'connecting' | 'waiting' | 'live' | 'ended' |
// 'reconnecting' | 'error', and `window.directoSession` the SDK's Viewer.

import { watch } from '/sdk/directo.js';
import { mountChat } from '/chatview.js';
import {
  formatDuration,
  fragmentParam,
  rememberName,
  rememberedName,
  setState,
  streamFromUrl,
} from '/page.js';

/** Pause before trying again when the first connection is refused for a passing reason. */
const RETRY_MS = 2000;

const $ = (id) => document.getElementById(id);
const stream = streamFromUrl();
const player = $('player');
const unmute = $('unmute');
const overlay = $('overlay');

let viewer = null;
let chat = null;
let name = rememberedName();
let wasLive = false;
let lastFrames = 0;
let lastPc = null;

function show(state, text, overlayText = text) {
  setState(state, text);
  $('live-badge').hidden = state !== 'live';
  overlay.hidden = state === 'live';
  $('overlay-text').textContent = overlayText;
}

async function connect() {
  show('connecting', `Connecting to “${stream}”…`, 'Connecting…');
  try {
    viewer = await watch({
      stream,
      name,
      token: fragmentParam('token') || undefined,
      video: player,
      quality: $('quality').value,
    });
  } catch (error) {
    const again = error.retryable;
    show('error', `Error: ${error.message}${again ? ' (retrying)' : ''}`);
    if (again) setTimeout(connect, Math.max(RETRY_MS, (error.retryAfter ?? 0) * 1000));
    return;
  }
  window.directoSession = viewer;
  if (chat) chat.attach(viewer);
  else chat = mountChat($('chat'), viewer, { actions: ['reply'] });
  $('my-name').textContent = name;
  viewer.on('live', () => {
    wasLive = true;
    if (window.directoState !== 'live') show('waiting', `“${stream}” is live, starting…`, 'Starting…');
  });
  viewer.on('offline', () => {
    // The recording is finished (seekable) a few seconds after the presenter leaves.
    setTimeout(showRecordings, 12_000);
    if (wasLive) show('ended', 'The stream has ended.', 'The stream has ended. Thanks for watching!');
    else show('waiting', `Waiting for the presenter of “${stream}”…`, 'Waiting for the presenter…');
  });
  viewer.on('viewers', ({ count }) => ($('viewers').textContent = String(count)));
  $('quality').onchange = () => {
    viewer.setQuality($('quality').value).catch((error) => setState('error', `Error: ${error.message}`));
  };
  viewer.on('reconnecting', () => show('reconnecting', 'Connection lost, reconnecting…', 'Reconnecting…'));
  viewer.on('reconnected', () => {
    show('waiting', 'Reconnected, waiting for pictures…', 'Starting…');
  });
  viewer.on('closed', ({ error }) => {
    if (error) show('error', `Error: ${error.message}`);
  });
  if (viewer.live === false) show('waiting', `Waiting for the presenter of “${stream}”…`, 'Waiting for the presenter…');
  else show('waiting', `Connected to “${stream}”…`, 'Starting…');
}

/** "Live" means frames are being decoded now, not merely a connected peer. */
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
  const state = window.directoState;
  if (moving && viewer.live !== false && state !== 'live' && state !== 'reconnecting') {
    wasLive = true;
    show('live', `Live: “${stream}”`);
  }
}
setInterval(checkFrames, 500);

function refreshUnmute() {
  unmute.textContent = player.muted ? 'Unmute' : 'Mute';
  unmute.classList.toggle('is-muted', player.muted);
}
unmute.addEventListener('click', () => {
  player.muted = !player.muted;
  if (!player.muted) player.play().catch(() => {});
});
player.addEventListener('volumechange', refreshUnmute);
refreshUnmute();

$('rename').addEventListener('click', async () => {
  const next = prompt('Your name in the chat (1–32 characters)', name)?.trim();
  if (!next || next === name) return;
  name = next.slice(0, 32);
  rememberName(name);
  // The name travels with the session, so a new name is a new session.
  const old = viewer;
  viewer = null;
  await old?.close();
  connect();
});
window.addEventListener('pagehide', () => viewer?.close());

/** The stream's finished recordings, newest first, each playable (and seekable) in place. */
async function showRecordings() {
  let list = [];
  try {
    const response = await fetch('/api/recordings');
    if (response.ok) list = await response.json();
  } catch {
    return;
  }
  const mine = list.filter((r) => r.stream === stream && r.seekable).reverse();
  const ol = $('recording-list');
  ol.replaceChildren();
  for (const recording of mine) {
    const li = document.createElement('li');
    const when = new Date(recording.start * 1000).toLocaleString();
    const label = document.createElement('p');
    label.textContent = `${when} · ${formatDuration(recording.duration * 1000)}`;
    const video = document.createElement('video');
    video.controls = true;
    video.preload = 'metadata';
    video.src = `/api/recordings/${recording.id.split('/').map(encodeURIComponent).join('/')}`;
    li.append(label, video);
    ol.append(li);
  }
  $('recordings').hidden = mine.length === 0;
}

if (stream) {
  showRecordings();
  $('title').append(` · ${stream}`);
  document.title = `${stream} · Directo`;
  connect();
} else {
  show('error', 'Error: no stream name; open this page as /watch/NAME');
}

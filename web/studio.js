// The presenter's studio: pick camera and microphone, preview, go live over WHIP with the
// SDK, watch health and audience, talk with viewers in the chat, also stream to RTMP(S)
// destinations (restream.js), copy the embed snippet.
//
// For tests: `window.directoState` is 'idle' | 'connecting' | 'live' | 'reconnecting' |
// 'error', and `window.directoSession` the SDK's Publisher while there is one.

import { publish } from '/sdk/directo.js';
import { mountChat } from '/chatview.js';
import { mountRestream } from '/restream.js';
import {
  copyText,
  formatBitrate,
  formatDuration,
  fragmentParam,
  rememberName,
  rememberedName,
  setState,
  streamFromUrl,
} from '/page.js';

/** Where the presenter's name is remembered, apart from the name used when watching. */
const PRESENTER_NAME_KEY = 'directo-presenter-name';

const $ = (id) => document.getElementById(id);
const stream = streamFromUrl();
const preview = $('preview');
const cameraSelect = $('camera');
const micSelect = $('microphone');
const nameInput = $('name');
const keyInput = $('key');
const goLive = $('golive');
const stopButton = $('stop');

let media = null;
let publisher = null;
let chat = null;
let liveSince = null;
// Bumped by every start and stop, so a publish that resolves after Stop knows it is stale.
let attempt = 0;

$('stream-name').textContent = stream || '(no stream)';
document.title = `Studio · ${stream} · Directo`;
keyInput.value = fragmentParam('key');
nameInput.value = rememberedName('Presenter', PRESENTER_NAME_KEY);

const watchUrl = new URL(`/watch/${encodeURIComponent(stream)}`, location.origin).href;
const embedUrl = new URL(`/embed/${encodeURIComponent(stream)}`, location.origin).href;
$('watch-link').href = watchUrl;
$('moderate-link').href = `/moderate/${encodeURIComponent(stream)}`;
$('embed-code').value =
  `<iframe src="${embedUrl}" width="640" height="360" style="border:0" allow="autoplay; fullscreen" allowfullscreen></iframe>`;
$('copy-embed').addEventListener('click', async () => {
  const ok = await copyText($('embed-code').value, $('embed-code'));
  $('copy-embed').textContent = ok ? 'Copied' : 'Select and copy';
  setTimeout(() => ($('copy-embed').textContent = 'Copy snippet'), 2000);
});

function refreshButtons() {
  const state = window.directoState;
  const busy = state === 'connecting' || state === 'live' || state === 'reconnecting';
  goLive.disabled = media === null || busy;
  stopButton.disabled = !busy;
  keyInput.disabled = busy;
  nameInput.disabled = busy;
}

function show(state, text) {
  setState(state, text);
  $('live-badge').hidden = state !== 'live';
  refreshButtons();
}

/** Fills a device picker, keeping the device in use selected. */
function fillPicker(select, devices, current) {
  select.replaceChildren();
  devices.forEach((device, i) => {
    const option = document.createElement('option');
    option.value = device.deviceId;
    option.textContent = device.label || `${device.kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
    select.append(option);
  });
  if (current) select.value = current;
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const trackDevice = (kind) => media?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
  fillPicker(cameraSelect, devices.filter((d) => d.kind === 'videoinput'), trackDevice('video'));
  fillPicker(micSelect, devices.filter((d) => d.kind === 'audioinput'), trackDevice('audio'));
}

async function openDevices() {
  const constraints = {
    video: cameraSelect.value ? { deviceId: { exact: cameraSelect.value } } : true,
    audio: micSelect.value ? { deviceId: { exact: micSelect.value } } : true,
  };
  return navigator.mediaDevices.getUserMedia(constraints);
}

/** A picker changed: capture the new device and swap it in, live or not. */
async function switchDevice(kind) {
  try {
    const select = kind === 'video' ? cameraSelect : micSelect;
    const fresh = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: select.value } } });
    const track = fresh.getTracks()[0];
    if (publisher) {
      await publisher.replaceTrack(track);
    } else {
      const old = media.getTracks().find((t) => t.kind === kind);
      if (old) {
        media.removeTrack(old);
        old.stop();
      }
      media.addTrack(track);
    }
    preview.srcObject = media;
  } catch (error) {
    $('chat').querySelector('.chat-notice').hidden = false;
    $('chat').querySelector('.chat-notice').textContent = `Could not switch: ${error.message}`;
  }
}

async function start() {
  const mine = ++attempt;
  const name = nameInput.value.trim() || 'Presenter';
  rememberName(name, PRESENTER_NAME_KEY);
  show('connecting', `Connecting “${stream}”…`);
  try {
    // Simulcast: viewers on weak networks get a smaller layer instead of stalls.
    const started = await publish({ stream, key: keyInput.value, name, media, simulcast: true });
    if (mine !== attempt) {
      await started.close();
      return;
    }
    publisher = started;
    window.directoSession = started;
    follow(started);
  } catch (error) {
    if (mine === attempt) show('error', `Error: ${error.message}`);
  }
}

function follow(session) {
  if (chat) chat.attach(session);
  else chat = mountChat($('chat'), session, { actions: ['reply', 'delete', 'pin'] });
  const onState = (state) => {
    if (publisher !== session) return;
    if (state === 'connected') {
      liveSince ??= Date.now();
      show('live', `Live: “${stream}”`);
    } else if (state === 'reconnecting') {
      show('reconnecting', 'Connection lost, reconnecting…');
    }
  };
  session.on('state', onState);
  onState(session.state);
  session.on('status', (status) => {
    $('rec-badge').hidden = !(status.live && status.recording);
  });
  session.on('viewers', ({ count }) => ($('viewers').textContent = String(count)));
  session.on('closed', ({ error }) => {
    if (publisher !== session) return;
    publisher = null;
    liveSince = null;
    if (error) show('error', `Error: ${error.message}`);
  });
}

async function stop() {
  const ending = publisher;
  publisher = null;
  attempt += 1;
  liveSince = null;
  $('rec-badge').hidden = true;
  show('idle', 'Stopped. Press “Go live” to start again.');
  await ending?.close();
}

/** Once a second: elapsed time, and bitrate, frame rate, round trip and health from getStats. */
async function tick() {
  $('elapsed').textContent = liveSince ? formatDuration(Date.now() - liveSince) : '–';
  const stats = await publisher?.stats().catch(() => null);
  $('bitrate').textContent = stats ? formatBitrate(stats.sendBitrateBps) : '–';
  $('fps').textContent = stats?.framesPerSecond ? `${Math.round(stats.framesPerSecond)} fps` : '–';
  $('rtt').textContent = stats?.rttMs != null ? `${Math.round(stats.rttMs)} ms` : '–';
  const health = stats?.health ?? 'unknown';
  $('health').dataset.health = health;
  $('health').textContent = { good: 'Good', fair: 'Fair', poor: 'Poor', unknown: '–' }[health];
}
setInterval(tick, 1000);

$('controls').addEventListener('submit', (event) => {
  event.preventDefault();
  start();
});
stopButton.addEventListener('click', stop);
// Until the first "Go live" there is no chat to send to; never let the form reload the page.
$('chat').querySelector('.chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (!chat) {
    const notice = $('chat').querySelector('.chat-notice');
    notice.hidden = false;
    notice.textContent = 'Go live to chat with your viewers.';
  }
});
cameraSelect.addEventListener('change', () => switchDevice('video'));
micSelect.addEventListener('change', () => switchDevice('audio'));
window.addEventListener('pagehide', () => publisher?.close());

if (stream) mountRestream({ stream, credential: () => keyInput.value.trim() });

if (!stream) {
  show('error', 'Error: no stream name; open this page as /studio/NAME');
} else {
  show('idle', 'Starting camera…');
  try {
    media = await openDevices();
    preview.srcObject = media;
    await listDevices();
    show('idle', 'Camera ready. Press “Go live” to publish.');
  } catch (error) {
    show('error', `Error: no camera or microphone (${error.message})`);
  }
}

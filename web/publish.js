// The publish page: camera and microphone preview, then WHIP to go live.
//
// `window.directoState` mirrors the status ('idle' | 'connecting' | 'live' |
// 'error') so tests can wait on it without parsing the text.
import { whipPublish } from './whip.js';

const params = new URLSearchParams(location.search);
const preview = document.getElementById('preview');
const form = document.getElementById('controls');
const streamInput = document.getElementById('stream');
const keyInput = document.getElementById('key');
const goLive = document.getElementById('golive');
const stopButton = document.getElementById('stop');
const status = document.getElementById('status');
const watchLink = document.getElementById('watchlink');

streamInput.value = params.get('stream') ?? '';
keyInput.value = params.get('key') ?? '';

let media = null;
let session = null;
// Bumped by every start and stop, so a POST that resolves after the user
// pressed Stop (or started again) knows it is stale.
let attempt = 0;

/** Shows `text` as the status and records `state` for tests and styling. */
function setState(state, text) {
  window.directoState = state;
  status.dataset.state = state;
  status.textContent = text;
  goLive.disabled = media === null || state === 'connecting' || state === 'live';
  stopButton.disabled = !(state === 'connecting' || state === 'live');
}

function updateWatchLink() {
  watchLink.href = `watch.html?stream=${encodeURIComponent(streamInput.value)}`;
}

async function start() {
  const stream = streamInput.value.trim();
  const mine = ++attempt;
  setState('connecting', `Connecting “${stream}”…`);
  try {
    const started = await whipPublish(location.origin, stream, keyInput.value, media);
    if (mine !== attempt) {
      await started.stop();
      return;
    }
    session = started;
    watchPeer(started.pc, stream);
  } catch (error) {
    if (mine === attempt) setState('error', `Error: ${error.message}`);
  }
}

/** Follows the connection: live once media flows, an error if it breaks. */
function watchPeer(pc, stream) {
  const update = () => {
    if (session?.pc !== pc) return;
    if (pc.connectionState === 'connected') {
      setState('live', `Live: “${stream}”`);
    } else if (pc.connectionState === 'failed') {
      session = null;
      pc.close();
      setState('error', 'Error: the connection to the server failed');
    }
  };
  pc.addEventListener('connectionstatechange', update);
  update();
}

async function stop() {
  const ending = session;
  session = null;
  attempt += 1;
  setState('idle', 'Stopped.');
  await ending?.stop();
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  start();
});
stopButton.addEventListener('click', stop);
streamInput.addEventListener('input', updateWatchLink);
window.addEventListener('pagehide', () => session?.stop());
updateWatchLink();

try {
  media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  preview.srcObject = media;
  setState('idle', 'Camera ready. Press “Go live” to publish.');
} catch (error) {
  setState('error', `Error: no camera or microphone (${error.message})`);
}

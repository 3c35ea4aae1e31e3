// The watch page: a WHEP viewer that keeps trying until it gets the stream.
//
// The video starts muted because browsers only autoplay muted media; the
// button unmutes it. `window.directoPc` is the current RTCPeerConnection and
// `window.directoState` the status ('connecting' | 'waiting' | 'live' |
// 'error'), both for tests.
import { whepWatch } from './whip.js';

/** Pause between attempts after a failed POST or a broken connection. */
const RETRY_MS = 2000;

const stream = new URLSearchParams(location.search).get('stream') ?? '';
const player = document.getElementById('player');
const unmute = document.getElementById('unmute');
const status = document.getElementById('status');
const title = document.getElementById('title');

let session = null;

/** Shows `text` as the status and records `state` for tests and styling. */
function setState(state, text) {
  window.directoState = state;
  status.dataset.state = state;
  status.textContent = text;
}

async function connect() {
  setState('connecting', `Connecting to “${stream}”…`);
  try {
    session = await whepWatch(location.origin, stream);
  } catch (error) {
    setState('error', `Error: ${error.message} (retrying)`);
    setTimeout(connect, RETRY_MS);
    return;
  }
  const { pc } = session;
  window.directoPc = pc;
  player.srcObject = session.stream;
  setState('waiting', `Waiting for “${stream}” to go live…`);
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'failed' && session?.pc === pc) {
      session.stop();
      session = null;
      setState('error', 'Error: the connection to the server failed (retrying)');
      setTimeout(connect, RETRY_MS);
    }
  });
}

// "Live" means pictures are actually arriving, not merely a connected peer.
player.addEventListener('playing', () => setState('live', `Live: “${stream}”`));
player.addEventListener('waiting', () => {
  if (window.directoState === 'live') setState('waiting', `Waiting for “${stream}”…`);
});

unmute.addEventListener('click', () => {
  player.muted = !player.muted;
  unmute.textContent = player.muted ? 'Unmute' : 'Mute';
  if (!player.muted) player.play().catch(() => {});
});
window.addEventListener('pagehide', () => session?.stop());

if (stream) {
  title.textContent = `Watch “${stream}”`;
  connect();
} else {
  setState('error', 'Error: no stream name; open this page as watch.html?stream=NAME');
}

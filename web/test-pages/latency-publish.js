// The publisher side of the glass-to-glass probe: draws this browser's clock
// (performance.timeOrigin + performance.now(), shared by every page of the browser) as a
// block code (blockcode.js) on a canvas at every animation frame, and publishes the
// canvas's 30 fps capture through the SDK. latency-watch.html reads the code back.
//
// Query: `?stream=` (default `latency`); fragment `#key=` the publish key. For tests:
// `window.directoState` is 'starting' | 'live' | 'error', `window.directoSession` the SDK's
// Publisher, `window.framesDrawn` the pictures drawn so far. The page also answers clock
// pings on the `directo-latency-clock` BroadcastChannel, so the watch page can check that
// the two pages really read the same clock.

import { publish } from '/sdk/directo.js';
import { drawCode, sharedNow, stampFor } from '/test-pages/blockcode.js';

const FPS = 30;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const stream = params.get('stream') || 'latency';
const key = new URLSearchParams(location.hash.slice(1)).get('key') ?? '';
const canvas = $('clock');
const ctx = canvas.getContext('2d', { alpha: false });

window.framesDrawn = 0;
$('watch-link').href = `latency-watch.html?stream=${encodeURIComponent(stream)}`;

function setState(state, text) {
  window.directoState = state;
  $('status').textContent = text;
}

// One picture per animation frame: the capture takes the latest at up to 30 fps, so the
// stamp it carries is at most one display refresh older than the capture itself — the
// same as a camera's exposure time.
let rateFrom = { at: performance.now(), frames: 0 };
function draw() {
  drawCode(ctx, canvas.width, canvas.height, stampFor(sharedNow()));
  window.framesDrawn += 1;
  const now = performance.now();
  if (now - rateFrom.at >= 1000) {
    $('fps').textContent = `${Math.round(((window.framesDrawn - rateFrom.frames) * 1000) / (now - rateFrom.at))} fps`;
    $('frames').textContent = String(window.framesDrawn);
    rateFrom = { at: now, frames: window.framesDrawn };
  }
  requestAnimationFrame(draw);
}
requestAnimationFrame(draw);

new BroadcastChannel('directo-latency-clock').onmessage = ({ data, target }) => {
  if (data?.type === 'ping') target.postMessage({ type: 'pong', id: data.id, at: sharedNow() });
};

setState('starting', `Going live on “${stream}”…`);
try {
  const media = canvas.captureStream(FPS);
  window.directoSession = await publish({ stream, key, name: 'latency probe', media });
  setState('live', `Live on “${stream}”`);
} catch (error) {
  setState('error', `Error: ${error.message}`);
}

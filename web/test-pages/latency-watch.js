// The viewer side of the glass-to-glass probe: plays the stream of latency-publish.html and,
// for every frame the <video> presents (requestVideoFrameCallback), draws it on a small
// canvas, reads the block code (blockcode.js) and records when the frame is shown minus the
// time the publisher drew it. Both pages must run in the same browser: they read the same
// clock (performance.timeOrigin + performance.now()).
//
// Query: `?stream=` (default `latency`). For tests: `window.directoState` is 'connecting' |
// 'waiting' | 'live' | 'error', `window.directoSession` the SDK's Viewer, and
// `window.latency` holds the samples — `{ delayMs, presentedMs, receivedMs, width, height }`
// per frame read, where `delayMs` is drawn → shown, `presentedMs` drawn → handed to the
// compositor and `receivedMs` drawn → last packet received — and counts of frames rejected (by reason: the code's `contrast`,
// `sync`, `crc`, or `raced`: a newer frame replaced it before it could be read);
// `window.latency.reset()` starts over.
// `window.clockOffset()` measures how far the publisher page's clock is from this one's.

import { watch } from '/sdk/directo.js';
import { decodeCode, elapsedSince, sharedNow } from '/test-pages/blockcode.js';

/** Reading size: the code's cells stay 40 × 30 pixels, and reading it costs little. */
const READ_WIDTH = 320;
const READ_HEIGHT = 180;
/** Samples the on-page percentiles are taken over. */
const WINDOW = 300;

const $ = (id) => document.getElementById(id);
const stream = new URLSearchParams(location.search).get('stream') || 'latency';
const video = $('player');
const reader = document.createElement('canvas');
reader.width = READ_WIDTH;
reader.height = READ_HEIGHT;
const readCtx = reader.getContext('2d', { willReadFrequently: true, alpha: false });

const latency = {
  samples: [],
  rejected: { contrast: 0, sync: 0, crc: 0, raced: 0, unavailable: 0 },
  reset() {
    this.samples = [];
    this.rejected = { contrast: 0, sync: 0, crc: 0, raced: 0 };
  },
};
window.latency = latency;

function setState(state, text) {
  window.directoState = state;
  $('status').textContent = text;
}

/** The `p` quantile (0–1) of sorted `values`, nearest rank. */
function quantile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function reject(reason) {
  latency.rejected[reason] += 1;
  $('rejected').textContent = String(Object.values(latency.rejected).reduce((a, b) => a + b, 0));
}

function onFrame(_now, frame) {
  video.requestVideoFrameCallback(onFrame);
  // The <video> may already hold a newer frame than the one this callback is about (one
  // that arrived since): its time stamp tells, and reading it would pair a newer picture
  // with an older display time.
  let picture;
  try {
    picture = new VideoFrame(video);
  } catch {
    // The element has no picture to give right now (its source is being replaced, or the
    // page is closing): nothing to read from this callback.
    reject('unavailable');
    return;
  }
  const current = Math.abs(picture.timestamp - frame.mediaTime * 1e6) < 500;
  if (current) readCtx.drawImage(picture, 0, 0, READ_WIDTH, READ_HEIGHT);
  picture.close();
  if (!current) {
    reject('raced');
    return;
  }
  const { data } = readCtx.getImageData(0, 0, READ_WIDTH, READ_HEIGHT);
  const code = decodeCode(data, READ_WIDTH, READ_HEIGHT);
  if (code.error) {
    reject(code.error);
    return;
  }
  // receiveTime (WebRTC sources only) is when the frame's last packet arrived,
  // presentationTime when the frame went to the compositor, and expectedDisplayTime when
  // the compositor expects it on the glass. Without a real display (headless) that last
  // one is an estimate that can come before the presentation, which a frame cannot be
  // shown before.
  const since = (time) => (time === undefined ? null : elapsedSince(code.value, performance.timeOrigin + time));
  const sample = {
    delayMs: since(Math.max(frame.expectedDisplayTime, frame.presentationTime)),
    presentedMs: since(frame.presentationTime),
    receivedMs: since(frame.receiveTime),
    width: frame.width,
    height: frame.height,
  };
  latency.samples.push(sample);
  if (window.directoState !== 'live') setState('live', `Reading “${stream}”`);

  $('delay').textContent = `${Math.round(sample.delayMs)} ms`;
  $('network').textContent = sample.receivedMs === null ? 'n/a' : `${Math.round(sample.receivedMs)} ms`;
  $('read').textContent = String(latency.samples.length);
  $('size').textContent = `${frame.width} × ${frame.height}`;
  const recent = latency.samples.slice(-WINDOW).map((s) => s.delayMs).sort((a, b) => a - b);
  $('percentiles').textContent = `${Math.round(quantile(recent, 0.5))} / ${Math.round(quantile(recent, 0.95))} ms`;
}
video.requestVideoFrameCallback(onFrame);

/**
 * Pings the publisher page `rounds` times over a BroadcastChannel and returns its clock
 * minus this page's, from the ping with the shortest round trip (NTP style): the error is
 * at most half of that `rttMs`.
 */
window.clockOffset = async (rounds = 20) => {
  const channel = new BroadcastChannel('directo-latency-clock');
  let best = null;
  try {
    for (let id = 0; id < rounds; id += 1) {
      const sent = sharedNow();
      const reply = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the publisher page did not answer the clock ping')), 2000);
        channel.onmessage = ({ data }) => {
          if (data?.type === 'pong' && data.id === id) {
            clearTimeout(timer);
            resolve(data);
          }
        };
        channel.postMessage({ type: 'ping', id });
      });
      const back = sharedNow();
      const rttMs = back - sent;
      if (!best || rttMs < best.rttMs) best = { offsetMs: reply.at - (sent + back) / 2, rttMs };
    }
  } finally {
    channel.close();
  }
  return best;
};

setState('connecting', `Connecting to “${stream}”…`);
try {
  const viewer = await watch({ stream, name: 'latency probe', video });
  window.directoSession = viewer;
  if (window.directoState !== 'live') setState('waiting', `Waiting for “${stream}” to go live…`);
} catch (error) {
  setState('error', `Error: ${error.message}`);
}

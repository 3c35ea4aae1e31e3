// Glass-to-glass delay through Directo, measured in one browser: the publisher probe page
// (web/test-pages/latency-publish.html) draws the browser's clock as a block code on a
// canvas and publishes the canvas's 30 fps capture through the SDK; the watch probe page
// (latency-watch.html) plays the stream and, for every frame it shows, reads the code back
// and records "shown − drawn". Both pages read the same clock, which the test checks with a
// ping between them.
//
// Prints, as test diagnostics, p50/p95/max of the delay over WINDOW_MS of frames after the
// first one read and the sample count; the drawn → received and drawn → to the compositor
// parts of it; and where the time goes according to getStats() (encode, jitter buffer,
// decode). Headless Chromium has no display: "shown" is when the frame goes to the
// compositor (or the compositor's expected display time, if later); a real screen adds up
// to a refresh interval and its panel's own delay. The test asserts only that enough frames
// were read: a test never asserts a wall-clock time — the numbers are for reading, and on a
// loaded 2-core machine they vary. The figures also go to
// <repo>/test-artifacts/latency.json, the screenshots to latency-publish.png and
// latency-watch.png, the logs to latency-server.log and latency-console.log.
//
// Run: `npm test` in tests/browser (everything), or `node --test latency.test.mjs` after
// `cargo build -p directo`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ARTIFACTS, Harness, waitFor, waitForState } from './harness.mjs';

const PUBLISH_KEY = 'latency-test-key';
const STREAM = 'glass-to-glass';
/** How long frames are sampled for, from the first frame read. */
const WINDOW_MS = 10_000;
/**
 * Fewer frames read than this in WINDOW_MS (30 fps would give 300) means the probe is
 * broken, not slow: a code that does not survive the codec, or a page that stopped.
 */
const MIN_SAMPLES = 100;

const harness = new Harness('latency');

before(() => harness.start(['--publish-key', PUBLISH_KEY]));
after(() => harness.close());

test('glass-to-glass delay: a canvas clock published and read back in the same browser', async (t) => {
  const publisher = await harness.openPage('latency-publish');
  const viewer = await harness.openPage('latency-watch');
  try {
    await publisher.goto(`${harness.baseUrl}/test-pages/latency-publish.html?stream=${STREAM}#key=${PUBLISH_KEY}`);
    await waitForState(publisher, ['live']);
    await viewer.goto(`${harness.baseUrl}/test-pages/latency-watch.html?stream=${STREAM}`);
    await waitFor('the viewer reads a first frame', () => viewer.evaluate(() => window.latency.samples.length > 0));

    const clock = await viewer.evaluate(() => window.clockOffset());
    const pages = await Promise.all([publisher, viewer].map((page) => page.evaluate(() => document.visibilityState)));
    await viewer.evaluate(() => window.latency.reset());
    const drawnBefore = await publisher.evaluate(() => window.framesDrawn);
    const statsBefore = await pipelineStats(publisher, viewer);
    await sleep(WINDOW_MS);
    const { samples, rejected } = await viewer.evaluate(() => ({
      samples: window.latency.samples,
      rejected: window.latency.rejected,
    }));
    const statsAfter = await pipelineStats(publisher, viewer);
    const drawn = (await publisher.evaluate(() => window.framesDrawn)) - drawnBefore;
    await harness.snapshot(publisher, 'latency-publish');
    await harness.snapshot(viewer, 'latency-watch');

    const delay = summary(samples.map((s) => s.delayMs));
    const presented = summary(samples.map((s) => s.presentedMs).filter((ms) => ms !== null));
    const received = summary(samples.map((s) => s.receivedMs).filter((ms) => ms !== null));
    const perFrame = (total, count) => (count > 0 ? round(((total ?? 0) * 1000) / count) : null);
    const d = (key) => (statsAfter[key] ?? 0) - (statsBefore[key] ?? 0);
    const pipeline = {
      encodeMs: perFrame(d('totalEncodeTime'), d('framesEncoded')),
      jitterBufferMs: perFrame(d('jitterBufferDelay'), d('jitterBufferEmittedCount')),
      decodeMs: perFrame(d('totalDecodeTime'), d('framesDecoded')),
      framesDropped: d('framesDropped'),
      sentSize: statsAfter.sentSize,
      sendBitrateKbps: Math.round((d('bytesSent') * 8) / WINDOW_MS),
      qualityLimitation: statsAfter.qualityLimitationReason,
      roundTripMs: statsAfter.roundTripMs,
    };
    const rejectedCount = Object.values(rejected).reduce((a, b) => a + b, 0);
    const sizes = [...new Set(samples.map((s) => `${s.width}x${s.height}`))];

    t.diagnostic(`glass-to-glass (drawn -> shown): p50 ${delay.p50} ms, p95 ${delay.p95} ms, max ${delay.max} ms, min ${delay.min} ms over ${samples.length} frames in ${WINDOW_MS / 1000} s`);
    t.diagnostic(`drawn -> last packet received: p50 ${received.p50} ms, p95 ${received.p95} ms; drawn -> to the compositor: p50 ${presented.p50} ms, p95 ${presented.p95} ms`);
    t.diagnostic(`per frame (getStats): encode ${pipeline.encodeMs} ms, jitter buffer ${pipeline.jitterBufferMs} ms, decode ${pipeline.decodeMs} ms; ${pipeline.framesDropped} dropped by the receiver; sent ${pipeline.sentSize} at ${pipeline.sendBitrateKbps} kbit/s (limited by: ${pipeline.qualityLimitation}); round trip ${pipeline.roundTripMs} ms`);
    t.diagnostic(`frames: ${drawn} drawn by the publisher page, ${samples.length} read, ${rejectedCount} rejected ${JSON.stringify(rejected)}, received at ${sizes.join(', ')}`);
    t.diagnostic(`clock: publisher page - viewer page = ${round(clock.offsetMs)} ms (± ${round(clock.rttMs / 2)} ms); pages ${pages.join('/')}`);
    await writeFile(
      join(ARTIFACTS, 'latency.json'),
      JSON.stringify({ windowMs: WINDOW_MS, delay, presented, received, pipeline, drawn, rejected, sizes, clock, samples }, null, 1) + '\n',
    );

    assert.ok(
      samples.length >= MIN_SAMPLES,
      `at least ${MIN_SAMPLES} frames read in ${WINDOW_MS} ms, got ${samples.length} (rejected: ${JSON.stringify(rejected)})`,
    );
  } finally {
    await harness.snapshot(viewer, 'latency-watch-final');
    await publisher.close();
    await viewer.close();
  }
});

test('the probe pages raised no uncaught errors', () => {
  assert.deepEqual(harness.uncaughtErrors, []);
});

/** `{ count, min, p50, p95, max }` of `values` in ms (nearest rank), rounded to 0.1 ms. */
function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p) => round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]);
  return { count: sorted.length, min: round(sorted[0]), p50: at(0.5), p95: at(0.95), max: round(sorted.at(-1)) };
}

function round(ms) {
  return ms === undefined ? null : Math.round(ms * 10) / 10;
}

/**
 * The video counters of both peers that say where the time goes: the publisher's encoder
 * and send rate, the viewer's jitter buffer and decoder (all totals, in seconds).
 */
async function pipelineStats(publisher, viewer) {
  const sent = await publisher.evaluate(async () => {
    const out = {};
    for (const r of (await window.directoSession.pc.getStats()).values()) {
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        Object.assign(out, {
          totalEncodeTime: r.totalEncodeTime,
          framesEncoded: r.framesEncoded,
          bytesSent: r.bytesSent,
          sentSize: `${r.frameWidth}x${r.frameHeight}@${r.framesPerSecond ?? '?'}fps`,
          qualityLimitationReason: r.qualityLimitationReason,
        });
      }
      if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime !== undefined) {
        out.roundTripMs = r.currentRoundTripTime * 1000;
      }
    }
    return out;
  });
  const got = await viewer.evaluate(async () => {
    const out = {};
    for (const r of (await window.directoSession.pc.getStats()).values()) {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        Object.assign(out, {
          jitterBufferDelay: r.jitterBufferDelay,
          jitterBufferEmittedCount: r.jitterBufferEmittedCount,
          totalDecodeTime: r.totalDecodeTime,
          framesDecoded: r.framesDecoded,
          framesDropped: r.framesDropped,
        });
      }
    }
    return out;
  });
  return { ...sent, ...got };
}

// Simulcast in a real browser: the studio page publishes its camera as simulcast layers (the
// SDK's `publish({ simulcast: true })`, the studio's default); a watch page switched to low
// quality decodes the smaller picture (`frameWidth` of its inbound video), switched to high
// the larger one, and back to low — each switch at a keyframe of the new layer, with video
// flowing throughout.
//
// Run with the other browser tests (`npm test` in tests/browser, after `cargo build -p directo`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, TIMEOUT_MS, waitFor, waitForState } from './harness.mjs';

const PUBLISH_KEY = 'simulcast-test-key';
const STREAM = 'simulcast';

const harness = new Harness('simulcast');
let baseUrl = '';

before(async () => {
  await harness.start(['--publish-key', PUBLISH_KEY]);
  baseUrl = harness.baseUrl;
});

after(() => harness.close());

test('a watch page switches between the simulcast layers the studio publishes', async (t) => {
  const studio = await harness.openPage('simulcast-studio');
  const viewer = await harness.openPage('simulcast-watch');
  try {
    await studio.goto(`${baseUrl}/studio/${STREAM}#key=${PUBLISH_KEY}`);
    await waitForState(studio, ['idle']);
    await studio.waitForFunction(() => !document.getElementById('golive').disabled);
    await studio.click('#golive');
    await waitForState(studio, ['live']);

    // The browser sends at least two layers (it may drop one for a small camera picture).
    const layers = await waitFor('the studio to send two or more simulcast layers', async () => {
      const sent = await outboundLayers(studio);
      return sent.length >= 2 ? sent : null;
    });
    t.diagnostic(`layers sent: ${layers.map((l) => `${l.rid} ${l.width}x${l.height}`).join(', ')}`);

    await viewer.goto(`${baseUrl}/watch/${STREAM}`);
    await waitForState(viewer, ['live']);

    await viewer.evaluate(() => window.directoSession.setQuality('low'));
    const low = await waitFor('the low layer to be decoded', async () => {
      const width = await decodedWidth(viewer);
      return width && width <= Math.min(...layers.map((l) => l.width)) ? width : null;
    });
    await viewer.evaluate(() => window.directoSession.setQuality('high'));
    const high = await waitFor('the high layer to be decoded', async () => {
      const width = await decodedWidth(viewer);
      return width && width >= Math.max(...layers.map((l) => l.width)) ? width : null;
    });
    assert.ok(high > low, `high quality is the larger picture: ${high} vs ${low}`);
    await viewer.evaluate(() => window.directoSession.setQuality('low'));
    const lowAgain = await waitFor('the low layer again', async () => {
      const width = await decodedWidth(viewer);
      return width && width === low ? width : null;
    });
    t.diagnostic(`decoded widths: low ${low}, high ${high}, low again ${lowAgain}`);
    await harness.snapshot(viewer, 'simulcast-watch-low');

    // A quality the server does not know is refused with a clear error.
    const refused = await viewer.evaluate(() =>
      window.directoSession.setQuality('ultra').then(
        () => null,
        (error) => ({ code: error.code, message: error.message }),
      ),
    );
    assert.equal(refused?.code, 'bad_request', JSON.stringify(refused));
  } finally {
    await viewer.close();
    await studio.close();
  }
});

/** The studio's active outbound video layers: `{ rid, width, height }`, sending now. */
function outboundLayers(page) {
  return page.evaluate(async () => {
    const pc = window.directoSession?.pc;
    if (!pc) return [];
    const layers = [];
    for (const report of (await pc.getStats()).values()) {
      if (report.type === 'outbound-rtp' && report.kind === 'video' && report.frameWidth && report.active !== false) {
        layers.push({ rid: report.rid, width: report.frameWidth, height: report.frameHeight });
      }
    }
    return layers;
  });
}

/** The width of the video the page decodes now, or 0. */
function decodedWidth(page) {
  return page.evaluate(async () => {
    const pc = window.directoSession?.pc;
    if (!pc) return 0;
    for (const report of (await pc.getStats()).values()) {
      if (report.type === 'inbound-rtp' && report.kind === 'video') return report.frameWidth ?? 0;
    }
    return 0;
  });
}

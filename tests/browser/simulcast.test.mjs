// Simulcast in a real browser: the studio page publishes its camera as simulcast layers (the
// SDK's `publish({ simulcast: true })`, the studio's default); a watch page switched to low
// quality decodes the smaller picture (`frameWidth` of its inbound video), switched to high
// the larger one, and back to low — each switch at a keyframe of the new layer, with video
// flowing throughout.
//
// Then bandwidth estimation: of two `auto` viewers, one gets a link too thin for the top
// layer — `tc` on the loopback interface (an HTB class, matched on that viewer's UDP port;
// this kernel has no netem) — and must end up on the low layer while the other keeps the top
// layer without loss. With a short queue the link loses packets (receiver reports say so);
// behind a deep buffer it first queues them, and the viewer must move before the queue
// overflows (the delay trend of its transport-wide congestion control feedback). A link too
// thin even for the low layer gets that layer thinned to its lower temporal layers (Chrome's
// simulcast layers are L1T3): fewer frames a second, still moving, no freeze. Needs root
// and `tc` (iproute2); the shaping is removed when the test ends.
//
// Run with the other browser tests (`npm test` in tests/browser, after `cargo build -p directo`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, TIMEOUT_MS, goLive, waitFor, waitForState } from './harness.mjs';

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
    await goLive(studio, `${baseUrl}/studio/${STREAM}#key=${PUBLISH_KEY}`);

    // The browser sends at least two layers (it may drop one for a small camera picture).
    const layers = await waitFor('the studio to send two or more simulcast layers', async () => {
      const sent = await outboundLayers(studio);
      return sent.length >= 2 ? sent : null;
    });
    t.diagnostic(`layers sent: ${layers.map((l) => `${l.rid} ${l.width}x${l.height}`).join(', ')}`);

    // The API shows one video track with its layers, smallest first.
    const info = await waitFor('the API to list the layers', async () => {
      const body = await (await fetch(`${baseUrl}/api/streams/${STREAM}`)).json();
      const video = body.tracks.find((track) => track.kind === 'video');
      return video?.layers?.length >= 2 ? body : null;
    });
    const videoTracks = info.tracks.filter((track) => track.kind === 'video');
    assert.equal(videoTracks.length, 1, JSON.stringify(info));
    const sentRids = [...layers].sort((a, b) => a.width - b.width).map((l) => l.rid);
    assert.deepEqual(videoTracks[0].layers.filter((rid) => sentRids.includes(rid)), sentRids, JSON.stringify(info));

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

test('a viewer on a thin link gets the low layer, the others keep the top one', async (t) => {
  await thinLink(t, { stream: 'simulcast-bwe', queuePackets: 10 });
});

test('a viewer behind a deep buffer moves down as its delay grows, before its queue overflows', async (t) => {
  const { thinLost, thinReceived } = await thinLink(t, { stream: 'simulcast-bloat', queuePackets: 400 });
  // The queue (seconds deep) never overflowed: the move came from the delay trend in the
  // viewer's transport-wide feedback, not from loss.
  assert.ok(thinLost <= Math.max(3, thinReceived / 100), `the thin viewer lost ${thinLost} of ${thinReceived} packets`);
});

test('a viewer whose link cannot carry even the low layer gets it at a lower frame rate, still moving', async (t) => {
  await thinLink(t, { stream: 'simulcast-thinner', queuePackets: 100, thinner: true });
});

/**
 * Two `auto` viewers of a simulcast studio; one viewer's link is narrowed to room for the low
 * layer only (`thinner`: to about half of it), with a queue of `queuePackets`. It must move to
 * the low layer and stay there (`thinner`: at a fraction of its frame rate, still decoding);
 * the other keeps the top layer without loss. Returns the thin viewer's video packets lost
 * and received from the narrowing to the end.
 */
async function thinLink(t, { stream, queuePackets, thinner = false }) {
  const missing = shapingUnavailable();
  if (missing) {
    // Only where the machine forbids it (no root, no CAP_NET_ADMIN, no HTB in the kernel).
    // ./test.sh running as root sets DIRECTO_REQUIRE_ROOT_TESTS=1: there this test must run.
    if (process.env.DIRECTO_REQUIRE_ROOT_TESTS === '1') {
      assert.fail(`cannot shape the loopback link although this run must include root-only tests: ${missing}`);
    }
    t.skip(`cannot shape the loopback link: ${missing}`);
    return { thinLost: 0, thinReceived: 0 };
  }
  const studio = await harness.openPage(`${stream}-studio`);
  const fast = await harness.openPage(`${stream}-fast`);
  const thin = await harness.openPage(`${stream}-thin`);
  let shaped = false;
  try {
    await goLive(studio, `${baseUrl}/studio/${stream}#key=${PUBLISH_KEY}`);
    const layers = await waitFor('two simulcast layers with their bitrates', async () => {
      const first = await outboundLayers(studio);
      await sleep(2_000);
      const second = await outboundLayers(studio);
      const rates = second
        .map((layer) => {
          const before = first.find((l) => l.rid === layer.rid);
          return before ? { ...layer, bps: ((layer.bytes - before.bytes) * 8) / 2 } : null;
        })
        .filter((layer) => layer && layer.bps > 0)
        .sort((a, b) => a.width - b.width);
      return rates.length >= 2 ? rates : null;
    });
    const low = layers[0];
    const top = layers[layers.length - 1];
    t.diagnostic(`layers: ${layers.map((l) => `${l.rid} ${l.width}px ${Math.round(l.bps / 1000)} kbit/s`).join(', ')}`);

    for (const page of [fast, thin]) {
      await page.goto(`${baseUrl}/watch/${stream}`);
      await waitForState(page, ['live']);
      await waitFor('an auto viewer to get the top layer', async () => (await decodedWidth(page)) === top.width);
    }

    // Room for the low layer and audio, not for the top layer; or, thinner, for audio and
    // under half of the low layer (its base temporal layer carries ~40 % of its bits).
    const rate = thinner
      ? Math.round(low.bps * 0.45 + 64_000)
      : Math.round(Math.min(low.bps * 2 + 64_000, (low.bps + top.bps) / 2));
    assert.ok(rate < top.bps, `a thin link (${rate} bit/s) below the top layer (${top.bps} bit/s)`);
    const port = await localPort(thin);
    t.diagnostic(`shaping the thin viewer's port ${port} to ${Math.round(rate / 1000)} kbit/s, queue ${queuePackets} packets`);
    const thinBefore = await inbound(thin);
    shape(port, rate, queuePackets);
    shaped = true;

    const switched = Date.now();
    await waitFor('the thin viewer to move to the low layer', async () => (await decodedWidth(thin)) === low.width);
    t.diagnostic(`the thin viewer was on the low layer ${Date.now() - switched} ms after its link narrowed`);
    let lowFps = 0;
    if (thinner) {
      lowFps = (await outboundLayers(studio)).find((l) => l.rid === low.rid)?.fps ?? 0;
      const thinned = await waitFor('the thin viewer to get fewer frames of the low layer', async () => {
        const now = await inbound(thin);
        return now.fps > 0 && now.fps <= lowFps * 0.75 ? now : null;
      });
      t.diagnostic(`the thin viewer decodes ${thinned.fps} of the low layer's ${lowFps} frames/s, ${Date.now() - switched} ms after its link narrowed`);
    }
    // It stays there, and the other viewer never noticed.
    const fastBefore = await inbound(fast);
    await sleep(4_000);
    assert.equal(await decodedWidth(thin), low.width, 'the thin viewer stays on the low layer');
    if (thinner) {
      const before = await inbound(thin);
      await sleep(3_000);
      const after = await inbound(thin);
      assert.ok(after.framesDecoded - before.framesDecoded >= 3, `the thin viewer's picture still moves: ${JSON.stringify([before, after])}`);
      assert.ok(after.fps <= lowFps * 0.75, `the thin viewer stays on fewer frames: ${after.fps} of ${lowFps}/s`);
      assert.ok(after.freezeCount - before.freezeCount <= 1, `the thin viewer's picture does not keep freezing: ${JSON.stringify([before, after])}`);
    }
    const fastAfter = await inbound(fast);
    assert.equal(fastAfter.width, top.width, 'the other viewer keeps the top layer');
    assert.ok(fastAfter.framesDecoded > fastBefore.framesDecoded, 'the other viewer keeps decoding');
    // What a busy shared machine's loopback may drop (2 %, as in the Rust tests), at least two.
    const fastLost = fastAfter.packetsLost - fastBefore.packetsLost;
    const fastReceived = fastAfter.packetsReceived - fastBefore.packetsReceived;
    assert.ok(fastLost <= Math.max(2, fastReceived * 0.02), `the other viewer lost ${fastLost} of ${fastReceived} packets: ${JSON.stringify(fastAfter)}`);
    const thinAfter = await inbound(thin);
    const thinLost = thinAfter.packetsLost - thinBefore.packetsLost;
    const thinReceived = thinAfter.packetsReceived - thinBefore.packetsReceived;
    t.diagnostic(`the thin viewer lost ${thinLost} of ${thinReceived + thinLost} video packets`);
    await harness.snapshot(thin, `${stream}-thin-viewer`);
    return { thinLost, thinReceived };
  } finally {
    if (shaped) unshape();
    await thin.close();
    await fast.close();
    await studio.close();
  }
}

/** Limits UDP traffic to `port` on the loopback interface to `rate` bit/s, dropping beyond a queue of `queuePackets`. */
function shape(port, rate, queuePackets) {
  const tc = (...args) => execFileSync('tc', args, { stdio: 'pipe' });
  unshape();
  tc('qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', `${rate}bit`, 'ceil', `${rate}bit`);
  tc('qdisc', 'add', 'dev', 'lo', 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', String(queuePackets));
  tc('filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', '1:20');
}

/** Why `tc` cannot shape the loopback link here, or null when it can. */
function shapingUnavailable() {
  try {
    unshape();
    execFileSync('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10'], { stdio: 'pipe' });
    unshape();
    return null;
  } catch (e) {
    return String(e.stderr || e.message).trim();
  }
}

function unshape() {
  try {
    execFileSync('tc', ['qdisc', 'del', 'dev', 'lo', 'root'], { stdio: 'pipe' });
  } catch {
    // Nothing was installed.
  }
}

/** The UDP port of the page's selected local ICE candidate. */
function localPort(page) {
  return page.evaluate(async () => {
    const stats = await window.directoSession.pc.getStats();
    for (const report of stats.values()) {
      if (report.type === 'candidate-pair' && report.nominated && report.state === 'succeeded') {
        return stats.get(report.localCandidateId).port;
      }
    }
    return 0;
  });
}

/** The page's inbound video: width, frames decoded, packets lost and received. */
function inbound(page) {
  return page.evaluate(async () => {
    for (const report of (await window.directoSession.pc.getStats()).values()) {
      if (report.type === 'inbound-rtp' && report.kind === 'video') {
        return {
          width: report.frameWidth ?? 0,
          framesDecoded: report.framesDecoded ?? 0,
          packetsLost: report.packetsLost ?? 0,
          packetsReceived: report.packetsReceived ?? 0,
          fps: report.framesPerSecond ?? 0,
          freezeCount: report.freezeCount ?? 0,
        };
      }
    }
    return { width: 0, framesDecoded: 0, packetsLost: 0, packetsReceived: 0, fps: 0, freezeCount: 0 };
  });
}

/** The studio's active outbound video layers: `{ rid, width, height }`, sending now. */
function outboundLayers(page) {
  return page.evaluate(async () => {
    const pc = window.directoSession?.pc;
    if (!pc) return [];
    const layers = [];
    for (const report of (await pc.getStats()).values()) {
      if (report.type === 'outbound-rtp' && report.kind === 'video' && report.frameWidth && report.active !== false) {
        layers.push({ rid: report.rid, width: report.frameWidth, height: report.frameHeight, bytes: report.bytesSent, fps: report.framesPerSecond ?? 0 });
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

// A second browser engine: Debian's Firefox ESR (headless, driven over WebDriver BiDi by
// puppeteer-core) goes live from the studio page and watches on the watch page, against
// Directo and against Chromium. Firefox goes live with its fake camera and microphone, and a
// Firefox viewer and a Chromium viewer both decode its video and receive its audio; then a
// Firefox viewer watches a Chromium presenter. Chat crosses between the engines both ways: a
// message written in one browser appears in the other.
//
// Firefox gathers no ICE candidate on a loopback address, so the server and both browsers run
// inside a network namespace this test makes (`Netns` in harness.mjs: 10.99.0.1 on a veth
// pair that exists only in there, and a default route through it, without which Firefox
// offers no candidate at all), and the server announces that address; pages still load
// from http://127.0.0.1 (a secure context). That needs root: without it the tests are skipped.
// Firefox has no H264 of its own here (OpenH264 is a download), so video is VP8.
//
// Run with the other browser tests (`npm test` in tests/browser, after `cargo build -p
// directo`); screenshots, the server log and the pages' console go to
// <repo>/test-artifacts/firefox-*.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, Netns, goLive, waitFor, waitForState } from './harness.mjs';

const PUBLISH_KEY = 'firefox-test-key';
/** Time between the two stats samples that must show media still flowing. */
const SAMPLE_GAP_MS = 3_000;

const skip = Netns.unavailable() ?? false;
const harness = new Harness('firefox');
let baseUrl = '';

before(async () => {
  if (skip) return;
  await harness.start(['--publish-key', PUBLISH_KEY], { netns: Netns.create(), firefox: true });
  baseUrl = harness.baseUrl;
});

after(() => (skip ? undefined : harness.close()));

test('Firefox goes live; a Firefox and a Chromium viewer watch, and chat crosses both ways', { skip }, async () => {
  const stream = 'firefox-studio';
  const studio = await harness.openPage('ff-studio', { firefox: true });
  const ffViewer = await harness.openPage('ff-watch', { firefox: true });
  const crViewer = await harness.openPage('cr-watch');
  try {
    await goLive(studio, `${baseUrl}/studio/${stream}#key=${PUBLISH_KEY}`);
    for (const viewer of [ffViewer, crViewer]) await viewer.goto(`${baseUrl}/watch/${stream}?name=Viewer`);
    for (const viewer of [ffViewer, crViewer]) await assertWatching(viewer);
    await waitFor('the Firefox studio counts two viewers', async () =>
      Number(await studio.evaluate(() => document.getElementById('viewers').textContent)) >= 2,
    );

    await sendChat(crViewer, 'Hello from Chromium');
    await chatShows(studio, 'Hello from Chromium');
    await sendChat(studio, 'Hello from the Firefox studio');
    for (const viewer of [ffViewer, crViewer]) await chatShows(viewer, 'Hello from the Firefox studio');
  } finally {
    await harness.snapshot(studio, 'firefox-studio');
    await harness.snapshot(ffViewer, 'firefox-watch');
    await harness.snapshot(crViewer, 'firefox-chromium-watch');
    for (const page of [studio, ffViewer, crViewer]) await page.close();
  }
});

test('a Firefox viewer watches a Chromium presenter, and chat crosses both ways', { skip }, async () => {
  const stream = 'chromium-studio';
  const studio = await harness.openPage('cr-studio');
  const viewer = await harness.openPage('ff-watch-chromium', { firefox: true });
  try {
    await goLive(studio, `${baseUrl}/studio/${stream}#key=${PUBLISH_KEY}`);
    await viewer.goto(`${baseUrl}/watch/${stream}?name=Fox`);
    await assertWatching(viewer);

    await sendChat(viewer, 'Hello from Firefox');
    await chatShows(studio, 'Hello from Firefox');
    await sendChat(studio, 'Hello from the Chromium studio');
    await chatShows(viewer, 'Hello from the Chromium studio');
  } finally {
    await harness.snapshot(viewer, 'firefox-watch-chromium');
    for (const page of [studio, viewer]) await page.close();
  }
});

test('the pages raised no uncaught errors', { skip }, () => {
  assert.deepEqual(harness.uncaughtErrors, []);
});

/** Waits until the watch page is live and decoding VP8, then asserts video and audio keep arriving. */
async function assertWatching(viewer) {
  await waitFor(`${viewer.url()} decodes a first video frame`, async () => (await inboundStats(viewer)).framesDecoded > 0);
  await waitForState(viewer, ['live']);
  const first = await inboundStats(viewer);
  assert.equal(first.videoCodec, 'video/VP8', 'the video is VP8');
  await sleep(SAMPLE_GAP_MS);
  const second = await inboundStats(viewer);
  assert.ok(
    second.framesDecoded > first.framesDecoded,
    `video frames keep being decoded: ${first.framesDecoded} then ${second.framesDecoded}`,
  );
  assert.ok(
    second.audioPackets > first.audioPackets,
    `audio packets keep arriving: ${first.audioPackets} then ${second.audioPackets}`,
  );
}

/** The viewer's inbound totals and video codec from `getStats()` of the SDK's current peer. */
function inboundStats(page) {
  return page.evaluate(async () => {
    const totals = { framesDecoded: 0, audioPackets: 0, videoCodec: null };
    const pc = window.directoSession?.pc;
    if (!pc) return totals;
    const stats = await pc.getStats();
    for (const report of stats.values()) {
      if (report.type !== 'inbound-rtp') continue;
      if (report.kind === 'video') {
        totals.framesDecoded += report.framesDecoded ?? 0;
        totals.videoCodec = stats.get(report.codecId)?.mimeType ?? totals.videoCodec;
      }
      if (report.kind === 'audio') totals.audioPackets += report.packetsReceived ?? 0;
    }
    return totals;
  });
}

/** Types `text` into the page's chat box and presses Enter, as a person would. */
async function sendChat(page, text) {
  await waitFor(`the chat of ${page.url()} is open`, () => page.evaluate(() => window.directoSession?.chat.open === true));
  await page.focus('.chat-form input');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/** Waits until the page's chat shows a message with exactly `text`. */
async function chatShows(page, text) {
  await waitFor(`${page.url()} shows the chat message "${text}"`, () =>
    page.evaluate(
      (text) => [...document.querySelectorAll('.chat-list li.msg .msg-text')].some((p) => p.textContent === text),
      text,
    ),
  );
}

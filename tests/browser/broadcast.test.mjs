// End-to-end broadcast through Directo in a real browser, through the pages in web/ and
// the SDK they use (web/sdk/directo.js).
//
// Starts the `directo` binary, goes live from the studio (/studio/{stream}) with Chromium's
// fake camera and microphone, watches from three watch pages (/watch/{stream}) that must
// decode video and receive audio, exercises the chat (a viewer writes, the studio replies,
// every viewer sees the reply highlighted), moderation (/moderate/{stream} deletes a message
// and it disappears everywhere), the embeddable player (/embed/{stream}), and a viewer whose
// session the server ends (DELETE of its WHEP Location) coming back by itself, and a plain
// WHEP player (no SDK, no data channel) whose connection the server releases after setup and
// which keeps playing on the consent checks the server answers itself. Uses Debian's
// Chromium (/usr/bin/chromium, or $CHROMIUM); it never downloads a browser. The server and
// browser set-up is shared with the other test files in harness.mjs.
//
// Run: `npm ci && npm test` in tests/browser (builds and unit-tests the SDK first), after
// `cargo build -p directo`. Screenshots of every page, the server log
// (browser-server.log) and the pages' console (browser-console.log) go to
// <repo>/test-artifacts/. Join times (page open -> first decoded frame) are printed as
// test diagnostics.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, TIMEOUT_MS, goLive, inboundStats, waitFor, waitForState } from './harness.mjs';

const PUBLISH_KEY = 'browser-test-key';
const MODERATOR_KEY = 'browser-moderator-key';
/** Time between the two stats samples that must show media still flowing. */
const SAMPLE_GAP_MS = 3_000;
const VIEWERS = 3;

const harness = new Harness('browser');
let baseUrl = '';

before(async () => {
  await harness.start(['--publish-key', PUBLISH_KEY, '--moderator-key', MODERATOR_KEY]);
  baseUrl = harness.baseUrl;
});

after(() => harness.close());

test('the index page opens the watch and studio pages of a stream', async () => {
  const page = await harness.openPage('index');
  try {
    await page.goto(`${baseUrl}/`);
    await page.fill('#stream', 'lobby');
    await page.click('button[data-page="watch"]');
    await page.waitForURL(/\/watch\/lobby$/, { timeout: TIMEOUT_MS });
    await waitForState(page, ['waiting']);
    await page.goto(`${baseUrl}/`);
    await harness.snapshot(page, 'index');
    await page.fill('#stream', 'lobby');
    await page.click('button[data-page="studio"]');
    await page.waitForURL(/\/studio\/lobby$/, { timeout: TIMEOUT_MS });
  } finally {
    await page.close();
  }
});

test('the old publish.html and watch.html links still work', async () => {
  const page = await harness.openPage('legacy');
  try {
    await page.goto(`${baseUrl}/publish.html?stream=old-links&key=abc`);
    await page.waitForURL(/\/studio\/old-links#key=abc$/, { timeout: TIMEOUT_MS });
    assert.equal(await page.inputValue('#key'), 'abc', 'the key lands in the studio from the fragment');
    await page.goto(`${baseUrl}/watch.html?stream=old-links`);
    await waitForState(page, ['waiting']);
  } finally {
    await page.close();
  }
});

test('going live with a wrong key shows the server error', async () => {
  const page = await harness.openPage('studio-wrong-key');
  try {
    await page.goto(`${baseUrl}/studio/wrong-key#key=not-the-key`);
    await waitForState(page, ['idle']);
    await page.waitForFunction(() => !document.getElementById('golive').disabled);
    const posted = page.waitForResponse(
      (r) => r.url().includes('/whip/') && r.request().method() === 'POST',
      { timeout: TIMEOUT_MS },
    );
    await page.click('#golive');
    const response = await posted;
    assert.ok(
      [401, 403].includes(response.status()),
      `a wrong key is refused with 401 or 403, got ${response.status()}`,
    );
    const body = await response.json();
    assert.equal(typeof body.code, 'string', 'the error body has a string code');
    assert.equal(typeof body.message, 'string', 'the error body has a string message');
    await waitForState(page, ['error']);
    const status = await page.textContent('#status');
    assert.ok(status.includes(body.message), `status "${status}" shows "${body.message}"`);
  } finally {
    await harness.snapshot(page, 'studio-wrong-key');
    await page.close();
  }
});

test('studio to three viewers: media, chat with replies, moderation, embed, reconnect', async (t) => {
  const stream = 'launch';
  const studio = await harness.openPage('studio');
  const viewers = [];
  let moderator = null;
  let embed = null;
  try {
    await goLive(studio, `${baseUrl}/studio/${stream}#key=${PUBLISH_KEY}`);

    // Three viewers open at once; each must decode video and receive audio.
    const joins = await Promise.all(
      Array.from({ length: VIEWERS }, async (_, i) => {
        const page = await harness.openPage(`watch-${i + 1}`);
        viewers[i] = page;
        const opened = performance.now();
        await page.goto(`${baseUrl}/watch/${stream}?name=Viewer%20${i + 1}`);
        await waitFor(`viewer ${i + 1} decodes a first video frame`, async () => (await inboundStats(page))?.framesDecoded > 0);
        return Math.round(performance.now() - opened);
      }),
    );
    joins.forEach((ms, i) => t.diagnostic(`join time viewer ${i + 1} (watch page open -> first decoded frame): ${ms} ms`));
    await Promise.all(viewers.map((page) => assertMediaFlowing(page)));
    await Promise.all(viewers.map((page) => waitForState(page, ['live'])));
    await waitFor('the studio counts the viewers', async () => Number(await studio.textContent('#viewers')) >= VIEWERS);

    // The unmute button unmutes.
    await viewers[0].click('#unmute');
    assert.equal(await viewers[0].evaluate(() => document.getElementById('player').muted), false);

    // A viewer writes (markup stays text); the studio shows it and replies.
    const question = 'Hello from viewer 1 <b>not bold</b>';
    await sendChat(viewers[0], question);
    const inStudio = await messageItem(studio, question);
    assert.equal(await inStudio.locator('b').count(), 0, 'chat text is never parsed as HTML');
    await inStudio.locator('[data-action="reply"]').click();
    const answer = 'Thanks for asking, viewer 1!';
    await sendChat(studio, answer);
    for (const page of viewers) {
      const reply = await messageItem(page, answer);
      const classes = await reply.getAttribute('class');
      assert.match(classes, /from-presenter/, 'the presenter\'s message is highlighted');
      assert.match(classes, /is-reply/, 'it is shown as a reply');
      assert.ok((await reply.locator('.msg-quote').textContent()).includes('Viewer 1'), 'the reply quotes the question');
    }

    // The moderator deletes a message: it disappears everywhere.
    moderator = await harness.openPage('moderate');
    await moderator.goto(`${baseUrl}/moderate/${stream}#key=${MODERATOR_KEY}`);
    await waitForState(moderator, ['ready']);
    const spam = 'Buy cheap followers now';
    await sendChat(viewers[1], spam);
    for (const page of [studio, moderator, ...viewers]) await messageItem(page, spam);
    await moderator.waitForSelector('#participants li');
    await harness.snapshot(moderator, 'moderate');
    await (await messageItem(moderator, spam)).locator('[data-action="delete"]').click();
    for (const page of [studio, moderator, ...viewers]) {
      await page.waitForFunction(
        (text) => ![...document.querySelectorAll('.chat-list .msg-text')].some((p) => p.textContent === text),
        spam,
        { timeout: TIMEOUT_MS },
      );
    }

    // The embeddable player, branded from the query string.
    embed = await harness.openPage('embed');
    await embed.setViewportSize({ width: 640, height: 360 });
    await embed.goto(`${baseUrl}/embed/${stream}?title=Launch%20day&accent=%23e4572e`);
    await waitForState(embed, ['live']);
    assert.equal(await embed.textContent('#title'), 'Launch day');

    await sleep(1500); // A second of stats, so the studio's health read-outs have values.
    await harness.snapshot(studio, 'studio');
    for (const [i, page] of viewers.entries()) await harness.snapshot(page, `watch-${i + 1}`);
    await harness.snapshot(embed, 'embed');
    await viewers[2].setViewportSize({ width: 390, height: 844 });
    await harness.snapshot(viewers[2], 'watch-phone', { fullPage: true });
    await viewers[2].setViewportSize({ width: 1100, height: 760 });

    // The server ends viewer 1's session: it comes back by itself, no reload.
    const first = await viewers[0].evaluate(() => {
      window.reconnects = 0;
      window.directoSession.on('reconnected', () => (window.reconnects += 1));
      return { location: window.directoSession.location, session: window.directoSession.sessionId };
    });
    const dropped = await fetch(first.location, { method: 'DELETE' });
    assert.ok(dropped.ok, `DELETE ${first.location} answers ${dropped.status}`);
    const dropAt = performance.now();
    await waitFor('viewer 1 reconnects with a new session', () =>
      viewers[0].evaluate((old) => window.reconnects > 0 && window.directoSession.sessionId !== old, first.session),
    );
    await waitFor('viewer 1 decodes frames again', async () => (await inboundStats(viewers[0]))?.framesDecoded > 0);
    t.diagnostic(`viewer 1 back (server dropped it -> decoding again): ${Math.round(performance.now() - dropAt)} ms`);
    await assertMediaFlowing(viewers[0]);
    await waitForState(viewers[0], ['live']);
    assert.equal(await viewers[0].evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');

    // The presenter stops: every viewer sees the end.
    const deleted = studio.waitForResponse(
      (r) => r.url().includes('/whip/') && r.request().method() === 'DELETE',
      { timeout: TIMEOUT_MS },
    );
    await studio.click('#stop');
    await waitForState(studio, ['idle']);
    assert.ok((await deleted).ok(), 'the WHIP session is DELETEd');
    await Promise.all(viewers.map((page) => waitForState(page, ['ended'])));
    await harness.snapshot(viewers[1], 'watch-ended');
  } finally {
    await harness.snapshot(studio, 'studio-final');
    for (const page of [studio, moderator, embed, ...viewers]) await page?.close();
  }
});

test('a viewer who arrives before the presenter gets media once it is live', async () => {
  const stream = 'early-viewer';
  const viewer = await harness.openPage('watch-early');
  const studio = await harness.openPage('studio-late');
  try {
    await viewer.goto(`${baseUrl}/watch/${stream}`);
    await waitForState(viewer, ['waiting']);
    assert.match(await viewer.textContent('#overlay-text'), /waiting for the presenter/i);
    await harness.snapshot(viewer, 'watch-waiting');
    await goLive(studio, `${baseUrl}/studio/${stream}#key=${PUBLISH_KEY}`);
    await waitFor('the early viewer decodes a first video frame', async () => (await inboundStats(viewer))?.framesDecoded > 0);
    await assertMediaFlowing(viewer);
    await waitForState(viewer, ['live']);
  } finally {
    await viewer.close();
    await studio.close();
  }
});

test('a plain WHEP player is released after setup and keeps playing on its ICE consent checks', async () => {
  // A player without the SDK and without a data channel: the server drops its WebRTC
  // connection once it is set up and answers the browser's consent checks itself.
  const stream = 'plain-whep';
  const studio = await harness.openPage('studio-plain');
  const player = await harness.openPage('plain-whep');
  try {
    await goLive(studio, `${baseUrl}/studio/${stream}#key=${PUBLISH_KEY}`);
    const before = await metric('directo_viewer_connections_released_total');
    await player.goto(`${baseUrl}/`);
    await player.evaluate(async (name) => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((done) => {
        if (pc.iceGatheringState === 'complete') return done();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done());
      });
      const response = await fetch(`/whep/${name}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: pc.localDescription.sdp,
      });
      if (response.status !== 201) throw new Error(`WHEP answered ${response.status}`);
      await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
      window.plainPc = pc;
    }, stream);
    const decoded = () =>
      player.evaluate(async () => {
        let frames = 0;
        for (const report of (await window.plainPc.getStats()).values()) {
          if (report.type === 'inbound-rtp' && report.kind === 'video') frames += report.framesDecoded ?? 0;
        }
        return frames;
      });
    await waitFor('the plain player decodes a first video frame', async () => (await decoded()) > 0);
    await waitFor('its connection to be released on the server', async () =>
      (await metric('directo_viewer_connections_released_total')) > before,
    );
    // Consent checks answered by the engine after the release; the browser stays connected.
    const answered = await metric('directo_released_viewer_consent_total');
    await waitFor('the browser to make consent checks and get answers', async () =>
      (await metric('directo_released_viewer_consent_total')) >= answered + 2,
    );
    const first = await decoded();
    await sleep(SAMPLE_GAP_MS);
    const second = await decoded();
    assert.ok(second > first, `video frames keep being decoded: ${first} then ${second}`);
    assert.equal(await player.evaluate(() => window.plainPc.connectionState), 'connected');
  } finally {
    await player.close();
    await studio.close();
  }
});

test('the pages raised no uncaught errors', () => {
  assert.deepEqual(harness.uncaughtErrors, []);
});

/** Types `text` into the page's chat box and sends it. */
async function sendChat(page, text) {
  await page.waitForFunction(() => window.directoSession?.chat.open, null, { timeout: TIMEOUT_MS });
  await page.fill('.chat-form input', text);
  await page.press('.chat-form input', 'Enter');
}

/** Waits until the page's chat shows a message with exactly `text`; returns its `<li>`. */
async function messageItem(page, text) {
  const item = page.locator('.chat-list li.msg').filter({
    has: page.locator('.msg-text', { hasText: text }),
  });
  await item.first().waitFor({ timeout: TIMEOUT_MS });
  return item.first();
}

/** The value of a series on the server's `/metrics` (0 when it is not there yet). */
async function metric(name) {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** Samples the viewer twice and asserts video frames and audio packets keep arriving. */
async function assertMediaFlowing(viewer) {
  const first = await inboundStats(viewer);
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

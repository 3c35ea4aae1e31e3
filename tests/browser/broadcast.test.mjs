// End-to-end broadcast through Directo in a real browser.
//
// Starts the `directo` binary, publishes Chromium's fake camera and
// microphone from web/publish.html over WHIP, watches it from
// web/watch.html over WHEP, and checks with `getStats()` that the viewer
// keeps decoding video and receiving audio. Uses Debian's Chromium
// (/usr/bin/chromium, or $CHROMIUM); it never downloads a browser.
//
// Run: `npm ci && node --test` in tests/browser, after `cargo build -p directo`.
// Screenshots, the server log (browser-server.log) and the pages' console
// (browser-console.log) go to <repo>/test-artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DIRECTO_BIN = process.env.DIRECTO_BIN ?? join(REPO, 'target/debug/directo');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(REPO, 'test-artifacts');
const PUBLISH_KEY = 'browser-test-key';
/** Generous on purpose: a 2-core CI machine may be compiling at the same time. */
const TIMEOUT_MS = 60_000;
/** Time between the two stats samples that must show media still flowing. */
const SAMPLE_GAP_MS = 3_000;

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

let server = null;
let serverLog = '';
let baseUrl = '';
let dataDir = null;
let profileDir = null;
let browser = null;
const consoleLines = [];
const uncaughtErrors = [];

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  dataDir = await mkdtemp(join(tmpdir(), 'directo-data-'));
  profileDir = await mkdtemp(join(tmpdir(), 'directo-chromium-'));
  const httpPort = await freeTcpPort();
  const mediaPort = await freeUdpPort();
  baseUrl = `http://127.0.0.1:${httpPort}`;

  server = spawn(
    DIRECTO_BIN,
    [
      'serve',
      '--http', `127.0.0.1:${httpPort}`,
      '--media-port', String(mediaPort),
      '--public-ip', '127.0.0.1',
      '--data-dir', dataDir,
      '--publish-key', PUBLISH_KEY,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { RUST_LOG: 'info', ...process.env, NO_COLOR: '1' } },
  );
  server.stdout.setEncoding('utf8').on('data', (chunk) => (serverLog += chunk));
  server.stderr.setEncoding('utf8').on('data', (chunk) => (serverLog += chunk));
  server.on('error', (error) => (serverLog += `\nspawn ${DIRECTO_BIN} failed: ${error.message}\n`));
  process.on('exit', () => server?.kill('SIGKILL'));
  await waitForHealthy();

  // A persistent context is how Playwright takes a user data dir of our
  // choosing; a fresh one per run keeps runs independent.
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 960, height: 720 },
  });
  browser.setDefaultTimeout(TIMEOUT_MS);
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer();
  await writeFile(join(ARTIFACTS, 'browser-server.log'), serverLog);
  await writeFile(join(ARTIFACTS, 'browser-console.log'), consoleLines.join('\n') + '\n');
  for (const dir of [dataDir, profileDir]) {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
});

test('the index page sends a stream name to the watch page', async () => {
  const page = await openPage('index');
  await page.goto(`${baseUrl}/`);
  await page.fill('input[name=stream]', 'lobby');
  await page.click('button[formaction="watch.html"]');
  await page.waitForURL(/\/watch\.html\?stream=lobby$/, { timeout: TIMEOUT_MS });
  await snapshot(page, 'index');
  await page.close();
});

test('publishing with a wrong key shows the server error', async () => {
  const page = await openPage('publish-wrong-key');
  try {
    await page.goto(`${baseUrl}/publish.html?stream=wrong-key&key=not-the-key`);
    await waitForState(page, ['idle']);
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
    await snapshot(page, 'publish-wrong-key');
    await page.close();
  }
});

test('a viewer receives the published video and audio', async (t) => {
  const stream = 'browser-test';
  const publisher = await openPage('publish');
  const viewer = await openPage('watch');
  try {
    await goLive(publisher, stream);

    const opened = performance.now();
    await viewer.goto(`${baseUrl}/watch.html?stream=${stream}`);
    await waitFor('the viewer decodes a first video frame', async () => {
      const stats = await inboundStats(viewer);
      return stats !== null && stats.framesDecoded > 0;
    });
    const joinMs = Math.round(performance.now() - opened);
    t.diagnostic(`join time (watch page open -> first decoded frame): ${joinMs} ms`);

    await assertMediaFlowing(viewer);
    await waitForState(viewer, ['live']);

    await viewer.click('#unmute');
    assert.equal(await viewer.evaluate(() => document.getElementById('player').muted), false);
  } finally {
    await snapshot(publisher, 'publish');
    await snapshot(viewer, 'watch');
  }

  const deleted = publisher.waitForResponse(
    (r) => r.url().includes('/whip/') && r.request().method() === 'DELETE',
    { timeout: TIMEOUT_MS },
  );
  await publisher.click('#stop');
  await waitForState(publisher, ['idle']);
  const response = await deleted;
  assert.ok(response.ok(), `DELETE of the WHIP session succeeds, got ${response.status()}`);
  await publisher.close();
  await viewer.close();
});

test('a viewer who arrives before the publisher gets media once it is live', async () => {
  const stream = 'early-viewer';
  const viewer = await openPage('watch-early');
  const publisher = await openPage('publish-late');
  try {
    await viewer.goto(`${baseUrl}/watch.html?stream=${stream}`);
    await waitForState(viewer, ['waiting']);
    await goLive(publisher, stream);
    await waitFor('the early viewer decodes a first video frame', async () => {
      const stats = await inboundStats(viewer);
      return stats !== null && stats.framesDecoded > 0;
    });
    await assertMediaFlowing(viewer);
  } finally {
    await snapshot(viewer, 'watch-early');
  }
  await publisher.close();
  await viewer.close();
});

test('the pages raised no uncaught errors', () => {
  assert.deepEqual(uncaughtErrors, []);
});

/** Opens a page whose console and uncaught errors are kept under `name`. */
async function openPage(name) {
  const page = await browser.newPage();
  page.on('console', (message) => consoleLines.push(`[${name}] ${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => {
    consoleLines.push(`[${name}] uncaught: ${error.message}`);
    uncaughtErrors.push(`[${name}] ${error.message}`);
  });
  return page;
}

/**
 * Saves a screenshot of `page` as <repo>/test-artifacts/<name>.png. Never
 * throws: it runs in `finally` blocks, where it must not hide the real failure.
 */
async function snapshot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), timeout: 10_000 }).catch((error) => {
    consoleLines.push(`[${name}] screenshot failed: ${error.message}`);
  });
}

/** Opens publish.html for `stream`, presses "Go live" and waits until it is live. */
async function goLive(page, stream) {
  await page.goto(`${baseUrl}/publish.html?stream=${stream}&key=${PUBLISH_KEY}`);
  await waitForState(page, ['idle']);
  await page.click('#golive');
  await waitForState(page, ['live']);
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

/** The viewer's inbound totals from `getStats()`, or null before it has a peer. */
function inboundStats(page) {
  return page.evaluate(async () => {
    const pc = window.directoPc;
    if (!pc) return null;
    const totals = { framesDecoded: 0, audioPackets: 0 };
    for (const report of (await pc.getStats()).values()) {
      if (report.type !== 'inbound-rtp') continue;
      if (report.kind === 'video') totals.framesDecoded += report.framesDecoded ?? 0;
      if (report.kind === 'audio') totals.audioPackets += report.packetsReceived ?? 0;
    }
    return totals;
  });
}

/**
 * Waits until the page's `window.directoState` is one of `wanted`. Fails at
 * once, with the status text, if the page reports an error it was not expecting.
 */
async function waitForState(page, wanted) {
  const handle = await page.waitForFunction(
    (wanted) => {
      const state = window.directoState;
      if (wanted.includes(state)) return { state };
      if (state === 'error') return { state, status: document.getElementById('status').textContent };
      return false;
    },
    wanted,
    { timeout: TIMEOUT_MS },
  );
  const { state, status } = await handle.jsonValue();
  assert.ok(wanted.includes(state), `page ${page.url()} reached ${wanted.join('/')}, got: ${status}`);
}

/** Polls `check` until it returns true, failing with `what` after the timeout. */
async function waitFor(what, check) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(200);
  }
  assert.fail(`timed out after ${TIMEOUT_MS} ms waiting until ${what}`);
}

/** Waits for the server's GET /healthz to answer 200, or fails with its log. */
async function waitForHealthy() {
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) {
      assert.fail(`directo exited (${server.exitCode ?? server.signalCode}) before it was healthy:\n${serverLog}`);
    }
    try {
      const response = await fetch(`${baseUrl}/healthz`);
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(250);
  }
  assert.fail(`directo did not answer GET /healthz 200 within ${TIMEOUT_MS} ms:\n${serverLog}`);
}

/** Ends the server: SIGTERM for a graceful shutdown, SIGKILL if it hangs. */
async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = once(server, 'exit');
  server.kill('SIGTERM');
  const graceful = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!graceful) {
    server.kill('SIGKILL');
    await exited;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freeTcpPort() {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address();
  probe.close();
  await once(probe, 'close');
  return port;
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
async function freeUdpPort() {
  const probe = createSocket('udp4');
  probe.bind(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address();
  probe.close();
  return port;
}

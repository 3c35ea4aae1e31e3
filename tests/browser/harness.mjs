// What every browser test file needs: a `directo` server on free ports with a fresh data
// dir, Debian's Chromium (/usr/bin/chromium, or $CHROMIUM; never a downloaded browser)
// with a fresh profile, pages whose console and uncaught errors are kept, screenshots, and
// the server log and the pages' console written to <repo>/test-artifacts/ at the end.

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
/** Where screenshots and logs go. */
export const ARTIFACTS = join(REPO, 'test-artifacts');
/** Generous on purpose: a 2-core CI machine may be compiling at the same time. */
export const TIMEOUT_MS = 60_000;

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
  // Many pages share one browser here; none of them may be throttled as a background tab.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** A running server and browser; `close()` ends both and writes the logs. */
export class Harness {
  /** The server's base URL, `http://127.0.0.1:<port>`. */
  baseUrl = '';
  /** The Playwright browser context every page opens in. */
  browser = null;
  /** Every page's console lines, `[name] type: text`. */
  consoleLines = [];
  /** Uncaught page errors, `[name] message`: a test asserts this stays empty. */
  uncaughtErrors = [];
  #name;
  #server = null;
  #serverLog = '';
  #dirs = [];

  /** `name` prefixes the log files in test-artifacts/ (`<name>-server.log`, `<name>-console.log`). */
  constructor(name) {
    this.#name = name;
  }

  /** Starts `directo serve` with `serverArgs` on top of ports, address and data dir, then Chromium. */
  async start(serverArgs = []) {
    await mkdir(ARTIFACTS, { recursive: true });
    const dataDir = await mkdtemp(join(tmpdir(), 'directo-data-'));
    const profileDir = await mkdtemp(join(tmpdir(), 'directo-chromium-'));
    this.#dirs.push(dataDir, profileDir);
    const httpPort = await freeTcpPort();
    const mediaPort = await freeUdpPort();
    this.baseUrl = `http://127.0.0.1:${httpPort}`;

    const server = spawn(
      DIRECTO_BIN,
      [
        'serve',
        '--http', `127.0.0.1:${httpPort}`,
        '--media-port', String(mediaPort),
        '--public-ip', '127.0.0.1',
        '--data-dir', dataDir,
        ...serverArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { RUST_LOG: 'info', ...process.env, NO_COLOR: '1' } },
    );
    this.#server = server;
    server.stdout.setEncoding('utf8').on('data', (chunk) => (this.#serverLog += chunk));
    server.stderr.setEncoding('utf8').on('data', (chunk) => (this.#serverLog += chunk));
    server.on('error', (error) => (this.#serverLog += `\nspawn ${DIRECTO_BIN} failed: ${error.message}\n`));
    process.on('exit', () => server.kill('SIGKILL'));
    await this.#waitForHealthy();

    // A persistent context is how Playwright takes a user data dir of our
    // choosing; a fresh one per run keeps runs independent.
    this.browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 760 },
    });
    this.browser.setDefaultTimeout(TIMEOUT_MS);
  }

  /** Closes the browser, stops the server and writes the logs; removes the temporary dirs. */
  async close() {
    await this.browser?.close().catch(() => {});
    await this.#stopServer();
    await writeFile(join(ARTIFACTS, `${this.#name}-server.log`), this.#serverLog);
    await writeFile(join(ARTIFACTS, `${this.#name}-console.log`), this.consoleLines.join('\n') + '\n');
    for (const dir of this.#dirs) await rm(dir, { recursive: true, force: true });
  }

  /** Opens a page whose console and uncaught errors are kept under `name`. */
  async openPage(name) {
    const page = await this.browser.newPage();
    page.on('console', (message) => this.consoleLines.push(`[${name}] ${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => {
      this.consoleLines.push(`[${name}] uncaught: ${error.message}`);
      this.uncaughtErrors.push(`[${name}] ${error.message}`);
    });
    return page;
  }

  /**
   * Saves a screenshot of `page` as <repo>/test-artifacts/<name>.png. Never
   * throws: it runs in `finally` blocks, where it must not hide the real failure.
   */
  async snapshot(page, name, options = {}) {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), timeout: 10_000, ...options }).catch((error) => {
      this.consoleLines.push(`[${name}] screenshot failed: ${error.message}`);
    });
  }

  /** Waits for the server's GET /healthz to answer 200, or fails with its log. */
  async #waitForHealthy() {
    const server = this.#server;
    const deadline = Date.now() + TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (server.exitCode !== null || server.signalCode !== null) {
        assert.fail(`directo exited (${server.exitCode ?? server.signalCode}) before it was healthy:\n${this.#serverLog}`);
      }
      try {
        const response = await fetch(`${this.baseUrl}/healthz`);
        if (response.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await sleep(250);
    }
    assert.fail(`directo did not answer GET /healthz 200 within ${TIMEOUT_MS} ms:\n${this.#serverLog}`);
  }

  /** Ends the server: SIGTERM for a graceful shutdown, SIGKILL if it hangs. */
  async #stopServer() {
    const server = this.#server;
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    const exited = once(server, 'exit');
    server.kill('SIGTERM');
    const graceful = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!graceful) {
      server.kill('SIGKILL');
      await exited;
    }
  }
}

/** Polls `check` until it returns something truthy (returned), failing with `what` after the timeout. */
export async function waitFor(what, check) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    const value = await check();
    if (value) return value;
    await sleep(200);
  }
  assert.fail(`timed out after ${TIMEOUT_MS} ms waiting until ${what}`);
}

/** Opens a studio page at `url` (`/studio/{stream}#key=…`), presses "Go live" and waits until it is live. */
export async function goLive(page, url) {
  await page.goto(url);
  await waitForState(page, ['idle']);
  await page.waitForFunction(() => !document.getElementById('golive').disabled);
  await page.click('#golive');
  await waitForState(page, ['live']);
}

/**
 * Waits until the page's `window.directoState` is one of `wanted`. Fails at
 * once, with the status text, if the page reports an error it was not expecting.
 */
export async function waitForState(page, wanted) {
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

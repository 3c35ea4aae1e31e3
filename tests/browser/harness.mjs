// What every browser test file needs: a `directo` server on free ports with a fresh data
// dir, Debian's Chromium (/usr/bin/chromium, or $CHROMIUM; driven by playwright-core) and,
// for the tests that ask, Debian's Firefox ESR (/usr/bin/firefox-esr, or $FIREFOX; driven
// over WebDriver BiDi by puppeteer-core), each with a fresh profile and never a downloaded
// browser; pages whose console and uncaught errors are kept, screenshots, and the server log
// and the pages' console written to <repo>/test-artifacts/ at the end. A test may run the
// server and browsers inside a network namespace of its own (`Netns`), which Firefox needs.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DIRECTO_BIN = process.env.DIRECTO_BIN ?? join(REPO, 'target/debug/directo');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
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

/**
 * Firefox preferences for headless WebRTC against a local server; Firefox has no command-line
 * switches for these.
 */
const FIREFOX_PREFS = {
  // A fake camera and microphone, granted without a prompt.
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  // Only one window has the focus, and Firefox holds back the devices of the others (the
  // studio lists them before it opens the camera) until they get it.
  'media.devices.unfocused.enabled': true,
  // Host candidates as addresses: nothing here resolves the mDNS names Firefox would send.
  'media.peerconnection.ice.obfuscate_host_addresses': false,
};

/** A running server and browsers; `close()` ends them and writes the logs. */
export class Harness {
  /** The server's base URL, `http://127.0.0.1:<port>`. */
  baseUrl = '';
  /** The Playwright browser context every Chromium page opens in. */
  browser = null;
  /** The Puppeteer browser every Firefox page opens in, once `start` was asked for one. */
  firefox = null;
  /** Every page's console lines, `[name] type: text`. */
  consoleLines = [];
  /** Uncaught page errors, `[name] message`: a test asserts this stays empty. */
  uncaughtErrors = [];
  #name;
  #server = null;
  #serverLog = '';
  #dirs = [];
  #netns = null;

  /** `name` prefixes the log files in test-artifacts/ (`<name>-server.log`, `<name>-console.log`). */
  constructor(name) {
    this.#name = name;
  }

  /**
   * Starts `directo serve` with `serverArgs` on top of ports, address and data dir, then
   * Chromium (unless `chromium` is false: another harness's browser opens this server's pages),
   * and Firefox if `firefox`. With `netns`, all of them run inside that namespace,
   * and the server announces the namespace's address for media.
   */
  async start(serverArgs = [], { netns = null, firefox = false, chromium = true } = {}) {
    this.#netns = netns;
    await mkdir(ARTIFACTS, { recursive: true });
    const dataDir = await this.#tempDir('directo-data-');
    const httpPort = await freeTcpPort();
    const mediaPort = await freeUdpPort();
    this.baseUrl = `http://127.0.0.1:${httpPort}`;

    const args = [
      'serve',
      '--http', `127.0.0.1:${httpPort}`,
      '--media-port', String(mediaPort),
      '--public-ip', netns ? Netns.ADDRESS : '127.0.0.1',
      '--data-dir', dataDir,
      ...serverArgs,
    ];
    const [command, commandArgs] = netns ? ['ip', netns.execArgs(DIRECTO_BIN, args)] : [DIRECTO_BIN, args];
    const server = spawn(command, commandArgs, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { RUST_LOG: 'info', ...process.env, NO_COLOR: '1' },
    });
    this.#server = server;
    server.stdout.setEncoding('utf8').on('data', (chunk) => (this.#serverLog += chunk));
    server.stderr.setEncoding('utf8').on('data', (chunk) => (this.#serverLog += chunk));
    server.on('error', (error) => (this.#serverLog += `\nspawn ${command} failed: ${error.message}\n`));
    process.on('exit', () => server.kill('SIGKILL'));
    // The test itself (fetches, health checks) stays outside the namespace.
    await netns?.forward(httpPort);
    await this.#waitForHealthy();

    if (chromium) this.browser = await launchChromium(await this.#tempDir('directo-chromium-'), netns);
    if (firefox) this.firefox = await launchFirefox(await this.#tempDir('directo-firefox-'), netns);
  }

  /** Closes the browsers, stops the server and writes the logs; removes the temporary dirs and the namespace. */
  async close() {
    await this.browser?.close().catch(() => {});
    await this.firefox?.close().catch(() => {});
    await this.#stopServer();
    await writeFile(join(ARTIFACTS, `${this.#name}-server.log`), this.#serverLog);
    await writeFile(join(ARTIFACTS, `${this.#name}-console.log`), this.consoleLines.join('\n') + '\n');
    for (const dir of this.#dirs) await rm(dir, { recursive: true, force: true });
    this.#netns?.close();
  }

  /**
   * Opens a page whose console and uncaught errors are kept under `name`, in Firefox if
   * `firefox`. Tests that use both browsers keep to what Playwright's and Puppeteer's pages
   * share: goto, evaluate, click, focus, keyboard, screenshot, close.
   */
  async openPage(name, { firefox = false } = {}) {
    // A window each in Firefox, as pages side by side: Firefox slows a background tab's timers
    // to one a second (Chromium gets switches for that).
    const page = firefox ? await this.firefox.newPage({ type: 'window' }) : await this.browser.newPage();
    if (firefox) page.setDefaultTimeout(TIMEOUT_MS);
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

  async #tempDir(prefix) {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.#dirs.push(dir);
    return dir;
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

/**
 * Debian's Chromium with a fresh profile in `profileDir` (inside `netns` if given), as a
 * Playwright persistent context: that is how Playwright takes a user data dir of our choosing.
 */
export async function launchChromium(profileDir, netns = null) {
  const browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: netns ? await netns.launcher(CHROMIUM) : CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 760 },
  });
  browser.setDefaultTimeout(TIMEOUT_MS);
  return browser;
}

/**
 * Debian's Firefox ESR with a fresh profile in `profileDir` (inside `netns` if given), driven
 * over WebDriver BiDi by Puppeteer.
 */
export async function launchFirefox(profileDir, netns = null) {
  // Puppeteer reaches Firefox over a WebSocket (no pipe with BiDi): a port of our choosing,
  // so that the same port outside the namespace can lead to it.
  const debuggingPort = await freeTcpPort();
  await netns?.forward(debuggingPort);
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: netns ? await netns.launcher(FIREFOX) : FIREFOX,
    headless: true,
    userDataDir: profileDir,
    args: [`--remote-debugging-port=${debuggingPort}`],
    extraPrefsFirefox: FIREFOX_PREFS,
    defaultViewport: { width: 1100, height: 760 },
    timeout: TIMEOUT_MS,
    protocolTimeout: TIMEOUT_MS * 3,
  });
}

/**
 * A network namespace of the test's own with one more address than loopback: 10.99.0.1 on a
 * veth pair that exists only inside it. Firefox gathers no ICE candidate on a loopback
 * address, so a test that runs Firefox puts it, the other browser and the server in here.
 * Only the namespace's own addresses are ever used. `close()` deletes it (and the pair with
 * it); so does the process's exit, whatever ends the test. Needs root (`Netns.unavailable`).
 */
export class Netns {
  /** The address inside the namespace the server announces to peers. */
  static ADDRESS = '10.99.0.1';
  /** The namespace's name: `directo-test-<process id>-<count>`. */
  name;
  #forwarders = [];
  #relays = new Set();
  #closed = false;
  /** Where `launcher` writes its scripts. */
  #dir;

  constructor(name) {
    this.name = name;
  }

  /** Why a namespace cannot be made here (not root, no `ip`), or null when it can. */
  static unavailable() {
    if (process.getuid?.() !== 0) return 'a network namespace needs root';
    try {
      execFileSync('ip', ['-V'], { stdio: 'pipe' });
      return null;
    } catch (error) {
      return `no \`ip\` (iproute2): ${error.message}`;
    }
  }

  /** Makes the namespace: loopback up, and the veth pair with the address, both ends up. */
  static create() {
    const netns = new Netns(`directo-test-${process.pid}-${created.size}`);
    const ip = (...args) => execFileSync('ip', args, { stdio: 'pipe' });
    // Namespaces left by runs that were killed before they could delete theirs: made by a
    // process that is gone (or by an earlier process with our id), and with nothing running
    // inside, so that a run in another process-id namespace is never touched.
    const listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const [, name, pid] of listed.matchAll(/^(directo-test-(\d+)-\d+)\b/gm)) {
      const stale = Number(pid) === process.pid ? !created.has(name) : !processAlive(Number(pid));
      if (stale && execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).trim() === '') {
        new Netns(name).close();
      }
    }
    created.add(netns.name);
    process.on('exit', () => netns.close());
    netns.#dir = mkdtempSync(join(tmpdir(), 'directo-netns-'));
    ip('netns', 'add', netns.name);
    const inside = (...args) => ip('netns', 'exec', netns.name, 'ip', ...args);
    inside('link', 'set', 'lo', 'up');
    inside('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
    inside('addr', 'add', `${Netns.ADDRESS}/24`, 'dev', 'd0');
    inside('link', 'set', 'd0', 'up');
    inside('link', 'set', 'd1', 'up');
    // Without a default route Firefox offers no candidate at all, with one it offers the
    // address the route leaves from (Firefox 153 ESR; `media.peerconnection.ice.loopback`
    // changes neither). Nothing routed here leaves the namespace: d1 is in it too, has no
    // address, and the namespace forwards nothing.
    inside('route', 'add', 'default', 'dev', 'd0');
    return netns;
  }

  /** The arguments of `ip` that run `command` with `args` inside the namespace. */
  execArgs(command, args = []) {
    return ['netns', 'exec', this.name, command, ...args];
  }

  /**
   * An executable (a script) that runs `command` inside the namespace, for the browser
   * launchers, which take an executable path and nothing to run it with.
   */
  async launcher(command) {
    const path = join(this.#dir, command.split('/').pop());
    await writeFile(path, `#!/bin/sh\nexec ip netns exec ${this.name} '${command}' "$@"\n`);
    await chmod(path, 0o755);
    return path;
  }

  /**
   * Makes TCP `port` on 127.0.0.1 outside lead to the same port on 127.0.0.1 inside: each
   * connection gets a small relay process started inside the namespace.
   */
  async forward(port) {
    const server = createServer((socket) => {
      const relay = spawn('ip', this.execArgs(process.execPath, ['-e', RELAY, String(port)]), {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      this.#relays.add(relay);
      relay.on('exit', () => {
        this.#relays.delete(relay);
        socket.destroy();
      });
      relay.stdin.on('error', () => relay.kill());
      socket.on('error', () => relay.kill());
      socket.on('close', () => relay.kill());
      socket.pipe(relay.stdin);
      relay.stdout.pipe(socket);
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.#forwarders.push(server);
  }

  /** Stops the forwarding and deletes the namespace; a second call does nothing. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const server of this.#forwarders) server.close();
    for (const relay of this.#relays) relay.kill('SIGKILL');
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'pipe' });
    } catch {
      // There was none.
    }
  }
}

/** The names of the namespaces this process made. */
const created = new Set();

/** Whether a process with id `pid` exists. */
function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The relay `Netns.forward` runs inside: stdin and stdout to 127.0.0.1:<port>. */
const RELAY = `const socket = require('node:net').connect(Number(process.argv[1]), '127.0.0.1');
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', () => process.exit(1));`;

/** The viewer's inbound totals from `getStats()` of the SDK's current peer, or null. */
export function inboundStats(page) {
  return page.evaluate(async () => {
    const pc = window.directoSession?.pc;
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

/**
 * Opens a studio page at `url` (`/studio/{stream}#key=…`), presses "Go live" and waits until
 * it is live. Works on Playwright's and Puppeteer's pages alike.
 */
export async function goLive(page, url) {
  await page.goto(url);
  await waitForState(page, ['idle']);
  await waitFor('"Go live" is enabled', () => page.evaluate(() => !document.getElementById('golive').disabled));
  await page.click('#golive');
  await waitForState(page, ['live']);
}

/**
 * Waits until the page's `window.directoState` is one of `wanted`. Fails at once, with the
 * status text, if the page reports an error it was not expecting. Polls with `evaluate`, which
 * Playwright's and Puppeteer's pages share (their `waitForFunction`s take their arguments in
 * different orders).
 */
export async function waitForState(page, wanted) {
  const { state, status } = await waitFor(`${page.url()} is ${wanted.join(' or ')}`, () =>
    page.evaluate((wanted) => {
      const state = window.directoState;
      if (wanted.includes(state)) return { state };
      if (state === 'error') return { state, status: document.getElementById('status').textContent };
      return null;
    }, wanted),
  );
  assert.ok(wanted.includes(state), `page ${page.url()} reached ${wanted.join('/')}, got: ${status}`);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freeTcpPort() {
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

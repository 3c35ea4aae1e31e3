// One audience across two nodes of a cluster, in a real browser: a throw-away Redis
// (Debian's redis-server on a free loopback port, nothing saved), two `directo serve
// --cluster` nodes sharing it and one secret. The studio goes live on node a; a watch page on
// node b decodes the stream, which b pulls from a over WebRTC (b's /metrics shows the relay).
//
// Run with the other browser tests (`npm test`), after `cargo build -p directo`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, freeTcpPort, goLive, inboundStats, waitFor, waitForState } from './harness.mjs';

const PUBLISH_KEY = 'cluster-browser-key';
const SECRET = 'cluster browser test secret';

const origin = new Harness('cluster-a');
const edge = new Harness('cluster-b');
let redis = null;
let redisDir = '';

before(async () => {
  redisDir = await mkdtemp(join(tmpdir(), 'directo-redis-'));
  const port = await freeTcpPort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  process.on('exit', () => redis.kill('SIGKILL'));
  await sleep(300);
  const node = (id) => ['--cluster', `redis://127.0.0.1:${port}`, '--node-id', id, '--secret', SECRET, '--publish-key', PUBLISH_KEY];
  await origin.start(node('a'));
  await edge.start(node('b'), { chromium: false });
});

after(async () => {
  await edge.close();
  await origin.close();
  redis?.kill('SIGKILL');
  await rm(redisDir, { recursive: true, force: true });
});

test('a watch page on another node of the cluster decodes the stream through the relay', async () => {
  const stream = 'cluster-page';
  const studio = await origin.openPage('cluster-studio');
  const viewer = await origin.openPage('cluster-viewer');
  try {
    await goLive(studio, `${origin.baseUrl}/studio/${stream}#key=${PUBLISH_KEY}`);
    await viewer.goto(`${edge.baseUrl}/watch/${stream}`);
    await waitFor('the watch page on node b decodes a first video frame', async () => (await inboundStats(viewer))?.framesDecoded > 0);
    await waitForState(viewer, ['live']);
    const first = await inboundStats(viewer);
    await sleep(2_000);
    const second = await inboundStats(viewer);
    assert.ok(second.framesDecoded > first.framesDecoded, `frames keep coming: ${first.framesDecoded} then ${second.framesDecoded}`);
    const metrics = await (await fetch(`${edge.baseUrl}/metrics`)).text();
    assert.match(metrics, /^directo_relayed_streams 1$/m, 'node b pulls the stream from node a');
    assert.deepEqual(origin.uncaughtErrors, []);
  } finally {
    await origin.snapshot(viewer, 'cluster-viewer');
    await viewer.close();
    await studio.close();
  }
});

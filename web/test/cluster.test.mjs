// The SDK against a cluster of nodes: a WHEP POST redirected (307) to another node, and a
// node's `server.move` notice on the chat channel. The redirect runs through node's real
// `fetch` (the same WHATWG fetch browsers implement) against two loopback HTTP servers.

import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { FakeMediaStream, FakePeer, fakeServer, until } from './fakes.mjs';

globalThis.MediaStream = FakeMediaStream;
const { publish, watch } = await import('../dist/directo.js');

const FAST = { initialMs: 5, maxMs: 20 };
let sessions = [];
let servers = [];

beforeEach(() => {
  FakePeer.instances = [];
});
afterEach(async () => {
  for (const s of sessions) await s.close();
  sessions = [];
  for (const server of servers) server.close();
  servers = [];
});

/** An HTTP server on a free loopback port; `handle(req, body, res)`. Resolves its base URL. */
async function node(handle) {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => handle(req, body, res));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return `http://127.0.0.1:${server.address().port}`;
}

describe('a redirected WHEP POST', () => {
  test('is followed by fetch with the offer, the token in the URL, and the session on the new node', async () => {
    const seen = [];
    const b = await node((req, body, res) => {
      seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization, body });
      if (req.method === 'POST') {
        // Relative, as RFC 9725 allows: it must resolve against node b, not the entry node.
        res.writeHead(201, { 'Content-Type': 'application/sdp', Location: '/whep/launch/sess-b' });
        res.end('v=0 answer');
      } else {
        res.writeHead(200);
        res.end();
      }
    });
    const a = await node((req, _body, res) => {
      res.writeHead(307, { Location: `${b}/whep/launch?name=Ana&token=short-lived&hop=1` });
      res.end();
    });
    const viewer = await watch({
      server: a,
      stream: 'launch',
      name: 'Ana',
      token: 'viewer-token',
      RTCPeerConnection: FakePeer,
      statusIntervalMs: 0,
      reconnect: FAST,
    });
    sessions.push(viewer);
    assert.equal(viewer.location, `${b}/whep/launch/sess-b`);
    assert.equal(viewer.sessionId, 'sess-b');
    const post = seen.find((r) => r.method === 'POST');
    assert.equal(post.body, 'v=0 offer 0', 'the 307 repeats the POST with its body');
    assert.equal(post.url, '/whep/launch?name=Ana&token=short-lived&hop=1');
    // Why the token rides in the URL: fetch drops Authorization on a cross-origin redirect.
    assert.equal(post.authorization, undefined);
    await viewer.close();
    await until(() => seen.some((r) => r.method === 'DELETE'), 'the DELETE on node b');
    assert.equal(seen.find((r) => r.method === 'DELETE').url, '/whep/launch/sess-b');
  });
});

describe('server.move', () => {
  function options(server, extra = {}) {
    return {
      server: 'http://a.test',
      stream: 'launch',
      fetch: server.fetch,
      RTCPeerConnection: FakePeer,
      statusIntervalMs: 0,
      reconnect: FAST,
      ...extra,
    };
  }
  const notice = (url) => ({ type: 'server.move', url, reason: 'draining' });

  test('a viewer opens a session on the named node, then ends the old one', async () => {
    const server = fakeServer();
    const viewer = await watch(options(server, { token: 'tok', quality: 'low' }));
    sessions.push(viewer);
    const first = FakePeer.instances[0];
    first.connect();
    const moved = new Promise((resolve) => viewer.on('moved', resolve));
    first.channels[0].deliver(notice('http://b.test/'));
    assert.deepEqual(await moved, { server: 'http://b.test/', reason: 'draining' });
    const post = server.requests.filter((r) => r.method === 'POST')[1];
    const second = FakePeer.instances[1];
    assert.equal(post.url, 'http://b.test/whep/launch?quality=low');
    assert.equal(post.headers.Authorization, 'Bearer tok');
    assert.equal(viewer.pc, second);
    assert.equal(viewer.location, 'http://b.test/whep/launch/sess-2');
    assert.ok(first.closed, 'the old peer is closed');
    await until(() => server.requests.some((r) => r.method === 'DELETE'), 'the old session ended');
    const order = server.requests.map((r) => `${r.method} ${r.url}`);
    assert.ok(
      order.indexOf('POST http://b.test/whep/launch?quality=low') < order.indexOf('DELETE http://a.test/whep/launch/sess-1'),
      `a viewer opens the new session first: ${order}`,
    );
    assert.equal(first.channels[0].sent.length, 0);
  });

  test('a viewer that cannot move stays on its session', async () => {
    const server = fakeServer();
    const viewer = await watch(options(server));
    sessions.push(viewer);
    const first = FakePeer.instances[0];
    first.connect();
    server.refuse = { status: 503, code: 'unavailable', message: 'every node is full' };
    first.channels[0].deliver(notice('http://b.test/'));
    await until(() => FakePeer.instances.length === 2 && FakePeer.instances[1].closed, 'the attempt');
    assert.equal(viewer.pc, first);
    assert.equal(viewer.location, 'http://a.test/whep/launch/sess-1');
    assert.ok(!server.requests.some((r) => r.method === 'DELETE'));
  });

  test('a publisher ends its session first, then publishes on the named node', async () => {
    const server = fakeServer();
    const media = new FakeMediaStream([{ kind: 'video', id: 'cam', stop() {} }]);
    const publisher = await publish(options(server, { key: 'k', media }));
    sessions.push(publisher);
    FakePeer.instances[0].connect();
    const moved = new Promise((resolve) => publisher.on('moved', resolve));
    FakePeer.instances[0].channels[0].deliver(notice('http://b.test/'));
    await moved;
    const order = server.requests.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.url}`);
    assert.deepEqual(order, [
      'POST http://a.test/whip/launch',
      'DELETE http://a.test/whip/launch/sess-1',
      'POST http://b.test/whip/launch',
    ]);
    assert.equal(publisher.location, 'http://b.test/whip/launch/sess-2');
  });

  test('chat text that mentions server.move is still chat', async () => {
    const server = fakeServer();
    const viewer = await watch(options(server));
    sessions.push(viewer);
    FakePeer.instances[0].connect();
    const chat = new Promise((resolve) => viewer.on('chat', resolve));
    FakePeer.instances[0].channels[0].deliver({
      type: 'chat.message',
      id: 'm1',
      from: { id: 'u', name: 'U', role: 'viewer' },
      text: '{"type":"server.move","url":"http://evil.test/"}',
      ts: 1,
    });
    assert.equal((await chat).id, 'm1');
    assert.equal(FakePeer.instances.length, 1);
  });
});

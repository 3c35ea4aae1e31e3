// Unit tests of the built SDK (dist/directo.js) with fake WebRTC and a fake server.

import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { FakeMediaStream, FakePeer, fakeServer, sleep, until } from './fakes.mjs';

globalThis.MediaStream = FakeMediaStream;
const sdk = await import('../dist/directo.js');
const { DirectoError, backoffDelay, publish, watch } = sdk;

const FAST = { initialMs: 5, maxMs: 20 };
let server;
let sessions = [];

beforeEach(() => {
  server = fakeServer();
  FakePeer.instances = [];
});
afterEach(async () => {
  for (const s of sessions) await s.close();
  sessions = [];
});

function options(extra = {}) {
  return {
    server: 'http://directo.test',
    stream: 'launch',
    fetch: server.fetch,
    RTCPeerConnection: FakePeer,
    statusIntervalMs: 0,
    reconnect: FAST,
    ...extra,
  };
}

async function startWatching(extra) {
  const viewer = await watch(options(extra));
  sessions.push(viewer);
  return viewer;
}

describe('the committed build', () => {
  test('sdk/directo.js (served by the server) is the current build of src/', async () => {
    const built = await readFile(new URL('../dist/directo.js', import.meta.url), 'utf8');
    const committed = await readFile(new URL('../sdk/directo.js', import.meta.url), 'utf8');
    assert.ok(committed === built, 'web/sdk/directo.js is stale: run `npm run build` in web/ and commit it');
  });
});

describe('backoffDelay', () => {
  test('grows with each attempt, within jitter', () => {
    const low = () => 0;
    const high = () => 0.999;
    assert.equal(backoffDelay(0, {}, undefined, low), 250);
    assert.equal(backoffDelay(1, {}, undefined, low), 500);
    assert.ok(backoffDelay(1, {}, undefined, high) <= 1000);
    assert.ok(backoffDelay(3, {}, undefined, low) < backoffDelay(4, {}, undefined, low));
  });
  test('is capped and honours Retry-After', () => {
    assert.ok(backoffDelay(50, { maxMs: 8000 }, undefined, () => 0.999) <= 8000);
    assert.equal(backoffDelay(0, {}, 7, () => 0), 7000);
  });
});

describe('watch', () => {
  test('POSTs an SDP offer with a chat channel to WHEP and resolves the session', async () => {
    const viewer = await startWatching({ name: 'Ana María', token: 'mod-key' });
    const post = server.requests.find((r) => r.method === 'POST');
    assert.equal(post.url, 'http://directo.test/whep/launch?name=Ana+Mar%C3%ADa');
    assert.equal(post.headers.Authorization, 'Bearer mod-key');
    assert.equal(post.headers['Content-Type'], 'application/sdp');
    assert.match(post.body, /^v=0 offer/);
    const pc = FakePeer.instances[0];
    assert.equal(pc.channels[0].label, 'chat');
    assert.deepEqual(
      pc.transceivers.map((t) => [t.receiver.track.kind, t.init.direction]),
      [['audio', 'recvonly'], ['video', 'recvonly']],
    );
    assert.equal(viewer.location, 'http://directo.test/whep/launch/sess-1');
    assert.equal(viewer.sessionId, 'sess-1');
    assert.equal(viewer.mediaStream.getTracks().length, 2);
    assert.equal(viewer.state, 'connecting');
    pc.connect();
    assert.equal(viewer.state, 'connected');
  });

  test('a refusal rejects with a typed error carrying the server code', async () => {
    server.refuse = { status: 401, code: 'unauthorized', message: 'this stream needs a viewer token' };
    await assert.rejects(watch(options()), (error) => {
      assert.ok(error instanceof DirectoError);
      assert.equal(error.code, 'unauthorized');
      assert.equal(error.status, 401);
      assert.equal(error.message, 'this stream needs a viewer token');
      assert.equal(error.retryable, false);
      return true;
    });
    assert.ok(FakePeer.instances[0].closed, 'the peer of a refused session is closed');
  });

  test('429 carries Retry-After and is retryable', async () => {
    server.refuse = { status: 429, code: 'rate_limited', message: 'slow down', retryAfter: 3 };
    await assert.rejects(watch(options()), (error) => error.code === 'rate_limited' && error.retryAfter === 3 && error.retryable);
  });

  test('a non-JSON error body becomes http_<status>', async () => {
    const viewer = watch(
      options({ fetch: async () => new Response('<h1>Bad gateway</h1>', { status: 502, statusText: 'Bad Gateway' }) }),
    );
    await assert.rejects(viewer, (error) => error.code === 'http_502' && error.retryable);
  });

  test('an unreachable server is a network error', async () => {
    const viewer = watch(options({ fetch: async () => Promise.reject(new TypeError('fetch failed')) }));
    await assert.rejects(viewer, (error) => error.code === 'network');
  });

  test('reconnects with a new session when the server closes the chat channel', async () => {
    const viewer = await startWatching();
    const first = FakePeer.instances[0];
    first.connect();
    const events = [];
    viewer.on('reconnecting', (e) => events.push(['reconnecting', e.attempt, e.error.code]));
    viewer.on('reconnected', (e) => events.push(['reconnected', e.attempts, e.sessionId]));
    const media = [];
    viewer.on('media', (m) => media.push(m));

    first.channels[0].serverClose();
    assert.equal(viewer.state, 'reconnecting');
    assert.ok(first.closed, 'the broken peer is closed');
    await until(() => FakePeer.instances.length === 2 && viewer.state === 'connecting', 'a second session');
    assert.ok(
      server.requests.some((r) => r.method === 'DELETE' && r.url.endsWith('/whep/launch/sess-1')),
      'the old session is DELETEd',
    );
    assert.equal(viewer.sessionId, 'sess-2');
    assert.equal(media.length, 1, 'the new media stream is announced');
    FakePeer.instances[1].connect();
    assert.deepEqual(events, [
      ['reconnecting', 1, 'network'],
      ['reconnected', 1, 'sess-2'],
    ]);
    assert.equal(viewer.state, 'connected');
  });

  test('reconnects after a failed connection and keeps trying while the server is away', async () => {
    const viewer = await startWatching();
    FakePeer.instances[0].connect();
    server.refuse = { status: 503, code: 'unavailable', message: 'restarting' };
    const attempts = [];
    viewer.on('reconnecting', (e) => attempts.push(e.attempt));
    FakePeer.instances[0].setState('failed');
    await until(() => attempts.length >= 3, 'three attempts');
    server.refuse = null;
    await until(() => viewer.state === 'connecting' && viewer.pc !== null, 'a new session');
    viewer.pc.connect();
    assert.equal(viewer.state, 'connected');
  });

  test('a refusal while reconnecting that will not pass ends the session with an error', async () => {
    const viewer = await startWatching();
    FakePeer.instances[0].connect();
    server.refuse = { status: 403, code: 'forbidden', message: 'you were banned from this stream' };
    const errors = [];
    viewer.on('error', (e) => errors.push(e.code));
    const closed = viewer.once('closed');
    FakePeer.instances[0].channels[0].serverClose();
    const { error } = await closed;
    assert.equal(error.code, 'forbidden');
    assert.deepEqual(errors, ['forbidden']);
    assert.equal(viewer.state, 'closed');
  });

  test('with reconnect off, a drop closes the session', async () => {
    const viewer = await startWatching({ reconnect: false });
    FakePeer.instances[0].connect();
    const closed = viewer.once('closed');
    FakePeer.instances[0].setState('failed');
    assert.equal((await closed).error.code, 'network');
    assert.equal(FakePeer.instances.length, 1);
  });

  test('a brief disconnect that recovers keeps the session', async () => {
    const viewer = await startWatching();
    const pc = FakePeer.instances[0];
    pc.connect();
    pc.setState('disconnected');
    await sleep(20);
    pc.setState('connected');
    assert.equal(viewer.state, 'connected');
    assert.equal(FakePeer.instances.length, 1);
  });

  test('close() DELETEs the session and stops reconnecting', async () => {
    const viewer = await startWatching();
    await viewer.close();
    assert.ok(server.requests.some((r) => r.method === 'DELETE' && r.url.endsWith('/sess-1')));
    assert.equal(viewer.state, 'closed');
    FakePeer.instances[0].setState('failed');
    await sleep(30);
    assert.equal(FakePeer.instances.length, 1);
  });

  test('hears live, offline and viewers on the chat channel, without polling', async () => {
    const viewer = await startWatching({ statusIntervalMs: undefined });
    const seen = [];
    viewer.on('live', (status) => seen.push(`live ${status.tracks.map((t) => t.kind).join('+')}`));
    viewer.on('offline', () => seen.push('offline'));
    viewer.on('viewers', ({ count }) => seen.push(`viewers ${count}`));
    viewer.on('presence', ({ viewers }) => seen.push(`in chat ${viewers}`));
    const statuses = [];
    viewer.on('status', (status) => statuses.push(status));
    assert.equal(viewer.live, null, 'nothing known before the channel opens');

    const pc = FakePeer.instances[0];
    pc.connect();
    const channel = pc.channels[0];
    // What the server sends when the chat channel opens: history, status, presence.
    channel.deliver({ type: 'chat.history', messages: [], slow_seconds: 0 });
    channel.deliver({ type: 'stream.status', live: false, recording: false });
    channel.deliver({ type: 'presence', viewers: 1, watching: 2 });
    assert.equal(viewer.live, false);
    const tracks = [
      { kind: 'audio', codec: 'audio/opus' },
      { kind: 'video', codec: 'video/VP8', layers: ['q', 'h', 'f'] },
    ];
    channel.deliver({ type: 'stream.status', live: true, tracks, recording: true });
    assert.equal(viewer.live, true);
    assert.deepEqual(viewer.status.tracks, tracks);
    assert.equal(viewer.status.recording, true);
    assert.equal(viewer.status.viewers, 2);
    channel.deliver({ type: 'presence', viewers: 1, watching: 5 });
    channel.deliver({ type: 'presence', viewers: 2, watching: 5 });
    channel.deliver({ type: 'stream.status', live: false });
    channel.deliver({ type: 'stream.status', live: 'yes' });

    assert.deepEqual(seen, [
      'offline',
      'in chat 1',
      'viewers 2',
      'live audio+video',
      'in chat 1',
      'viewers 5',
      'in chat 2',
      'offline',
    ]);
    assert.equal(viewer.live, false);
    assert.equal(viewer.status.recording, false);
    assert.equal(statuses.at(-1).viewers, 5);
    assert.equal(
      server.requests.filter((r) => r.url.includes('/api/streams')).length,
      0,
      'the API is not polled by default',
    );
  });

  test('a reconnect repeats nothing that did not change', async () => {
    const viewer = await startWatching();
    const seen = [];
    viewer.on('live', () => seen.push('live'));
    viewer.on('offline', () => seen.push('offline'));
    viewer.on('viewers', ({ count }) => seen.push(`viewers ${count}`));
    const open = (pc, live, watching) => {
      pc.connect();
      pc.channels[0].deliver({ type: 'chat.history', messages: [], slow_seconds: 0 });
      pc.channels[0].deliver({ type: 'stream.status', live, recording: false });
      pc.channels[0].deliver({ type: 'presence', viewers: 1, watching });
    };
    open(FakePeer.instances[0], true, 1);
    FakePeer.instances[0].channels[0].serverClose();
    await until(() => FakePeer.instances.length === 2 && viewer.pc !== null, 'a second session');
    open(FakePeer.instances[1], true, 1);
    assert.deepEqual(seen, ['live', 'viewers 1']);
    FakePeer.instances[1].channels[0].serverClose();
    await until(() => FakePeer.instances.length === 3 && viewer.pc !== null, 'a third session');
    open(FakePeer.instances[2], false, 1);
    assert.deepEqual(seen, ['live', 'viewers 1', 'offline']);
  });

  test('refreshStatus() asks the API; pushed updates keep its bitrate', async () => {
    const viewer = await startWatching();
    server.stream = { name: 'launch', live: true, tracks: [], viewers: 3, bitrate_bps: 1200, recording: false };
    const seen = [];
    viewer.on('live', () => seen.push('live'));
    viewer.on('viewers', ({ count }) => seen.push(`viewers ${count}`));
    const status = await viewer.refreshStatus();
    assert.equal(status.bitrate_bps, 1200);
    assert.deepEqual(seen, ['live', 'viewers 3']);
    const pc = FakePeer.instances[0];
    pc.connect();
    pc.channels[0].deliver({ type: 'stream.status', live: true, recording: true });
    pc.channels[0].deliver({ type: 'presence', viewers: 0, watching: 3 });
    assert.deepEqual(seen, ['live', 'viewers 3'], 'the same state pushed says nothing new');
    assert.equal(viewer.status.bitrate_bps, 1200);
    assert.equal(viewer.status.recording, true);
  });

  test('polls the stream status when asked to: offline, live, viewers', async () => {
    const viewer = await startWatching({ statusIntervalMs: 10 });
    const seen = [];
    viewer.on('live', () => seen.push('live'));
    viewer.on('offline', () => seen.push('offline'));
    viewer.on('viewers', ({ count }) => seen.push(`viewers ${count}`));
    await until(() => seen.includes('offline') || viewer.live === false, 'offline');
    const status = { name: 'launch', live: true, tracks: [], viewers: 3, bitrate_bps: 1000, recording: true };
    server.stream = status;
    await until(() => seen.includes('live'), 'live');
    assert.equal(viewer.live, true);
    assert.equal(viewer.status.recording, true);
    server.stream = { ...status, live: false, viewers: 2 };
    await until(() => seen.includes('viewers 2'), 'viewers 2');
    assert.ok(seen.lastIndexOf('offline') > seen.indexOf('live'));
  });
});

describe('chat', () => {
  const ana = { id: 'u1', name: 'Ana', role: 'viewer' };
  const host = { id: 'p1', name: 'Host', role: 'presenter' };
  const msg = (id, from, text, extra = {}) => ({ id, from, text, ts: 1, ...extra });

  async function connected() {
    const viewer = await startWatching();
    const pc = FakePeer.instances.at(-1);
    pc.connect();
    return { viewer, channel: pc.channels[0] };
  }

  test('sends chat and moderation messages in the wire format', async () => {
    const { viewer, channel } = await connected();
    viewer.chat.send('hi');
    viewer.chat.send('yes!', { replyTo: 'm1' });
    viewer.chat.delete('m2');
    viewer.chat.mute('u1', 5);
    viewer.chat.ban('u1');
    viewer.chat.slow(10);
    viewer.chat.clear();
    viewer.chat.pin('m3');
    viewer.chat.pin(null);
    assert.deepEqual(channel.sent, [
      { type: 'chat.send', text: 'hi' },
      { type: 'chat.send', text: 'yes!', reply_to: 'm1' },
      { type: 'chat.delete', id: 'm2' },
      { type: 'user.mute', user: 'u1', minutes: 5 },
      { type: 'user.ban', user: 'u1' },
      { type: 'chat.slow', seconds: 10 },
      { type: 'chat.clear' },
      { type: 'chat.pin', id: 'm3' },
      { type: 'chat.pin', id: null },
    ]);
  });

  test('sending before the channel is open throws not_connected', async () => {
    const viewer = await startWatching();
    assert.throws(() => viewer.chat.send('too early'), (e) => e instanceof DirectoError && e.code === 'not_connected');
  });

  test('keeps the chat state and emits an event per server message', async () => {
    const { viewer, channel } = await connected();
    const events = [];
    for (const type of ['history', 'chat', 'deleted', 'pinned', 'muted', 'banned', 'cleared', 'slow', 'presence', 'error']) {
      viewer.on(type, (value) => events.push([type, value]));
    }
    channel.deliver({ type: 'chat.history', messages: [msg('m1', ana, 'hello')], pinned: null, slow_seconds: 0 });
    channel.deliver({ type: 'chat.message', ...msg('m2', host, 'welcome', { reply_to: 'm1' }) });
    assert.deepEqual(viewer.chat.messages.map((m) => m.id), ['m1', 'm2']);
    assert.deepEqual(viewer.chat.message('m2'), msg('m2', host, 'welcome', { reply_to: 'm1' }));
    channel.deliver({ type: 'chat.pinned', message: msg('m2', host, 'welcome') });
    assert.equal(viewer.chat.pinned.id, 'm2');
    channel.deliver({ type: 'chat.deleted', id: 'm2' });
    assert.deepEqual(viewer.chat.messages.map((m) => m.id), ['m1']);
    assert.equal(viewer.chat.pinned, null, 'deleting the pinned message unpins it');
    channel.deliver({ type: 'user.muted', user: 'u1', name: 'Ana', until: 99 });
    channel.deliver({ type: 'chat.slow', seconds: 30 });
    assert.equal(viewer.chat.slowSeconds, 30);
    channel.deliver({ type: 'presence', viewers: 4 });
    channel.deliver({ type: 'error', code: 'slow_mode', message: 'wait 12 s' });
    channel.deliver({ type: 'user.banned', user: 'u1', name: 'Ana' });
    assert.deepEqual(viewer.chat.messages, [], "a banned user's messages go");
    channel.deliver({ type: 'chat.message', ...msg('m3', host, 'again') });
    channel.deliver({ type: 'chat.cleared' });
    assert.deepEqual(viewer.chat.messages, []);
    channel.deliver('not json');
    channel.deliver({ type: 'chat.future_feature' });
    channel.deliver({ type: 'chat.message', id: 'bad' });

    assert.deepEqual(
      events.map(([type]) => type),
      ['history', 'chat', 'pinned', 'deleted', 'muted', 'slow', 'presence', 'error', 'banned', 'chat', 'cleared'],
    );
    const error = events.find(([type]) => type === 'error')[1];
    assert.ok(error instanceof DirectoError);
    assert.equal(error.code, 'slow_mode');
    assert.equal(error.message, 'wait 12 s');
    assert.deepEqual(events.find(([type]) => type === 'muted')[1], { user: 'u1', name: 'Ana', until: 99 });
    assert.equal(events[1][1].text, 'welcome');
    assert.equal('type' in events[1][1], false, 'chat events carry the message, not the envelope');
  });

  test('text stays text: markup arrives verbatim for textContent', async () => {
    const { viewer, channel } = await connected();
    channel.deliver({ type: 'chat.message', ...msg('m1', ana, '<img src=x onerror=alert(1)>') });
    assert.equal(viewer.chat.message('m1').text, '<img src=x onerror=alert(1)>');
  });
});

describe('publish', () => {
  test('sends the given media over WHIP with the key, and does not stop tracks it did not capture', async () => {
    const stopped = [];
    const track = (kind) => ({ kind, stop: () => stopped.push(kind) });
    const media = new FakeMediaStream([track('audio'), track('video')]);
    const publisher = await publish(options({ key: 'secret', media, name: 'Host' }));
    const post = server.requests.find((r) => r.method === 'POST');
    assert.equal(post.url, 'http://directo.test/whip/launch?name=Host');
    assert.equal(post.headers.Authorization, 'Bearer secret');
    const pc = FakePeer.instances[0];
    assert.deepEqual(
      pc.transceivers.map((t) => [t.sender.track.kind, t.init.direction]),
      [['audio', 'sendonly'], ['video', 'sendonly']],
    );
    assert.equal(pc.channels[0].label, 'chat');
    pc.connect();

    const camera2 = track('video');
    await publisher.replaceTrack(camera2);
    assert.equal(pc.transceivers[1].sender.track, camera2);
    assert.ok(publisher.media.getTracks().includes(camera2));

    pc.channels[0].serverClose();
    await until(() => FakePeer.instances.length === 2, 'a new WHIP session');
    assert.deepEqual(
      FakePeer.instances[1].transceivers.map((t) => t.sender.track),
      publisher.media.getTracks(),
      'the same tracks go out again after a reconnect',
    );
    await publisher.stop();
    assert.deepEqual(stopped, [], 'tracks the app gave are left running');
  });

  test('a wrong key rejects with unauthorized', async () => {
    server.refuse = { status: 401, code: 'unauthorized', message: 'the key or token is not valid' };
    const media = new FakeMediaStream([{ kind: 'video', stop() {} }]);
    await assert.rejects(publish(options({ key: 'nope', media })), (e) => e.code === 'unauthorized');
  });
});

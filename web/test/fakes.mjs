// Stand-ins for the browser's WebRTC objects and the server's HTTP API, so the SDK's logic
// (signaling, reconnects, chat state, status polling) runs under node's test runner.

/** A data channel the test drives: `open()`, `deliver(message)`, `serverClose()`. */
export class FakeChannel extends EventTarget {
  constructor(label) {
    super();
    this.label = label;
    this.readyState = 'connecting';
    this.sent = [];
  }
  send(text) {
    if (this.readyState !== 'open') throw new Error('InvalidStateError: channel not open');
    this.sent.push(JSON.parse(text));
  }
  open() {
    this.readyState = 'open';
    this.dispatchEvent(new Event('open'));
  }
  deliver(message) {
    const event = new Event('message');
    event.data = typeof message === 'string' ? message : JSON.stringify(message);
    this.dispatchEvent(event);
  }
  serverClose() {
    this.readyState = 'closed';
    this.dispatchEvent(new Event('close'));
  }
}

/** An RTCPeerConnection that negotiates instantly; `setState()` plays connection changes. */
export class FakePeer extends EventTarget {
  static instances = [];
  constructor(config) {
    super();
    this.config = config;
    this.connectionState = 'new';
    this.iceGatheringState = 'complete';
    this.transceivers = [];
    this.channels = [];
    this.closed = false;
    FakePeer.instances.push(this);
  }
  createDataChannel(label) {
    const channel = new FakeChannel(label);
    this.channels.push(channel);
    return channel;
  }
  addTransceiver(trackOrKind, init) {
    const kind = typeof trackOrKind === 'string' ? trackOrKind : trackOrKind.kind;
    const transceiver = {
      init,
      receiver: { track: { kind, id: `recv-${kind}` } },
      sender: { track: typeof trackOrKind === 'string' ? null : trackOrKind, replaceTrack: async (t) => (transceiver.sender.track = t) },
    };
    this.transceivers.push(transceiver);
    return transceiver;
  }
  getSenders() {
    return this.transceivers.map((t) => t.sender);
  }
  async createOffer() {
    return { type: 'offer', sdp: `v=0 offer ${FakePeer.instances.indexOf(this)}` };
  }
  async setLocalDescription(description) {
    this.localDescription = description;
  }
  async setRemoteDescription(description) {
    this.remoteDescription = description;
  }
  async getStats() {
    return new Map();
  }
  close() {
    this.closed = true;
    this.connectionState = 'closed';
  }
  /** Plays a connection state change, as the browser would report it. */
  setState(state) {
    this.connectionState = state;
    this.dispatchEvent(new Event('connectionstatechange'));
  }
  /** Connects: the peer reports `connected` and the chat channel opens. */
  connect() {
    this.setState('connected');
    this.channels[0]?.open();
  }
}

/** A MediaStream good enough for the SDK: a list of tracks. */
export class FakeMediaStream {
  constructor(tracks = []) {
    this.tracks = [...tracks];
  }
  addTrack(track) {
    this.tracks.push(track);
  }
  removeTrack(track) {
    this.tracks = this.tracks.filter((t) => t !== track);
  }
  getTracks() {
    return [...this.tracks];
  }
}

/**
 * A fake Directo server behind `fetch`: WHIP/WHEP POSTs answer 201 with a Location unless
 * `server.refuse` holds an error to send; DELETEs are recorded; the stream API answers
 * from `server.stream` (null: 404 stream_not_found).
 */
export function fakeServer() {
  const server = {
    requests: [],
    refuse: null,
    stream: null,
    sessions: 0,
    fetch: async (url, init = {}) => {
      const method = init.method ?? 'GET';
      const request = { url: String(url), method, headers: init.headers ?? {}, body: init.body };
      server.requests.push(request);
      const path = new URL(request.url).pathname;
      if (method === 'POST') {
        if (server.refuse) {
          const { status, code, message, retryAfter } = server.refuse;
          const headers = { 'Content-Type': 'application/json' };
          if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
          return new Response(JSON.stringify({ code, message }), { status, headers });
        }
        server.sessions += 1;
        return new Response('v=0 answer', {
          status: 201,
          headers: { 'Content-Type': 'application/sdp', Location: `${path}/sess-${server.sessions}` },
        });
      }
      if (method === 'DELETE') return new Response(null, { status: 200 });
      if (path.startsWith('/api/streams/')) {
        if (!server.stream) {
          return new Response(JSON.stringify({ code: 'stream_not_found', message: 'no such stream' }), { status: 404 });
        }
        return new Response(JSON.stringify(server.stream), { status: 200 });
      }
      return new Response('not found', { status: 404 });
    },
  };
  return server;
}

/** Resolves after `ms`. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it is true or 2 s pass. */
export async function until(check, what = 'condition') {
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    if (check()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Directo browser SDK (directo-client). Built from web/src by web/build.mjs; do not edit.

// src/stats.ts
async function connectionStats(pc, previous) {
  const report = await pc.getStats();
  let bytesSent = 0;
  let bytesReceived = 0;
  let framesPerSecond = 0;
  let framesDecoded = 0;
  let audioPacketsReceived = 0;
  let packetsLost = 0;
  let packetsReceived = 0;
  let remoteLoss = null;
  let rttMs = null;
  let timestamp = 0;
  report.forEach((stat) => {
    timestamp = Math.max(timestamp, stat.timestamp ?? 0);
    const num = (key) => typeof stat[key] === "number" ? stat[key] : 0;
    switch (stat.type) {
      case "outbound-rtp":
        bytesSent += num("bytesSent");
        if (stat.kind === "video") framesPerSecond = Math.max(framesPerSecond, num("framesPerSecond"));
        break;
      case "inbound-rtp":
        bytesReceived += num("bytesReceived");
        packetsLost += num("packetsLost");
        packetsReceived += num("packetsReceived");
        if (stat.kind === "video") {
          framesDecoded += num("framesDecoded");
          framesPerSecond = Math.max(framesPerSecond, num("framesPerSecond"));
        } else if (stat.kind === "audio") {
          audioPacketsReceived += num("packetsReceived");
        }
        break;
      case "remote-inbound-rtp":
        if (typeof stat.fractionLost === "number") remoteLoss = Math.max(remoteLoss ?? 0, stat.fractionLost);
        if (typeof stat.roundTripTime === "number") rttMs = Math.max(rttMs ?? 0, stat.roundTripTime * 1e3);
        break;
      case "candidate-pair":
        if (stat.nominated && typeof stat.currentRoundTripTime === "number") {
          rttMs = Math.max(rttMs ?? 0, stat.currentRoundTripTime * 1e3);
        }
        break;
      default:
        break;
    }
  });
  const seconds = previous ? (timestamp - previous.timestamp) / 1e3 : 0;
  const rate = (now, before) => seconds > 0 && before !== void 0 ? Math.max(0, Math.round((now - before) * 8 / seconds)) : 0;
  const sendBitrateBps = rate(bytesSent, previous?.bytesSent);
  const receiveBitrateBps = rate(bytesReceived, previous?.bytesReceived);
  const packetLoss = remoteLoss ?? (packetsLost + packetsReceived > 0 ? packetsLost / (packetsLost + packetsReceived) : 0);
  const flowing = bytesSent + bytesReceived > 0;
  let health = "unknown";
  if (flowing && pc.connectionState === "connected") {
    const rtt = rttMs ?? 0;
    health = packetLoss > 0.05 || rtt > 400 ? "poor" : packetLoss > 0.01 || rtt > 150 ? "fair" : "good";
  } else if (pc.connectionState === "failed" || pc.connectionState === "disconnected") {
    health = "poor";
  }
  return {
    timestamp,
    bytesSent,
    bytesReceived,
    sendBitrateBps,
    receiveBitrateBps,
    framesPerSecond,
    framesDecoded,
    audioPacketsReceived,
    packetLoss,
    rttMs,
    health
  };
}

// src/errors.ts
var RETRYABLE = /* @__PURE__ */ new Set([
  "network",
  "rate_limited",
  "unavailable",
  "cluster_unavailable",
  "internal",
  "session_not_found",
  // A publisher that lost its connection may still hold the stream for a moment.
  "stream_busy"
]);
var DirectoError = class extends Error {
  /** The machine-readable code (the server's, or one of the SDK's own). */
  code;
  /** The HTTP status, when the error came from an HTTP response. */
  status;
  /** Seconds the server asked to wait before retrying (`Retry-After`), if it did. */
  retryAfter;
  constructor(code, message, options = {}) {
    super(message, options.cause === void 0 ? void 0 : { cause: options.cause });
    this.name = "DirectoError";
    this.code = code;
    this.status = options.status;
    this.retryAfter = options.retryAfter;
  }
  /** Whether the same request may succeed later (overload, a network failure, a restart). */
  get retryable() {
    return RETRYABLE.has(this.code) || this.status !== void 0 && this.status >= 500;
  }
};
async function errorFromResponse(response) {
  const text = await response.text().catch(() => "");
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
  }
  const fields = typeof body === "object" && body !== null ? body : {};
  const message = typeof fields.message === "string" && fields.message ? fields.message : `${response.status} ${response.statusText}`.trim();
  const code = typeof fields.code === "string" ? fields.code : `http_${response.status}`;
  const retryAfter = parseRetryAfter(response.headers.get("Retry-After"));
  return new DirectoError(code, message, { status: response.status, retryAfter });
}
function parseRetryAfter(header) {
  if (header === null || header.trim() === "") return void 0;
  const seconds = Number(header.trim());
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(header);
  if (Number.isNaN(date)) return void 0;
  return Math.max(0, (date - Date.now()) / 1e3);
}
function toDirectoError(error, code = "network") {
  if (error instanceof DirectoError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new DirectoError(code, message, { cause: error });
}

// src/media.ts
async function getMedia(sources = ["camera", "microphone"], devices = {}) {
  const wanted = new Set(Array.isArray(sources) ? sources : [sources]);
  const mediaDevices = globalThis.navigator?.mediaDevices;
  if (!mediaDevices) throw new DirectoError("media", "this browser cannot capture media (is the page served over https?)");
  const out = new MediaStream();
  try {
    if (wanted.has("screen")) {
      const screen = await mediaDevices.getDisplayMedia({ video: true, audio: !wanted.has("microphone") });
      screen.getTracks().forEach((t) => out.addTrack(t));
    }
    const video = wanted.has("camera") && !wanted.has("screen");
    const audio = wanted.has("microphone");
    if (video || audio) {
      const user = await mediaDevices.getUserMedia({
        video: video ? devices.videoDeviceId ? { deviceId: { exact: devices.videoDeviceId } } : true : false,
        audio: audio ? devices.audioDeviceId ? { deviceId: { exact: devices.audioDeviceId } } : true : false
      });
      user.getTracks().forEach((t) => out.addTrack(t));
    }
  } catch (error) {
    out.getTracks().forEach((t) => t.stop());
    const reason = error instanceof Error ? error.message : String(error);
    throw new DirectoError("media", `could not get the ${[...wanted].join(" and ")}: ${reason}`, { cause: error });
  }
  if (out.getTracks().length === 0) throw new DirectoError("media", "no media to publish");
  return out;
}

// src/backoff.ts
function backoffDelay(attempt, options = {}, retryAfterSeconds, random = Math.random) {
  const initial = options.initialMs ?? 500;
  const max = options.maxMs ?? 1e4;
  const factor = options.factor ?? 2;
  const ceiling = Math.min(max, initial * factor ** Math.max(0, attempt));
  const delay = ceiling / 2 + random() * ceiling / 2;
  const floor = retryAfterSeconds === void 0 ? 0 : retryAfterSeconds * 1e3;
  return Math.round(Math.max(delay, floor));
}

// src/chat.ts
var MAX_KEPT = 500;
var Chat = class {
  #channel = null;
  #messages = /* @__PURE__ */ new Map();
  #pinned = null;
  #slowSeconds = 0;
  #report;
  /** @internal */
  constructor(report) {
    this.#report = report;
  }
  /** The messages, oldest first. */
  get messages() {
    return [...this.#messages.values()];
  }
  /** The message with this id, if it is still in the chat. */
  message(id) {
    return this.#messages.get(id);
  }
  /** The pinned message, if any. */
  get pinned() {
    return this.#pinned;
  }
  /** The slow-mode interval in seconds; 0 when off. */
  get slowSeconds() {
    return this.#slowSeconds;
  }
  /** Whether messages can be sent now. */
  get open() {
    return this.#channel?.readyState === "open";
  }
  /** Posts `text`, optionally as a reply. */
  send(text, options = {}) {
    this.#send({ type: "chat.send", text, ...options.replyTo ? { reply_to: options.replyTo } : {} });
  }
  /** Removes a message for everyone (moderators and the presenter). */
  delete(id) {
    this.#send({ type: "chat.delete", id });
  }
  /** Stops a user writing for `minutes` (moderators and the presenter). */
  mute(user, minutes) {
    this.#send({ type: "user.mute", user, minutes: Math.max(1, Math.round(minutes)) });
  }
  /** Closes a user's chat and media and refuses them for the stream's life. */
  ban(user) {
    this.#send({ type: "user.ban", user });
  }
  /** One message per `seconds` per user; 0 turns slow mode off. */
  slow(seconds) {
    this.#send({ type: "chat.slow", seconds: Math.max(0, Math.round(seconds)) });
  }
  /** Removes every message for everyone. */
  clear() {
    this.#send({ type: "chat.clear" });
  }
  /** Pins a message above the chat; `null` unpins. */
  pin(id) {
    this.#send(id === null ? { type: "chat.pin", id: null } : { type: "chat.pin", id });
  }
  /** @internal Uses `channel` from now on (a new one after each reconnect). */
  attach(channel) {
    this.#channel = channel;
  }
  /** @internal Handles one message from the server. Malformed ones are ignored. */
  receive(raw) {
    if (typeof raw !== "string") return;
    let msg;
    try {
      const parsed = JSON.parse(raw);
      if (typeof parsed !== "object" || parsed === null) return;
      msg = parsed;
    } catch {
      return;
    }
    switch (msg.type) {
      case "chat.history": {
        const messages = Array.isArray(msg.messages) ? msg.messages.filter(isChatMessage) : [];
        this.#messages = new Map(messages.map((m) => [m.id, m]));
        this.#pinned = isChatMessage(msg.pinned) ? msg.pinned : null;
        this.#slowSeconds = typeof msg.slow_seconds === "number" ? msg.slow_seconds : 0;
        this.#report("history", { messages, pinned: this.#pinned, slowSeconds: this.#slowSeconds });
        break;
      }
      case "chat.message": {
        if (!isChatMessage(msg)) return;
        const { type: _type, ...rest } = msg;
        const message = rest;
        this.#messages.set(message.id, message);
        if (this.#messages.size > MAX_KEPT) {
          const oldest = this.#messages.keys().next().value;
          if (oldest !== void 0) this.#messages.delete(oldest);
        }
        this.#report("chat", message);
        break;
      }
      case "chat.deleted":
        if (typeof msg.id !== "string") return;
        this.#messages.delete(msg.id);
        if (this.#pinned?.id === msg.id) this.#pinned = null;
        this.#report("deleted", { id: msg.id });
        break;
      case "chat.pinned":
        this.#pinned = isChatMessage(msg.message) ? msg.message : null;
        this.#report("pinned", this.#pinned);
        break;
      case "user.muted":
        if (typeof msg.user !== "string") return;
        this.#report("muted", { user: msg.user, name: String(msg.name ?? ""), until: Number(msg.until ?? 0) });
        break;
      case "user.banned":
        if (typeof msg.user !== "string") return;
        for (const [id, m] of this.#messages) {
          if (m.from.id === msg.user) this.#messages.delete(id);
        }
        this.#report("banned", { user: msg.user, name: String(msg.name ?? "") });
        break;
      case "chat.cleared":
        this.#messages.clear();
        this.#pinned = null;
        this.#report("cleared", {});
        break;
      case "chat.slow":
        this.#slowSeconds = typeof msg.seconds === "number" ? msg.seconds : 0;
        this.#report("slow", { seconds: this.#slowSeconds });
        break;
      case "presence":
        if (typeof msg.viewers !== "number") return;
        this.#report("presence", { viewers: msg.viewers });
        if (typeof msg.watching === "number") this.#report("watching", { count: msg.watching });
        break;
      case "stream.status":
        if (typeof msg.live !== "boolean") return;
        this.#report("streamStatus", {
          live: msg.live,
          tracks: Array.isArray(msg.tracks) ? msg.tracks.filter(isTrack) : [],
          recording: msg.recording === true
        });
        break;
      case "error": {
        const code = typeof msg.code === "string" ? msg.code : "internal";
        const text = typeof msg.message === "string" ? msg.message : code;
        this.#report("chatError", new DirectoError(code, text));
        break;
      }
      default:
        break;
    }
  }
  #send(message) {
    const channel = this.#channel;
    if (!channel || channel.readyState !== "open") {
      throw new DirectoError("not_connected", "the chat is not connected (yet); try again in a moment");
    }
    channel.send(JSON.stringify(message));
  }
};
function isTrack(value) {
  if (typeof value !== "object" || value === null) return false;
  const t = value;
  return typeof t.kind === "string" && typeof t.codec === "string";
}
function isChatMessage(value) {
  if (typeof value !== "object" || value === null) return false;
  const m = value;
  const from = m.from;
  return typeof m.id === "string" && typeof m.text === "string" && typeof from === "object" && from !== null && typeof from.id === "string" && typeof from.name === "string" && typeof from.role === "string";
}

// src/emitter.ts
var Emitter = class {
  #listeners = /* @__PURE__ */ new Map();
  /** Calls `listener` on every `type` event; returns a function that unsubscribes. */
  on(type, listener) {
    let set = this.#listeners.get(type);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener);
    return () => this.off(type, listener);
  }
  /** Removes a listener added with `on`. */
  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }
  /** Resolves with the value of the next `type` event. */
  once(type) {
    return new Promise((resolve) => {
      const off = this.on(type, (value) => {
        off();
        resolve(value);
      });
    });
  }
  /** Calls every listener of `type` with `value`. */
  emit(type, value) {
    for (const listener of [...this.#listeners.get(type) ?? []]) {
      try {
        listener(value);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  }
};

// src/signaling.ts
var GATHER_TIMEOUT_MS = 2e3;
function endpointUrl(server, kind, stream, name) {
  const base = server.endsWith("/") ? server : `${server}/`;
  const url = new URL(`${kind}/${encodeURIComponent(stream)}`, base);
  if (name) url.searchParams.set("name", name);
  return url.href;
}
function authHeaders(credential) {
  return credential ? { Authorization: `Bearer ${credential}` } : {};
}
async function negotiate(pc, url, headers, fetchImpl, signal) {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  const offer = pc.localDescription?.sdp;
  if (!offer) throw new DirectoError("internal", "the browser produced no SDP offer");
  let response;
  try {
    response = await fetchImpl(url, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/sdp" },
      body: offer,
      signal
    });
  } catch (error) {
    throw toDirectoError(error);
  }
  if (response.status !== 201) throw await errorFromResponse(response);
  const header = response.headers.get("Location");
  if (!header) throw new DirectoError("internal", "the server answered without a Location header");
  const location = new URL(header, response.url || url).href;
  const sessionId = new URL(location).pathname.split("/").filter(Boolean).pop() ?? "";
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return { location, sessionId };
}
async function endSession(location, headers, fetchImpl) {
  try {
    await fetchImpl(location, { method: "DELETE", headers });
  } catch {
  }
}
function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const timer = setTimeout(finish, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// src/status.ts
var StatusTracker = class {
  #stream;
  #report;
  #status = null;
  /** The viewer count last reported (`null`: none yet). */
  #viewers = null;
  constructor(stream, report) {
    this.#stream = stream;
    this.#report = report;
  }
  /** The last known status (`null`: nothing said yet whether the stream is live). */
  get status() {
    return this.#status;
  }
  /** A `stream.status` pushed over the chat channel. */
  pushed(update) {
    const base = this.#status ?? {
      name: this.#stream,
      live: false,
      tracks: [],
      viewers: this.#viewers ?? 0,
      bitrate_bps: 0,
      recording: false
    };
    this.#setLive({ ...base, live: update.live, tracks: update.tracks, recording: update.recording });
  }
  /** The number of media viewers, from a `presence` pushed over the chat channel. */
  watching(count) {
    if (this.#viewers === count) return;
    this.#viewers = count;
    this.#report("viewers", { count });
    if (this.#status !== null) {
      this.#status = { ...this.#status, viewers: count };
      this.#report("status", this.#status);
    }
  }
  /** A status fetched from the API. */
  fetched(status) {
    this.#setLive(status);
    if (this.#viewers !== status.viewers) {
      this.#viewers = status.viewers;
      this.#report("viewers", { count: status.viewers });
    }
  }
  #setLive(next) {
    const before = this.#status;
    this.#status = next;
    this.#report("status", next);
    if (before === null || before.live !== next.live) {
      if (next.live) this.#report("live", next);
      else this.#report("offline", { stream: this.#stream });
    }
  }
};

// src/session.ts
var DISCONNECTED_GRACE_MS = 3e3;
var CONNECT_TIMEOUT_MS = 15e3;
var Session = class extends Emitter {
  /** The stream name. */
  stream;
  /** The server's base URL. */
  server;
  /** The chat: messages, and the actions to send. */
  chat;
  #options;
  #fetch;
  #Peer;
  #state = "connecting";
  #pc = null;
  #location = null;
  #sessionId = null;
  #status;
  #attempts = 0;
  #timers = /* @__PURE__ */ new Set();
  #poller = null;
  #wake = null;
  #moving = false;
  /** @internal */
  constructor(options) {
    super();
    if (!options.stream) throw new DirectoError("invalid_stream_name", "a stream name is required");
    this.#options = options;
    this.stream = options.stream;
    this.server = options.server ?? globalThis.location?.origin ?? "";
    if (!this.server) throw new DirectoError("bad_request", "no server URL given (and no page origin to default to)");
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    const Peer = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
    if (!Peer) throw new DirectoError("bad_request", "this environment has no RTCPeerConnection");
    this.#Peer = Peer;
    this.#status = new StatusTracker(this.stream, (type, value) => this.emit(type, value));
    this.chat = new Chat((type, value) => {
      if (type === "chatError") this.emit("error", value);
      else if (type === "streamStatus") this.#status.pushed(value);
      else if (type === "watching") this.#status.watching(value.count);
      else this.emit(type, value);
    });
  }
  /** The current peer connection (a new one after each reconnect), for `getStats()`. */
  get pc() {
    return this.#pc;
  }
  /** The current session's URL (WHIP/WHEP `Location`). */
  /** @internal The WHIP/WHEP endpoint to post the offer to (a subclass may add query parameters). */
  endpoint(url) {
    return url;
  }
  /** @internal The `fetch` the session uses. */
  get fetcher() {
    return this.#fetch;
  }
  get location() {
    return this.#location;
  }
  /** The current session's id, which is also this client's user id in the chat. */
  get sessionId() {
    return this.#sessionId;
  }
  /** Where the session is. */
  get state() {
    return this.#state;
  }
  /** The stream's last known status (pushed, or fetched), if any. */
  get status() {
    return this.#status.status;
  }
  /** Whether the stream is live, as last heard (`null`: not known yet). */
  get live() {
    return this.#status.status?.live ?? null;
  }
  /** Ends the session: the server is told, the peer closed, nothing reconnects. */
  async close() {
    if (this.#state === "closed") return;
    await this.#finish();
  }
  /** @internal Connects the first session (and starts polling, if asked); throws if refused. */
  async start() {
    try {
      await this.#connect();
    } catch (error) {
      await this.#finish();
      throw toDirectoError(error);
    }
    this.#startPolling();
  }
  /** Negotiates a new session (on `server`, by default the one given) and makes it current. */
  async #connect(server = this.server) {
    const pc = new this.#Peer(this.#options.rtcConfiguration);
    const channel = pc.createDataChannel("chat");
    this.preparePeer(pc);
    const headers = authHeaders(this.credential());
    const url = this.endpoint(endpointUrl(server, this.kind, this.stream, this.#options.name));
    let negotiated;
    try {
      negotiated = await negotiate(pc, url, headers, this.#fetch);
    } catch (error) {
      pc.close();
      throw error;
    }
    if (this.#state === "closed") {
      pc.close();
      await endSession(negotiated.location, headers, this.#fetch);
      return;
    }
    this.#pc = pc;
    this.#location = negotiated.location;
    this.#sessionId = negotiated.sessionId;
    this.#setState("connecting");
    this.chat.attach(channel);
    this.#watchPeer(pc, channel);
    this.peerReady(pc);
  }
  /** Called with each new current peer, once negotiated (the viewer shows its media). */
  peerReady(_pc) {
  }
  /** Follows the peer and its chat channel; a failure of either replaces the session. */
  #watchPeer(pc, channel) {
    const current = () => this.#pc === pc && this.#state !== "closed";
    let grace = null;
    const connectTimer = this.#timer(() => {
      if (current() && pc.connectionState !== "connected") {
        this.#lost(new DirectoError("network", "the connection to the server could not be established"));
      }
    }, CONNECT_TIMEOUT_MS);
    pc.addEventListener("connectionstatechange", () => {
      if (!current()) return;
      const state = pc.connectionState;
      if (state === "connected") {
        this.#clearTimer(connectTimer);
        if (grace !== null) this.#clearTimer(grace);
        grace = null;
        const resumed = this.#attempts > 0;
        const attempts = this.#attempts;
        this.#attempts = 0;
        this.#setState("connected");
        if (resumed) this.emit("reconnected", { attempts, sessionId: this.#sessionId ?? "" });
      } else if (state === "failed" || state === "closed") {
        this.#lost(new DirectoError("network", `the connection to the server ${state}`));
      } else if (state === "disconnected" && grace === null) {
        grace = this.#timer(() => {
          grace = null;
          if (current() && pc.connectionState !== "connected") {
            this.#lost(new DirectoError("network", "the connection to the server was interrupted"));
          }
        }, DISCONNECTED_GRACE_MS);
      }
    });
    channel.addEventListener("message", (event) => {
      if (!current()) return;
      const data = event.data;
      const notice = moveNotice(data);
      if (notice) void this.#move(notice.url, notice.reason);
      else this.chat.receive(data);
    });
    channel.addEventListener("close", () => {
      if (current()) this.#lost(new DirectoError("network", "the server closed the session"));
    });
  }
  /**
   * Moves to the node at `server`. A viewer opens the new session first and ends the old
   * one once it is negotiated (if that fails it stays where it is: the old node serves it
   * until it leaves, and the session is then replaced as after any drop). A publisher ends
   * the old session first, since a stream has one publisher and the new node can take the
   * stream only once the old one gave it up.
   */
  async #move(server, reason) {
    if (this.#moving || this.#state === "closed" || this.#state === "reconnecting") return;
    this.#moving = true;
    const old = { pc: this.#pc, location: this.#location };
    const headers = authHeaders(this.credential());
    try {
      if (this.kind === "whip") {
        this.#pc = null;
        this.#location = null;
        this.chat.attach(null);
        old.pc?.close();
        if (old.location) await endSession(old.location, headers, this.#fetch);
        try {
          await this.#connect(server);
        } catch (error) {
          this.#lost(toDirectoError(error));
          return;
        }
      } else {
        try {
          await this.#connect(server);
        } catch {
          return;
        }
        old.pc?.close();
        if (old.location) void endSession(old.location, headers, this.#fetch);
      }
      if (this.state !== "closed") this.emit("moved", { server, reason });
    } finally {
      this.#moving = false;
    }
  }
  /** The current session broke: replace it, with backoff, unless reconnecting is off. */
  #lost(error) {
    if (this.#state === "closed" || this.#state === "reconnecting") return;
    const old = { pc: this.#pc, location: this.#location };
    this.#pc = null;
    this.chat.attach(null);
    old.pc?.close();
    if (old.location) void endSession(old.location, authHeaders(this.credential()), this.#fetch);
    if (this.#options.reconnect === false) {
      this.emit("error", error);
      void this.#finish(error);
      return;
    }
    void this.#reconnect(error);
  }
  async #reconnect(error) {
    this.#setState("reconnecting");
    const backoff = typeof this.#options.reconnect === "object" ? this.#options.reconnect : {};
    let last = error;
    while (this.#state === "reconnecting") {
      const delayMs = backoffDelay(this.#attempts, backoff, last.retryAfter);
      this.#attempts += 1;
      this.emit("reconnecting", { attempt: this.#attempts, delayMs, error: last });
      await this.#sleep(delayMs);
      if (this.#state !== "reconnecting") return;
      try {
        await this.#connect();
        return;
      } catch (failure) {
        last = toDirectoError(failure);
        if (!last.retryable) {
          this.emit("error", last);
          await this.#finish(last);
          return;
        }
      }
    }
  }
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.emit("state", state);
  }
  async #finish(error) {
    if (this.#state === "closed") return;
    this.#setState("closed");
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    if (this.#poller !== null) clearInterval(this.#poller);
    this.#poller = null;
    this.#wake?.();
    const { pc, location } = { pc: this.#pc, location: this.#location };
    this.#pc = null;
    this.chat.attach(null);
    pc?.close();
    this.stopped();
    if (location) await endSession(location, authHeaders(this.credential()), this.#fetch);
    this.emit("closed", error ? { error } : {});
  }
  /** Called once when the session closes (the publisher stops media it acquired). */
  stopped() {
  }
  #startPolling() {
    const every = this.#options.statusIntervalMs ?? 0;
    if (every <= 0 || this.#state === "closed") return;
    void this.refreshStatus();
    this.#poller = setInterval(() => void this.refreshStatus(), every);
  }
  /**
   * Asks the API for the stream's status now (with the bitrate, which is not pushed) and
   * emits `status`, and `live`, `offline` and `viewers` when they changed. Returns the
   * status, or `null` if the server could not say.
   */
  async refreshStatus() {
    const base = this.server.endsWith("/") ? this.server : `${this.server}/`;
    const url = new URL(`api/streams/${encodeURIComponent(this.stream)}`, base).href;
    let status;
    try {
      const response = await this.#fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        status = await response.json();
      } else {
        const error = await errorFromResponse(response);
        if (error.code !== "stream_not_found") return null;
        status = { name: this.stream, live: false, tracks: [], viewers: 0, bitrate_bps: 0, recording: false };
      }
    } catch {
      return null;
    }
    if (this.#state === "closed") return null;
    this.#status.fetched(status);
    return status;
  }
  #timer(run, ms) {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }
  #clearTimer(timer) {
    clearTimeout(timer);
    this.#timers.delete(timer);
  }
  /** Waits `ms`, or less if the session closes meanwhile. */
  #sleep(ms) {
    return new Promise((resolve) => {
      const timer = this.#timer(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        this.#clearTimer(timer);
        this.#wake = null;
        resolve();
      };
    });
  }
};
function moveNotice(data) {
  if (typeof data !== "string" || !data.includes("server.move")) return null;
  try {
    const message = JSON.parse(data);
    if (message?.type !== "server.move" || typeof message.url !== "string") return null;
    return { url: message.url, reason: typeof message.reason === "string" ? message.reason : "unknown" };
  } catch {
    return null;
  }
}

// src/publish.ts
var SIMULCAST_LAYERS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 15e4 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 5e5 },
  { rid: "f", maxBitrate: 15e5 }
];
var Publisher = class extends Session {
  kind = "whip";
  /** The media being sent. */
  media;
  #key;
  #ownsMedia;
  #simulcast;
  #lastStats = null;
  /** @internal Use `publish()`. */
  constructor(options, media, ownsMedia) {
    super(options);
    this.#key = options.key;
    this.media = media;
    this.#ownsMedia = ownsMedia;
    this.#simulcast = options.simulcast ?? false;
  }
  /** Ends the publication; stops the tracks the SDK captured itself. Same as `close()`. */
  stop() {
    return this.close();
  }
  /**
   * Sends `track` instead of the current track of the same kind (a camera or microphone
   * switch) without renegotiating. The replaced track is stopped if the SDK captured it.
   */
  async replaceTrack(track) {
    const old = this.media.getTracks().find((t) => t.kind === track.kind);
    for (const sender of this.pc?.getSenders() ?? []) {
      if (sender.track?.kind === track.kind || sender.track === null && old && sender.track === old) {
        await sender.replaceTrack(track);
      }
    }
    if (old) {
      this.media.removeTrack(old);
      if (this.#ownsMedia) old.stop();
    }
    this.media.addTrack(track);
  }
  /** Samples outgoing bitrate, frame rate, loss and round-trip time (`null` while not connected). */
  async stats() {
    const pc = this.pc;
    if (!pc) return null;
    const previous = this.#lastStats?.pc === pc ? this.#lastStats.sample : null;
    const sample = await connectionStats(pc, previous);
    this.#lastStats = { pc, sample };
    return sample;
  }
  credential() {
    return this.#key;
  }
  preparePeer(pc) {
    for (const track of this.media.getTracks()) {
      const init = { direction: "sendonly", streams: [this.media] };
      if (this.#simulcast && track.kind === "video") init.sendEncodings = SIMULCAST_LAYERS.map((layer) => ({ ...layer }));
      pc.addTransceiver(track, init);
    }
  }
  stopped() {
    if (this.#ownsMedia) this.media.getTracks().forEach((t) => t.stop());
  }
};
async function publish(options) {
  const given = options.media instanceof MediaStream ? options.media : null;
  const media = given ?? await getMedia(options.media ?? void 0, options.devices);
  const publisher = new Publisher(options, media, given === null);
  await publisher.start();
  return publisher;
}

// src/watch.ts
var Viewer = class extends Session {
  kind = "whep";
  /** The element the stream plays in, if one was given. */
  video;
  #token;
  #media = null;
  #pending = null;
  #lastStats = null;
  #quality;
  /** @internal Use `watch()`. */
  constructor(options) {
    super(options);
    this.#token = options.token;
    this.video = options.video ?? null;
    this.#quality = options.quality ?? "auto";
  }
  /** The simulcast layer choice in effect. */
  get quality() {
    return this.#quality;
  }
  /**
   * Switches to another simulcast layer (or back to `auto`); the picture changes at that
   * layer's next keyframe. Kept across reconnects. Rejects with a `DirectoError` if refused.
   */
  async setQuality(quality) {
    this.#quality = quality;
    const location = this.location;
    if (!location) return;
    const url = new URL(`${location}/quality`, this.server || globalThis.location?.origin);
    const response = await this.fetcher(url.href, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ quality })
    });
    if (!response.ok) throw await errorFromResponse(response);
  }
  endpoint(url) {
    if (this.#quality === "auto") return url;
    const withQuality = new URL(url);
    withQuality.searchParams.set("quality", this.#quality);
    return withQuality.href;
  }
  /** The received audio and video (a new stream after each reconnect; see the `media` event). */
  get mediaStream() {
    return this.#media;
  }
  /** Samples incoming bitrate, frames decoded, loss and round-trip time (`null` while not connected). */
  async stats() {
    const pc = this.pc;
    if (!pc) return null;
    const previous = this.#lastStats?.pc === pc ? this.#lastStats.sample : null;
    const sample = await connectionStats(pc, previous);
    this.#lastStats = { pc, sample };
    return sample;
  }
  credential() {
    return this.#token;
  }
  preparePeer(pc) {
    const received = new MediaStream();
    for (const kind of ["audio", "video"]) {
      received.addTrack(pc.addTransceiver(kind, { direction: "recvonly" }).receiver.track);
    }
    this.#pending = received;
  }
  peerReady(_pc) {
    const media = this.#pending;
    this.#pending = null;
    if (!media) return;
    this.#media = media;
    const video = this.video;
    if (video) {
      video.autoplay = true;
      if ("playsInline" in video) video.playsInline = true;
      video.srcObject = media;
      void this.#play(video);
    }
    this.emit("media", media);
  }
  /** Plays `video`; browsers only autoplay muted media, so it falls back to muted. */
  async #play(video) {
    try {
      await video.play();
    } catch (error) {
      if (error?.name === "NotAllowedError" && !video.muted) {
        video.muted = true;
        await video.play().catch(() => {
        });
      }
    }
  }
};
async function watch(options) {
  const viewer = new Viewer(options);
  await viewer.start();
  return viewer;
}
export {
  Chat,
  DirectoError,
  Publisher,
  SIMULCAST_LAYERS,
  Session,
  Viewer,
  backoffDelay,
  connectionStats,
  getMedia,
  publish,
  watch
};

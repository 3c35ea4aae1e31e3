// Directo's WHIP (RFC 9725) publish and WHEP watch clients for the browser.
//
// One offer, one answer, no trickle: the server is ICE-lite and puts all of
// its candidates in the answer, so the browser never has to send more after
// the POST. Errors the server reports as JSON `{code, message}` are thrown as
// `Error`s carrying `.code` and `.status`, so a page can show the server's own
// words to the user.

/** How long to wait for local ICE candidates before sending the offer anyway. */
const GATHER_TIMEOUT_MS = 2000;

/**
 * Publishes `mediaStream` to `stream` over WHIP.
 *
 * @param {string} url base URL of the Directo server, e.g. `location.origin`
 * @param {string} stream stream name
 * @param {string} key publish key, sent as a Bearer token
 * @param {MediaStream} mediaStream camera and microphone tracks to send
 * @returns {Promise<{pc: RTCPeerConnection, location: string, stop: () => Promise<void>}>}
 */
export async function whipPublish(url, stream, key, mediaStream) {
  const pc = new RTCPeerConnection();
  for (const track of mediaStream.getTracks()) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [mediaStream] });
  }
  return negotiate(pc, endpoint(url, 'whip', stream), { Authorization: `Bearer ${key}` });
}

/**
 * Watches `stream` over WHEP. The returned `stream` holds the received audio
 * and video tracks; they stay silent until the publisher is live.
 *
 * @param {string} url base URL of the Directo server, e.g. `location.origin`
 * @param {string} stream stream name
 * @returns {Promise<{pc: RTCPeerConnection, location: string, stream: MediaStream, stop: () => Promise<void>}>}
 */
export async function whepWatch(url, stream) {
  const pc = new RTCPeerConnection();
  // Receivers (and so their tracks) exist from the moment the transceivers
  // do, so the media stream is complete before any `track` event could fire.
  const received = new MediaStream();
  for (const kind of ['audio', 'video']) {
    received.addTrack(pc.addTransceiver(kind, { direction: 'recvonly' }).receiver.track);
  }
  const session = await negotiate(pc, endpoint(url, 'whep', stream), {});
  return { ...session, stream: received };
}

/** The WHIP or WHEP endpoint URL of `stream` on the server at `url`. */
function endpoint(url, kind, stream) {
  return new URL(`/${kind}/${encodeURIComponent(stream)}`, url).href;
}

/**
 * Sends the offer of `pc` to `endpointUrl`, applies the answer, and returns
 * the session. Closes `pc` if anything fails, so callers never leak one.
 */
async function negotiate(pc, endpointUrl, headers) {
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const response = await fetch(endpointUrl, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) {
      throw await serverError(response);
    }
    const header = response.headers.get('Location');
    if (!header) {
      throw new Error('the server answered without a Location header');
    }
    // Location may be relative (RFC 9725 allows it); resolve it against the endpoint.
    const location = new URL(header, endpointUrl).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    return { pc, location, stop: () => endSession(pc, location, headers) };
  } catch (error) {
    pc.close();
    throw error;
  }
}

/**
 * Resolves once `pc` has gathered its candidates, or after a short timeout:
 * an ICE-lite server learns the browser's address from its checks anyway.
 */
function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', done);
        resolve();
      }
    };
    const timer = setTimeout(() => {
      pc.removeEventListener('icegatheringstatechange', done);
      resolve();
    }, GATHER_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', done);
  });
}

/** Turns a failed response into an Error with the server's code and message. */
async function serverError(response) {
  const text = await response.text().catch(() => '');
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page, say): fall back to the status line below.
  }
  const message =
    typeof body?.message === 'string' && body.message
      ? body.message
      : `${response.status} ${response.statusText}`.trim();
  const error = new Error(message);
  error.code = typeof body?.code === 'string' ? body.code : `http_${response.status}`;
  error.status = response.status;
  return error;
}

/**
 * Closes `pc` and tells the server the session is over, with the same
 * credentials as the POST (RFC 9725 authenticates the DELETE too). Best
 * effort: the server also ends sessions whose peer goes away.
 */
async function endSession(pc, location, headers) {
  pc.close();
  try {
    await fetch(location, { method: 'DELETE', headers });
  } catch {
    // The server may already be gone; there is nothing left to end then.
  }
}

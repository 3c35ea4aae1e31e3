// WHIP (RFC 9725) and WHEP: one offer, one answer, no trickle. The server is ICE-lite and
// puts all of its candidates in the answer, so the browser never sends anything after the
// POST; the session ends with a DELETE on the `Location` the server returned.

import { DirectoError, errorFromResponse, toDirectoError } from './errors.js';

/** How long to wait for local ICE candidates before sending the offer anyway. */
const GATHER_TIMEOUT_MS = 2000;

/** A negotiated WHIP or WHEP session. */
export interface Negotiated {
  /** The session URL (absolute), for the DELETE that ends it. */
  location: string;
  /** The session id: the last path segment of `location`; also the chat user id. */
  sessionId: string;
}

/** The URL of `/{kind}/{stream}` on `server`, with the display name as `?name=`. */
export function endpointUrl(server: string, kind: 'whip' | 'whep', stream: string, name?: string): string {
  const base = server.endsWith('/') ? server : `${server}/`;
  const url = new URL(`${kind}/${encodeURIComponent(stream)}`, base);
  if (name) url.searchParams.set('name', name);
  return url.href;
}

/** The `Authorization` header for `credential`, if there is one. */
export function authHeaders(credential: string | undefined): Record<string, string> {
  return credential ? { Authorization: `Bearer ${credential}` } : {};
}

/**
 * Sends the offer of `pc` to `url`, applies the answer and returns the session. Throws a
 * `DirectoError` with the server's code when the server refuses.
 */
export async function negotiate(
  pc: RTCPeerConnection,
  url: string,
  headers: Record<string, string>,
  fetchImpl: typeof fetch,
  signal?: AbortSignal,
): Promise<Negotiated> {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  const offer = pc.localDescription?.sdp;
  if (!offer) throw new DirectoError('internal', 'the browser produced no SDP offer');
  let response: Response;
  try {
    response = await fetchImpl(url, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/sdp' },
      body: offer,
      signal,
    });
  } catch (error) {
    throw toDirectoError(error);
  }
  if (response.status !== 201) throw await errorFromResponse(response);
  const header = response.headers.get('Location');
  if (!header) throw new DirectoError('internal', 'the server answered without a Location header');
  // Location may be relative (RFC 9725 allows it): resolve it against the URL that answered,
  // which is another node's when a cluster redirected the POST (fetch follows a 307 with
  // the body; `response.url` is where it ended).
  const location = new URL(header, response.url || url).href;
  const sessionId = new URL(location).pathname.split('/').filter(Boolean).pop() ?? '';
  await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
  return { location, sessionId };
}

/**
 * Tells the server a session is over, with the credentials of the POST (RFC 9725
 * authenticates the DELETE too). Best effort: the server also ends sessions whose peer
 * goes away, and it may already be gone.
 */
export async function endSession(location: string, headers: Record<string, string>, fetchImpl: typeof fetch): Promise<void> {
  try {
    await fetchImpl(location, { method: 'DELETE', headers });
  } catch {
    // Nothing left to end.
  }
}

/**
 * Resolves once `pc` has gathered its candidates, or after a short timeout: an ICE-lite
 * server learns the browser's address from its connectivity checks anyway.
 */
function iceGatheringComplete(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') finish();
    };
    const timer = setTimeout(finish, GATHER_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// Errors the SDK hands to applications: always a `DirectoError` carrying the server's
// machine-readable `code`, so an app can switch on it instead of parsing messages.

/**
 * The codes the server sends (HTTP `{code, message}` bodies and chat `error` messages),
 * plus the SDK's own: `network` (the server could not be reached), `not_connected` (a chat
 * action while the chat channel is not open), `media` (no camera, microphone or screen),
 * `closed` (the session was closed) and `http_<status>` (an error without a JSON body).
 */
export type ErrorCode =
  | 'bad_request'
  | 'invalid_sdp'
  | 'unsupported_codec'
  | 'invalid_stream_name'
  | 'invalid_name'
  | 'unauthorized'
  | 'forbidden'
  | 'rate_limited'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'session_not_found'
  | 'stream_not_found'
  | 'stream_busy'
  | 'method_not_allowed'
  | 'unavailable'
  | 'cluster_unavailable'
  | 'invalid_restream'
  | 'too_many_restreams'
  | 'restream_not_found'
  | 'internal'
  | 'unknown_type'
  | 'too_large'
  | 'text_empty'
  | 'text_too_long'
  | 'muted'
  | 'banned'
  | 'slow_mode'
  | 'not_found'
  | 'network'
  | 'not_connected'
  | 'media'
  | 'closed'
  | `http_${number}`;

/** Codes after which trying again later may succeed. */
const RETRYABLE = new Set<string>([
  'network',
  'rate_limited',
  'unavailable',
  'cluster_unavailable',
  'internal',
  'session_not_found',
  // A publisher that lost its connection may still hold the stream for a moment.
  'stream_busy',
]);

/** An error from Directo or from the SDK itself. */
export class DirectoError extends Error {
  /** The machine-readable code (the server's, or one of the SDK's own). */
  readonly code: ErrorCode;
  /** The HTTP status, when the error came from an HTTP response. */
  readonly status: number | undefined;
  /** Seconds the server asked to wait before retrying (`Retry-After`), if it did. */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options: { status?: number; retryAfter?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DirectoError';
    this.code = code;
    this.status = options.status;
    this.retryAfter = options.retryAfter;
  }

  /** Whether the same request may succeed later (overload, a network failure, a restart). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code) || (this.status !== undefined && this.status >= 500);
  }
}

/** Turns a failed HTTP response into a `DirectoError` with the server's code and message. */
export async function errorFromResponse(response: Response): Promise<DirectoError> {
  const text = await response.text().catch(() => '');
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page, say): fall back to the status line below.
  }
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const message =
    typeof fields.message === 'string' && fields.message
      ? fields.message
      : `${response.status} ${response.statusText}`.trim();
  const code = (typeof fields.code === 'string' ? fields.code : `http_${response.status}`) as ErrorCode;
  const retryAfter = parseRetryAfter(response.headers.get('Retry-After'));
  return new DirectoError(code, message, { status: response.status, retryAfter });
}

/** `Retry-After` in seconds (the delta form; the date form is read too). */
export function parseRetryAfter(header: string | null): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header.trim());
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(header);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, (date - Date.now()) / 1000);
}

/** Wraps anything thrown (a `TypeError` from `fetch`, say) as a `DirectoError`. */
export function toDirectoError(error: unknown, code: ErrorCode = 'network'): DirectoError {
  if (error instanceof DirectoError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new DirectoError(code, message, { cause: error });
}

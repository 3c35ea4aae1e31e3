// Helpers the pages share: which stream a page is for, the URL fragment's secrets, the
// status line tests read, and small formatting. Pages never build HTML from strings:
// everything a user or the server supplies goes in with `textContent`.

/**
 * The stream a page is for: the last segment of `/studio/{stream}` and friends, or
 * `?stream=` (the old `watch.html?stream=` links).
 */
export function streamFromUrl() {
  const query = new URLSearchParams(location.search).get('stream');
  if (query) return query;
  const parts = location.pathname.split('/').filter(Boolean);
  if (parts.length >= 2) return decodeURIComponent(parts[parts.length - 1]);
  return '';
}

/** A value from the URL fragment (`#key=…&name=…`): secrets stay out of server logs there. */
export function fragmentParam(name) {
  return new URLSearchParams(location.hash.slice(1)).get(name) ?? '';
}

/** Creates an element with optional class names and text (as text, never HTML). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Shows `text` in `#status` and records `state` in `window.directoState` and as
 * `data-state` on the body, for styling and for tests that wait on it.
 */
export function setState(state, text) {
  window.directoState = state;
  document.body.dataset.state = state;
  const status = document.getElementById('status');
  if (status) {
    status.dataset.state = state;
    status.textContent = text;
  }
}

/** `h:mm:ss` or `m:ss` for a duration in milliseconds. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** A bitrate for people: `1.2 Mbit/s`, `350 kbit/s`. */
export function formatBitrate(bps) {
  if (!bps) return '–';
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}

/** The time of day of a Unix-milliseconds timestamp, `14:05`. */
export function formatClock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * The display name remembered in this browser under `key` (the studio keeps the
 * presenter's apart from the viewer's), or `fallback`, or a fresh guest name.
 */
export function rememberedName(fallback, key = 'directo-name') {
  const fromQuery = new URLSearchParams(location.search).get('name');
  if (fromQuery) return fromQuery.slice(0, 32);
  try {
    const stored = localStorage.getItem(key);
    if (stored) return stored;
  } catch {
    // Storage may be off (private mode): a guest name will do.
  }
  return fallback ?? `Guest ${Math.floor(1000 + Math.random() * 9000)}`;
}

/** Remembers the display name under `key` for the next visit. */
export function rememberName(name, key = 'directo-name') {
  try {
    localStorage.setItem(key, name);
  } catch {
    // Not remembered; no harm.
  }
}

/** Copies `text` to the clipboard, falling back to selecting `field` for a manual copy. */
export async function copyText(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    field?.select();
    return document.execCommand?.('copy') ?? false;
  }
}

// A time stamp drawn as big black and white blocks, and read back from a decoded video
// frame: what the glass-to-glass latency pages (latency-publish.html, latency-watch.html)
// send through Directo. Blocks of 1/8 of the width by 1/6 of the height survive VP8 at a
// low bitrate, downscaling by the sender's bandwidth adaptation and colour subsampling,
// where text or a QR code would not.
//
// The grid is 8 × 6 cells, read row by row: row 0 is a fixed sync pattern (both colours,
// not symmetric, so a mirrored, shifted or inverted picture fails it and it gives the
// black/white threshold), rows 1–4 the 32-bit value (most significant bit first) and row 5
// a CRC-8 of those 4 bytes, so a frame caught half-way between two pictures is rejected
// rather than misread. A white cell is a 1.
//
// No DOM here apart from the 2D context `drawCode` is given: the unit test
// (tests/browser/blockcode.test.mjs) runs it in node on a plain pixel buffer.

/** Columns of the grid. */
export const COLS = 8;
/** Rows of the grid: one sync row, four data rows, one check row. */
export const ROWS = 6;
/** Row 0: the sync pattern every valid frame shows. */
export const SYNC = [1, 0, 1, 1, 0, 0, 1, 0];
/** Below this difference between the sync row's white and black cells, nothing is read. */
const MIN_CONTRAST = 64;

/** CRC-8 (polynomial 0x07) of `bytes`. */
export function crc8(bytes) {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
  }
  return crc;
}

/** The 4 bytes of `value` (an integer, taken modulo 2^32), most significant first. */
function bytesOf(value) {
  const v = value >>> 0;
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

/** The 48 cells (1 = white) that show `value`, row by row. */
export function cellsFor(value) {
  const bytes = bytesOf(value);
  const cells = [...SYNC];
  for (const byte of [...bytes, crc8(bytes)]) {
    for (let bit = 7; bit >= 0; bit -= 1) cells.push((byte >>> bit) & 1);
  }
  return cells;
}

/** Draws `value` over the whole `width` × `height` of a 2D context. */
export function drawCode(ctx, width, height, value) {
  const cells = cellsFor(value);
  for (let row = 0; row < ROWS; row += 1) {
    for (let col = 0; col < COLS; col += 1) {
      // Integer edges, so neighbouring cells neither overlap nor leave a seam.
      const x0 = Math.round((col * width) / COLS);
      const x1 = Math.round(((col + 1) * width) / COLS);
      const y0 = Math.round((row * height) / ROWS);
      const y1 = Math.round(((row + 1) * height) / ROWS);
      ctx.fillStyle = cells[row * COLS + col] ? '#fff' : '#000';
      ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    }
  }
}

/**
 * The mean brightness (0–255, green-weighted luma) of each cell's central half, from RGBA
 * pixels: the edges, where the codec blurs one cell into the next, are left out.
 */
export function cellLevels(pixels, width, height) {
  const levels = [];
  for (let row = 0; row < ROWS; row += 1) {
    for (let col = 0; col < COLS; col += 1) {
      const cw = width / COLS;
      const ch = height / ROWS;
      const x0 = Math.floor(col * cw + cw / 4);
      const x1 = Math.ceil(col * cw + (3 * cw) / 4);
      const y0 = Math.floor(row * ch + ch / 4);
      const y1 = Math.ceil(row * ch + (3 * ch) / 4);
      let sum = 0;
      let count = 0;
      for (let y = y0; y < y1; y += 1) {
        for (let x = x0; x < x1; x += 1) {
          const i = (y * width + x) * 4;
          sum += 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
          count += 1;
        }
      }
      levels.push(count ? sum / count : 0);
    }
  }
  return levels;
}

/**
 * Reads the value from a frame's RGBA pixels: `{ value }`, or `{ error }` saying why the
 * frame was rejected (`contrast`, `sync` or `crc`).
 */
export function decodeCode(pixels, width, height) {
  const levels = cellLevels(pixels, width, height);
  const sync = levels.slice(0, COLS);
  const whites = sync.filter((_, i) => SYNC[i] === 1);
  const blacks = sync.filter((_, i) => SYNC[i] === 0);
  const white = Math.min(...whites);
  const black = Math.max(...blacks);
  const mean = (list) => list.reduce((a, b) => a + b, 0) / list.length;
  // An inverted picture has contrast too: it fails the sync check, not this one.
  if (Math.abs(mean(whites) - mean(blacks)) < MIN_CONTRAST) return { error: 'contrast' };
  const threshold = (mean(whites) + mean(blacks)) / 2;
  if (white <= threshold || black >= threshold) return { error: 'sync' };
  const bits = levels.slice(COLS).map((level) => (level > threshold ? 1 : 0));
  const bytes = [];
  for (let i = 0; i < bits.length; i += 8) {
    bytes.push(bits.slice(i, i + 8).reduce((byte, bit) => (byte << 1) | bit, 0));
  }
  if (crc8(bytes.slice(0, 4)) !== bytes[4]) return { error: 'crc' };
  const value = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  return { value };
}

/**
 * `now` − `stamp` in ms, where `stamp` is a time in whole ms taken modulo 2^32 (what the
 * code carries): right as long as the two are less than ~24 days apart either way.
 */
export function elapsedSince(stamp, now) {
  const span = 2 ** 32;
  const diff = (now % span) - stamp;
  return ((((diff + span / 2) % span) + span) % span) - span / 2;
}

/** The time stamp a frame drawn at `now` (ms) carries: whole ms modulo 2^32. */
export function stampFor(now) {
  return Math.round(now) % 2 ** 32;
}

/** The clock every page of one browser shares, in ms since the epoch (sub-ms precision). */
export function sharedNow() {
  return performance.timeOrigin + performance.now();
}

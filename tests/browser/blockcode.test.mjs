// The block code of the latency probe pages (web/test-pages/blockcode.js), in node: a value
// drawn into a pixel buffer reads back through blur, noise and downscaling, and a frame
// that is not a clean picture of one value is rejected rather than misread.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cellsFor, COLS, crc8, decodeCode, drawCode, elapsedSince, ROWS, stampFor } from '../../web/test-pages/blockcode.js';

/** A minimal 2D context over an RGBA buffer: just what `drawCode` uses. */
function canvas(width, height) {
  const pixels = new Uint8ClampedArray(width * height * 4);
  const ctx = {
    fillStyle: '#000',
    fillRect(x, y, w, h) {
      const level = this.fillStyle === '#fff' ? 255 : 0;
      for (let row = y; row < y + h; row += 1) {
        for (let col = x; col < x + w; col += 1) {
          pixels.fill(level, (row * width + col) * 4, (row * width + col) * 4 + 3);
          pixels[(row * width + col) * 4 + 3] = 255;
        }
      }
    },
  };
  return { pixels, ctx };
}

/** `pixels` with `amount` of uniform noise and a level squeeze, as a lossy codec leaves them. */
function degrade(pixels, amount, seed = 1) {
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  return pixels.map((v, i) => (i % 4 === 3 ? v : 40 + (v * 170) / 255 + (random() - 0.5) * 2 * amount));
}

/** Box-downscales RGBA `pixels` by an integer `factor`. */
function downscale(pixels, width, height, factor) {
  const w = width / factor;
  const h = height / factor;
  const out = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y += 1) {
    for (let x = 0; x < w; x += 1) {
      for (let c = 0; c < 4; c += 1) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy += 1) {
          for (let dx = 0; dx < factor; dx += 1) sum += pixels[((y * factor + dy) * width + x * factor + dx) * 4 + c];
        }
        out[(y * w + x) * 4 + c] = sum / factor ** 2;
      }
    }
  }
  return out;
}

test('a drawn value reads back, also noisy and downscaled', () => {
  for (const value of [0, 1, 0xdeadbeef, 2 ** 32 - 1, stampFor(1_763_776_000_123.6)]) {
    const { pixels, ctx } = canvas(320, 180);
    drawCode(ctx, 320, 180, value);
    assert.deepEqual(decodeCode(pixels, 320, 180), { value: value >>> 0 });
    assert.deepEqual(decodeCode(degrade(pixels, 60, value + 7), 320, 180), { value: value >>> 0 });
    assert.deepEqual(decodeCode(downscale(pixels, 320, 180, 4), 80, 45), { value: value >>> 0 });
  }
});

test('frames that are not one clean value are rejected', () => {
  const { pixels, ctx } = canvas(320, 180);
  drawCode(ctx, 320, 180, 123456789);

  const flat = new Uint8ClampedArray(pixels.length).fill(128);
  assert.deepEqual(decodeCode(flat, 320, 180), { error: 'contrast' });

  const inverted = pixels.map((v, i) => (i % 4 === 3 ? v : 255 - v));
  assert.deepEqual(decodeCode(inverted, 320, 180), { error: 'sync' });

  // One data cell flipped, as when a frame mixes two pictures: the CRC catches it.
  const torn = new Uint8ClampedArray(pixels);
  const cell = { col: 3, row: 2 };
  for (let y = cell.row * 30; y < (cell.row + 1) * 30; y += 1) {
    for (let x = cell.col * 40; x < (cell.col + 1) * 40; x += 1) {
      for (let c = 0; c < 3; c += 1) torn[(y * 320 + x) * 4 + c] = 255 - torn[(y * 320 + x) * 4 + c];
    }
  }
  assert.deepEqual(decodeCode(torn, 320, 180), { error: 'crc' });
});

test('the layout: a sync row, 32 data bits, a CRC-8', () => {
  const cells = cellsFor(0x01020304);
  assert.equal(cells.length, COLS * ROWS);
  assert.deepEqual(cells.slice(8, 16), [0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(crc8([0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39]), 0xf4, 'the CRC-8/SMBUS check value');
});

test('elapsed time survives the 2^32 ms wrap of the stamp', () => {
  const close = (actual, expected) => assert.ok(Math.abs(actual - expected) < 1e-3, `${actual} ≈ ${expected}`);
  const drawn = 2 ** 32 * 400 - 3.2;
  // The stamp is the drawing time rounded to a whole ms: 3 ms before the wrap.
  close(elapsedSince(stampFor(drawn), drawn + 150), 149.8);
  close(elapsedSince(stampFor(drawn), 2 ** 32 * 401 + 7.5), 10.5);
  close(elapsedSince(stampFor(drawn + 10), drawn), -10.2);
});

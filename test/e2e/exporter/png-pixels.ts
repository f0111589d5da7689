/**
 * Decodes an 8-bit, non-interlaced PNG (what Chromium's screenshots are) into RGB(A) pixels, so a
 * test can check what a screenshot shows. PNG spec (W3C, 2nd ed.): chunks IHDR/IDAT/IEND, zlib
 * stream of scanlines, each prefixed by a filter type 0–4 (§9).
 */
import { inflateSync } from 'node:zlib';

export interface Pixels {
  width: number;
  height: number;
  /** Bytes per pixel: 3 (RGB) or 4 (RGBA). */
  channels: number;
  data: Buffer;
}

export function decodePng(png: Buffer): Pixels {
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const body = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const [depth, color, , , interlace] = [body[8], body[9], body[10], body[11], body[12]];
      if (depth !== 8 || interlace !== 0 || (color !== 2 && color !== 6)) {
        throw new Error(`unsupported PNG: depth ${depth}, color ${color}, interlace ${interlace}`);
      }
      channels = color === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const data = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? (data[y * stride + x - channels] as number) : 0;
      const b = y > 0 ? (data[(y - 1) * stride + x] as number) : 0;
      const c = x >= channels && y > 0 ? (data[(y - 1) * stride + x - channels] as number) : 0;
      let predicted = 0;
      if (filter === 1) predicted = a;
      else if (filter === 2) predicted = b;
      else if (filter === 3) predicted = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      data[y * stride + x] = ((line[x] as number) + predicted) & 0xff;
    }
  }
  return { width, height, channels, data };
}

/** Pixels within `tolerance` (per channel) of the colour `[r, g, b]`. */
export function countColour(p: Pixels, [r, g, b]: readonly number[], tolerance = 24): number {
  let n = 0;
  for (let i = 0; i < p.data.length; i += p.channels) {
    if (
      Math.abs((p.data[i] as number) - (r as number)) <= tolerance &&
      Math.abs((p.data[i + 1] as number) - (g as number)) <= tolerance &&
      Math.abs((p.data[i + 2] as number) - (b as number)) <= tolerance
    ) {
      n++;
    }
  }
  return n;
}

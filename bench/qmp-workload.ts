/**
 * A deterministic QMP byte stream shaped like a busy host: many devices migrating, each through
 * the source sequence with P2P and pre-copy (QEMU's order), with MIGRATION events between.
 * Lines are exactly QEMU's JSON layout, CRLF-terminated.
 */
export interface Workload {
  /** The stream cut into 64 KiB chunks, as a socket would deliver it. */
  chunks: Buffer[];
  events: number;
  devices: number;
}

const WALK = ['pre-copy', 'pre-copy-p2p-prepare', 'pre-copy-p2p', 'stop-copy', 'stop', 'running'];

export function buildWorkload(events: number, devices: number, seed = 1): Workload {
  let rng = seed >>> 0;
  const random = (): number => {
    rng = (rng + 0x6d2b79f5) >>> 0;
    let t = rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const step = new Uint8Array(devices);
  let micros = 1_795_798_176_000_000;
  const lines: string[] = [];
  for (let i = 0; i < events; i++) {
    micros += 1 + Math.floor(random() * 200);
    const seconds = Math.floor(micros / 1e6);
    const us = micros % 1e6;
    if (i % 10 === 9) {
      lines.push(
        `{"timestamp": {"seconds": ${seconds}, "microseconds": ${us}}, "event": "MIGRATION", "data": {"status": "active"}}\r\n`,
      );
      continue;
    }
    const d = Math.floor(random() * devices);
    const state = WALK[step[d] as number] as string;
    step[d] = ((step[d] as number) + 1) % WALK.length;
    lines.push(
      `{"timestamp": {"seconds": ${seconds}, "microseconds": ${us}}, "event": "VFIO_MIGRATION", "data": {"device-id": "vf${d}", "qom-path": "/machine/peripheral/vf${d}", "device-state": "${state}"}}\r\n`,
    );
  }
  const all = Buffer.from(lines.join(''), 'latin1');
  const chunks: Buffer[] = [];
  for (let i = 0; i < all.length; i += 65536) chunks.push(all.subarray(i, i + 65536));
  return { chunks, events, devices };
}

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  decodeAuthList,
  decodeMonitorEvent,
  decodeRemoteError,
  encodeCall,
  encodeConnectOpenArgs,
  encodeKeepalive,
  encodeMessage,
  encodeMonitorEventMessage,
  encodeRegisterArgs,
  KEEPALIVE_PROGRAM,
  LibvirtFrameDecoder,
  MESSAGE_TYPE,
  QEMU_PROC,
  QEMU_PROGRAM,
  registrations,
  XdrWriter,
  type LibvirtFrame,
} from '../../../services/collector/core/libvirt-protocol.ts';
import { buildEventRecord } from '../../../services/shared/core/event-record-builder.ts';

const RECORDED = readFileSync(
  new URL('../../fixtures/collector/libvirt-9.0-events.txt', import.meta.url),
  'utf8',
)
  .split('\n')
  .filter((line) => line !== '' && !line.startsWith('#'))
  .map((hex) => Buffer.from(hex, 'hex'));

const DOMAIN = { name: 't1', uuid: '25e3cb60-f6f9-498a-a1e7-b08f0504ab6f', id: 16 };

function frames(out: LibvirtFrame[]): Extract<LibvirtFrame, { kind: 'frame' }>[] {
  return out.map((f) => {
    assert.equal(f.kind, 'frame');
    return f;
  });
}

describe('libvirt protocol: a recorded libvirtd 9.0 stream', () => {
  const stream = Buffer.concat(RECORDED);

  test('the replies, then the events of suspend, resume, save and restore', () => {
    const all = frames(new LibvirtFrameDecoder().push(stream));
    assert.equal(all.length, RECORDED.length);
    assert.deepEqual(
      all.slice(0, 3).map((f) => [f.header.type, f.header.serial, f.header.status]),
      [
        [MESSAGE_TYPE.REPLY, 1, 0],
        [MESSAGE_TYPE.REPLY, 2, 0],
        [MESSAGE_TYPE.REPLY, 3, 0],
      ],
    );
    // AUTH_LIST on a session daemon's socket: no authentication.
    assert.deepEqual(decodeAuthList((all[0] as (typeof all)[0]).body), [0]);
    const events = all.slice(3).map((f) => {
      assert.equal(f.header.prog, QEMU_PROGRAM);
      assert.equal(f.header.proc, QEMU_PROC.MONITOR_EVENT);
      const e = decodeMonitorEvent(f.body);
      assert.ok(!('kind' in e), JSON.stringify(e));
      return e;
    });
    assert.deepEqual(
      events.map((e) => [e.domain.id, e.event.name, e.event.data['status'] ?? null]),
      [
        [16, 'RESUME', null],
        [16, 'STOP', null],
        [16, 'RESUME', null],
        [16, 'STOP', null],
        [16, 'MIGRATION', 'setup'],
        [16, 'MIGRATION_PASS', null],
        [16, 'MIGRATION', 'active'],
        [16, 'MIGRATION_PASS', null],
        [16, 'MIGRATION', 'completed'],
        [17, 'MIGRATION', 'setup'],
        [17, 'MIGRATION', 'active'],
        [17, 'MIGRATION', 'completed'],
        [17, 'RESUME', null],
      ],
    );
    assert.deepEqual(events[0]?.domain, DOMAIN);
    // QEMU's timestamp as libvirt relayed it: seconds and microseconds, not milliseconds.
    assert.equal(events[0]?.event.timestampMicros, 1796237480994392);
    assert.deepEqual(events[7]?.event.data, { pass: 2 });
  });

  test('any chunking of the stream gives the same messages', () => {
    const whole = new LibvirtFrameDecoder().push(stream);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }),
        (sizes) => {
          const decoder = new LibvirtFrameDecoder();
          const out: LibvirtFrame[] = [];
          for (let i = 0, k = 0; i < stream.length; k++) {
            const size = sizes[k % sizes.length] as number;
            out.push(...decoder.push(Buffer.from(stream.subarray(i, i + size))));
            i += size;
          }
          assert.deepEqual(out, whole);
          assert.equal(decoder.pendingBytes, 0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('libvirt protocol: monitor events', () => {
  const base = {
    callbackId: 3,
    domain: DOMAIN,
    event: 'STOP',
    seconds: 1_796_237_480n,
    micros: 994_392,
    details: null as string | null,
  };
  const body = (fields: Partial<typeof base>): Buffer =>
    encodeMonitorEventMessage({ ...base, ...fields }).subarray(28);

  test('VFIO_MIGRATION (a FABRICATED frame: no VFIO device here) becomes a device record', () => {
    // Built with libvirt's wire format around the data QEMU 10 sends (qapi/vfio.json); a real
    // one needs a migratable VFIO device with migration-events=on.
    const details =
      '{"device-id":"hostdev0","qom-path":"/machine/peripheral/hostdev0","device-state":"pre-copy-p2p-prepare"}';
    const decoded = decodeMonitorEvent(body({ event: 'VFIO_MIGRATION', details }));
    assert.ok(!('kind' in decoded));
    const record = buildEventRecord(
      { host: 'h', vm: decoded.domain.name, sessionId: 's', sequence: 1, receivedMicros: 1 },
      decoded.event,
    );
    assert.ok(!('kind' in record));
    assert.deepEqual(
      [record.event, record.qomPath, record.deviceId, record.deviceState],
      ['VFIO_MIGRATION', '/machine/peripheral/hostdev0', 'hostdev0', 'pre-copy-p2p-prepare'],
    );
    assert.equal(record.qemuTimestampMicros, 1_796_237_480_994_392);
    assert.equal(record.vm, 't1');
  });

  test('rejected like QMP: bad timestamps, details that are not a JSON object, short bodies', () => {
    const reason = (b: Buffer): string => {
      const d = decodeMonitorEvent(b);
      return 'kind' in d ? d.reason : 'event';
    };
    assert.equal(reason(body({ micros: 1_000_000 })), 'bad_timestamp');
    assert.equal(reason(body({ seconds: -1n })), 'bad_timestamp');
    assert.equal(reason(body({ seconds: 2n ** 62n })), 'bad_timestamp');
    assert.equal(reason(body({ details: '{"status":' })), 'not_json');
    assert.equal(reason(body({ details: '[1]' })), 'not_qmp');
    assert.equal(reason(body({}).subarray(0, 30)), 'not_qmp');
    const badUtf8 = body({ event: 'STOPX' });
    badUtf8[badUtf8.indexOf('STOPX') + 4] = 0xff;
    assert.equal(reason(badUtf8), 'invalid_utf8');
    assert.equal(reason(body({ details: '{"status":"active"}' })), 'event');
  });

  test('every encoded event decodes to what was encoded', () => {
    fc.assert(
      fc.property(
        fc.record({
          callbackId: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
          name: fc.string({ maxLength: 40 }),
          uuid: fc.uuid(),
          id: fc.integer({ min: -1, max: 2 ** 31 - 1 }),
          event: fc.stringMatching(/^[A-Z_]{1,30}$/),
          seconds: fc.bigInt({ min: 0n, max: 4_000_000_000n }),
          micros: fc.integer({ min: 0, max: 999_999 }),
          data: fc.option(fc.dictionary(fc.string(), fc.jsonValue()), { nil: null }),
        }),
        (f) => {
          const decoded = decodeMonitorEvent(
            body({
              callbackId: f.callbackId,
              domain: { name: f.name, uuid: f.uuid, id: f.id },
              event: f.event,
              seconds: f.seconds,
              micros: f.micros,
              details: f.data === null ? null : JSON.stringify(f.data),
            }),
          );
          assert.ok(!('kind' in decoded), JSON.stringify(decoded));
          assert.equal(decoded.callbackId, f.callbackId);
          assert.deepEqual(decoded.domain, { name: f.name, uuid: f.uuid, id: f.id });
          assert.equal(decoded.event.timestampMicros, Number(f.seconds) * 1e6 + f.micros);
          assert.deepEqual(decoded.event.data, JSON.parse(JSON.stringify(f.data ?? {})));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('arbitrary bytes never throw, neither framed nor as an event body', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 64 }), (b, n) => {
        const bytes = Buffer.from(b);
        decodeMonitorEvent(bytes);
        decodeRemoteError(bytes);
        decodeAuthList(bytes);
        const decoder = new LibvirtFrameDecoder();
        for (let i = 0; i < bytes.length; i += n) decoder.push(bytes.subarray(i, i + n));
        assert.ok(decoder.pendingBytes <= bytes.length);
      }),
      { numRuns: 500 },
    );
  });
});

describe('libvirt protocol: framing and what the collector sends', () => {
  test('a length below the header or above 16 MiB breaks the stream for good', () => {
    for (const length of [0, 27, 16 * 1024 * 1024 + 1]) {
      const decoder = new LibvirtFrameDecoder();
      const bad = Buffer.alloc(4);
      bad.writeUInt32BE(length, 0);
      const out = decoder.push(Buffer.concat([bad, encodeKeepalive(1)]));
      assert.deepEqual(
        out.map((f) => f.kind),
        ['fatal'],
      );
      assert.deepEqual(decoder.push(encodeKeepalive(1)), []);
    }
  });

  test('calls and keepalives are byte-exact', () => {
    assert.equal(
      encodeCall(0x20008086, 66, 1).toString('hex'),
      '0000001c' + '20008086' + '00000001' + '00000042' + '00000000' + '00000001' + '00000000',
    );
    assert.equal(
      encodeKeepalive(2).toString('hex'),
      '0000001c6b656570000000010000000200000002' + '00000000' + '00000000',
    );
    const ka = frames(new LibvirtFrameDecoder().push(encodeKeepalive(1)));
    assert.equal(ka[0]?.header.prog, KEEPALIVE_PROGRAM);
    // remote_string name (present, "qemu:///system" padded to 16), flags 0
    assert.equal(
      encodeConnectOpenArgs('qemu:///system', 0).toString('hex'),
      '00000001' + '0000000e' + Buffer.from('qemu:///system\0\0').toString('hex') + '00000000',
    );
    assert.equal(encodeConnectOpenArgs(null, 0).toString('hex'), '0000000000000000');
    // dom NULL (every domain), event "STOP", flags 0
    assert.equal(
      encodeRegisterArgs('STOP', 0).toString('hex'),
      '00000000' + '00000001' + '00000004' + Buffer.from('STOP').toString('hex') + '00000000',
    );
  });

  test('one exact-name registration per event (SHUTDOWN always), or one for all', () => {
    assert.deepEqual(registrations([]), [null]);
    assert.deepEqual(registrations(['STOP', 'RESUME', 'STOP']), ['STOP', 'RESUME', 'SHUTDOWN']);
    assert.deepEqual(registrations(['SHUTDOWN', 'STOP']), ['SHUTDOWN', 'STOP']);
  });

  test('remote_error: code, domain and message', () => {
    const body = new XdrWriter()
      .int(6)
      .int(7)
      .optionalString('authentication failed: polkit denied')
      .bytes();
    assert.deepEqual(decodeRemoteError(body), {
      code: 6,
      domain: 7,
      message: 'authentication failed: polkit denied',
    });
    const framed = encodeMessage(
      { prog: 1, vers: 1, proc: 1, type: 1, serial: 1, status: 1 },
      body,
    );
    assert.equal(frames(new LibvirtFrameDecoder().push(framed))[0]?.body.length, body.length);
  });
});

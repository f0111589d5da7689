import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  ReplaySession,
  type ReplaySummary,
} from '../../../../services/cli/replay/replay-session.ts';
import type { TransitionRecord } from '../../../../services/shared/core/transition-record.ts';

const FIXTURES = new URL('../../../fixtures/qmp/', import.meta.url);

/** A record in a form a table row can spell: the device's last path element, states, seconds. */
type Row =
  | ['prepare', string, string, string, string | null, number | null]
  | ['dwell', string, string, string, number];

function row(record: TransitionRecord): Row {
  const device = record.qomPath.split('/').pop() ?? '';
  const micros = (s: number): number => Math.round(s * 1e6) / 1e6;
  return record.type === 'prepare'
    ? [
        'prepare',
        device,
        record.target,
        record.outcome,
        record.next,
        record.seconds === null ? null : micros(record.seconds),
      ]
    : ['dwell', device, record.state, record.next, micros(record.seconds)];
}

function replay(files: string[], timeout?: number): { rows: Row[]; summary: ReplaySummary } {
  const session = new ReplaySession(
    timeout === undefined ? {} : { prepareTimeoutSeconds: timeout },
  );
  const records: TransitionRecord[] = [];
  for (const file of files) {
    const transcript = session.openTranscript(file.replace(/^.*\//, '').replace(/\.qmp$/, ''));
    records.push(...transcript.push(readFileSync(new URL(file, FIXTURES))), ...transcript.end());
  }
  const end = session.finish();
  records.push(...end.records);
  return { rows: records.map(row), summary: end.summary };
}

interface Case {
  name: string;
  files: string[];
  rows: Row[];
  summary?: Partial<ReplaySummary>;
  timeout?: number;
}

// Sequences from the QEMU research (§2.6 of the project's domain notes), with timestamps chosen
// so that each duration is recognisable.
const CASES: Case[] = [
  {
    name: 'source with P2P and pre-copy: the prepare completes into pre-copy-p2p',
    files: ['vfio/source-p2p-precopy.qmp'],
    rows: [
      ['prepare', 'vf0', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0.0125],
      ['dwell', 'vf0', 'pre-copy', 'pre-copy-p2p', 2.2826],
      ['dwell', 'vf0', 'pre-copy-p2p', 'stop-copy', 0.007],
      ['dwell', 'vf0', 'stop-copy', 'stop', 0.01],
    ],
    summary: { events: 12, rejected: 0, prepares: 1, dwells: 3 },
  },
  {
    name: 'source with pre-copy but no P2P: no prepare at all',
    files: ['vfio/source-precopy-only.qmp'],
    rows: [
      ['dwell', 'vf0', 'pre-copy', 'stop-copy', 1.4996],
      ['dwell', 'vf0', 'stop-copy', 'stop', 0.02],
    ],
  },
  {
    name: 'source with P2P but no pre-copy',
    files: ['vfio/source-p2p-only.qmp'],
    rows: [
      ['dwell', 'vf0', 'running-p2p', 'stop', 0.005],
      ['dwell', 'vf0', 'stop', 'stop-copy', 0.025],
      ['dwell', 'vf0', 'stop-copy', 'stop', 0.03],
    ],
  },
  {
    name: 'destination: resuming, then running-p2p and running after RESUME',
    files: ['vfio/destination.qmp'],
    rows: [
      ['dwell', 'vf0', 'resuming', 'running-p2p', 2.298],
      ['dwell', 'vf0', 'running-p2p', 'running', 0.003],
    ],
  },
  {
    name: 'failed prepare: the device is reset and the next state is running',
    files: ['vfio/failed-prepare-reset.qmp'],
    rows: [
      ['prepare', 'vf0', 'pre-copy-p2p', 'failed', 'running', 0.28],
      ['dwell', 'vf0', 'pre-copy', 'running', 1.4796],
      ['dwell', 'vf0', 'running', 'stop', 0.001],
      ['dwell', 'vf0', 'stop', 'running-p2p', 0.011],
      ['dwell', 'vf0', 'running-p2p', 'running', 0.002],
    ],
  },
  {
    name: 'cancel during pre-copy: back to running after MIGRATION cancelled',
    files: ['vfio/cancel-precopy.qmp'],
    rows: [['dwell', 'vf0', 'pre-copy', 'running', 1.1056]],
  },
  {
    name: 'same-state repeats are not changes: dwell counts from the first',
    files: ['vfio/same-state-repeats.qmp'],
    rows: [
      ['dwell', 'vf0', 'running', 'pre-copy', 0.02],
      ['dwell', 'vf0', 'pre-copy', 'stop-copy', 0.02],
    ],
    summary: { duplicates: 0 },
  },
  {
    name: 'pretty=on monitor: multi-line messages decode the same',
    files: ['vfio/pretty-source.qmp'],
    rows: [
      ['prepare', 'vf0', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0.004],
      ['dwell', 'vf0', 'pre-copy', 'pre-copy-p2p', 0.1036],
      ['dwell', 'vf0', 'pre-copy-p2p', 'stop-copy', 0.006],
    ],
    summary: { rejected: 0, events: 5 },
  },
  {
    name: 'the wall clock steps back: durations clamp at 0',
    files: ['vfio/clock-step-back.qmp'],
    rows: [
      ['prepare', 'vf0', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0],
      ['dwell', 'vf0', 'pre-copy', 'pre-copy-p2p', 0.0946],
      ['dwell', 'vf0', 'pre-copy-p2p', 'stop-copy', 0],
      ['dwell', 'vf0', 'stop-copy', 'stop', 0.015],
    ],
  },
  {
    name: 'two VMs with the same qom-path keep separate timelines',
    files: ['vfio/vm-a.qmp', 'vfio/vm-b.qmp'],
    rows: [
      ['prepare', 'vf0', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0.01],
      ['dwell', 'vf0', 'pre-copy', 'pre-copy-p2p', 0.06],
      ['prepare', 'vf0', 'pre-copy-p2p', 'failed', 'running', 0.032],
      ['dwell', 'vf0', 'pre-copy', 'running', 0.035],
    ],
    summary: { vms: 2, devices: 2 },
  },
  {
    name: 'lifecycle: duplicate, two devices, second prepare, future state, timeout, shutdown, end',
    files: ['vfio/lifecycle.qmp'],
    rows: [
      ['prepare', 'vf0', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0.03],
      ['dwell', 'vf0', 'pre-copy', 'pre-copy-p2p', 0.13],
      ['prepare', 'vf1', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0.0195],
      ['dwell', 'vf1', 'pre-copy', 'pre-copy-p2p', 0.15],
      ['prepare', 'vf0', 'pre-copy-p2p', 'failed', 'pre-copy-p2p-prepare', 0.01],
      ['prepare', 'vf1', 'pre-copy-p3p', 'completed', 'pre-copy-p3p', 0.02],
      ['dwell', 'vf1', 'pre-copy-p2p', 'pre-copy-p3p', 0.17],
      // 10.000 s after it is not "more than" the timeout; the next event, 1 ms later, is.
      ['prepare', 'vf0', 'pre-copy-p2p', 'timed_out', null, null],
      ['prepare', 'vf1', 'pre-copy-p2p', 'aborted', null, null],
      ['prepare', 'vf2', 'pre-copy-p2p', 'unfinished', null, null],
    ],
    summary: { duplicates: 1, devices: 3, events: 17, rejected: 0 },
  },
  {
    name: 'a shorter prepare timeout ends the second prepare earlier',
    files: ['vfio/lifecycle.qmp'],
    timeout: 0.05,
    rows: [
      ['prepare', 'vf0', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0.03],
      ['dwell', 'vf0', 'pre-copy', 'pre-copy-p2p', 0.13],
      ['prepare', 'vf1', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0.0195],
      ['dwell', 'vf1', 'pre-copy', 'pre-copy-p2p', 0.15],
      ['prepare', 'vf0', 'pre-copy-p2p', 'failed', 'pre-copy-p2p-prepare', 0.01],
      ['prepare', 'vf0', 'pre-copy-p2p', 'timed_out', null, null],
      ['prepare', 'vf1', 'pre-copy-p3p', 'completed', 'pre-copy-p3p', 0.02],
      ['dwell', 'vf1', 'pre-copy-p2p', 'pre-copy-p3p', 0.17],
      ['prepare', 'vf1', 'pre-copy-p2p', 'aborted', null, null],
      ['prepare', 'vf2', 'pre-copy-p2p', 'unfinished', null, null],
    ],
  },
  {
    name: 'malformed input: each bad piece rejected once, the valid events all kept',
    files: ['vfio/malformed.qmp'],
    rows: [
      ['prepare', 'vf0', 'pre-copy-p2p', 'completed', 'pre-copy-p2p', 0.012],
      ['dwell', 'vf0', 'pre-copy', 'pre-copy-p2p', 0.112],
    ],
    summary: {
      events: 3,
      rejected: 11,
      rejectedByReason: {
        not_json: 3,
        not_object: 1,
        not_qmp: 1,
        invalid_utf8: 1,
        too_large: 0,
        too_deep: 0,
        bad_timestamp: 3,
        bad_vfio_data: 2,
      },
    },
  },
];

describe('replay of QMP transcripts', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const { rows, summary } = replay(c.files, c.timeout);
      assert.deepEqual(rows, c.rows);
      for (const [key, value] of Object.entries(c.summary ?? {})) {
        assert.deepEqual(summary[key as keyof ReplaySummary], value, `summary.${key}`);
      }
    });
  }
});

describe('real QEMU 7.2 transcripts (CRLF, captured raw from the QMP socket)', () => {
  // Event counts per transcript, the "event" members in each file (grep -c).
  const REAL: Array<[file: string, events: number]> = [
    ['qemu-7.2/normal-src.qmp', 9],
    ['qemu-7.2/normal-dst.qmp', 5],
    ['qemu-7.2/cancel-src.qmp', 6],
    ['qemu-7.2/cancel-dst.qmp', 3],
    ['qemu-7.2/failafterstop-src.qmp', 11],
    ['qemu-7.2/failafterstop-dst.qmp', 1],
    ['qemu-7.2/preswitchover-src.qmp', 9],
    ['qemu-7.2/preswitchover-dst.qmp', 3],
    ['qemu-7.2/fail-src.qmp', 2],
  ];
  for (const [file, events] of REAL) {
    test(`${file}: every event decoded, nothing rejected, no VFIO records`, () => {
      const { rows, summary } = replay([file]);
      assert.deepEqual(rows, []);
      assert.equal(summary.rejected, 0);
      assert.equal(summary.events, events);
    });
  }

  test('the pretty=on greeting decodes as one message', () => {
    const { summary } = replay(['qemu-7.2/pretty-greeting.qmp']);
    assert.equal(summary.messages, 1);
    assert.equal(summary.rejected, 0);
  });
});

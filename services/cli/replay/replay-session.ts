import { QmpDecoder } from '../../shared/core/qmp-decoder.ts';
import type { QmpMessage } from '../../shared/core/qmp-message.ts';
import {
  emptyRejectCounts,
  totalRejected,
  type RejectCounts,
} from '../../shared/core/reject-counts.ts';
import {
  TransitionEngine,
  type TransitionEngineOptions,
} from '../../shared/core/transition-engine.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import { toVmEvent } from '../../shared/core/vm-event.ts';

/**
 * Offline analysis of captured QMP transcripts: the bytes of each VM's QMP socket go through the
 * same decoder and the same transition engine as the live pipeline. Pure: callers feed bytes.
 */
export interface ReplaySummary {
  type: 'summary';
  vms: number;
  devices: number;
  /** QMP messages decoded, valid or not. */
  messages: number;
  /** Valid QMP events. */
  events: number;
  rejected: number;
  rejectedByReason: RejectCounts;
  duplicates: number;
  prepares: number;
  dwells: number;
}

export class ReplaySession {
  private readonly engine: TransitionEngine;
  private readonly rejectedByReason = emptyRejectCounts();
  /** Distinct qom-paths per VM, for the summary. */
  private readonly devicesByVm = new Map<string, Set<string>>();
  private messages = 0;
  private events = 0;
  private prepares = 0;
  private dwells = 0;

  constructor(options: Partial<TransitionEngineOptions> = {}) {
    this.engine = new TransitionEngine(options);
  }

  /** Replays one VM's transcript, chunk by chunk; returns the records its events complete. */
  openTranscript(vm: string): TranscriptReplay {
    let devices = this.devicesByVm.get(vm);
    if (devices === undefined) {
      devices = new Set();
      this.devicesByVm.set(vm, devices);
    }
    const decoder = new QmpDecoder();
    const consume = (messages: QmpMessage[]): TransitionRecord[] => {
      const out: TransitionRecord[] = [];
      for (const message of messages) this.applyMessage(vm, devices, message, out);
      this.count(out);
      return out;
    };
    return {
      push: (chunk) => consume(decoder.push(chunk)),
      end: () => consume(decoder.end()),
    };
  }

  /** Ends the replay: open prepares become `unfinished`. */
  finish(): { records: TransitionRecord[]; summary: ReplaySummary } {
    const records = this.engine.finish();
    this.count(records);
    let devices = 0;
    for (const paths of this.devicesByVm.values()) devices += paths.size;
    return {
      records,
      summary: {
        type: 'summary',
        vms: this.devicesByVm.size,
        devices,
        messages: this.messages,
        events: this.events,
        rejected: totalRejected(this.rejectedByReason),
        rejectedByReason: { ...this.rejectedByReason },
        duplicates: this.engine.stats().duplicates,
        prepares: this.prepares,
        dwells: this.dwells,
      },
    };
  }

  private applyMessage(
    vm: string,
    devices: Set<string>,
    message: QmpMessage,
    out: TransitionRecord[],
  ): void {
    this.messages++;
    if (message.kind === 'invalid') {
      this.rejectedByReason[message.reason]++;
      return;
    }
    if (message.kind !== 'event') return;
    const event = toVmEvent('', vm, message);
    if (event.kind === 'invalid') {
      this.rejectedByReason[event.reason]++;
      return;
    }
    this.events++;
    if (event.kind === 'vfio') devices.add(event.qomPath);
    out.push(...this.engine.apply(event));
  }

  private count(records: TransitionRecord[]): void {
    for (const record of records) {
      if (record.type === 'prepare') this.prepares++;
      else this.dwells++;
    }
  }
}

export interface TranscriptReplay {
  push(chunk: Uint8Array): TransitionRecord[];
  end(): TransitionRecord[];
}

/**
 * Loaded with `--import` into a collector child process by the e2e tests, never by the product:
 * a fault the test can trigger from outside. When an event whose Avro value contains the bytes of
 * VFIO_TEST_FAULT_MARKER has been handed to the spool, `append` throws, as a bug in the event
 * path would: the error escapes the QMP socket's data handler while that event (and any before it
 * in the same read) still waits in the spool's queue, unwritten.
 */
import { Spool } from '../../../services/collector/io/spool.ts';

const marker = Buffer.from(process.env['VFIO_TEST_FAULT_MARKER'] ?? '');
const { append } = Object.getOwnPropertyDescriptors(Spool.prototype);
const original = append?.value as (this: Spool, ...args: Parameters<Spool['append']>) => boolean;

Spool.prototype.append = function (this: Spool, ...args: Parameters<Spool['append']>): boolean {
  const accepted = original.apply(this, args);
  if (marker.length > 0 && Buffer.from(args[0].value).includes(marker)) {
    throw new Error('injected fault: the event path failed after the spool accepted an event');
  }
  return accepted;
};

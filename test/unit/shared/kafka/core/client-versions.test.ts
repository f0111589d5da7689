import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientApiVersion } from '../../../../../services/shared/kafka/core/client-versions.ts';

test('AddPartitionsToTxn: the client form (v3) even when the broker offers its v4/v5', () => {
  assert.equal(clientApiVersion('AddPartitionsToTxn', 5), 3);
  assert.equal(clientApiVersion('AddPartitionsToTxn', 4), 3);
  assert.equal(clientApiVersion('AddPartitionsToTxn', 3), 3);
});

test('an older broker: its own highest version, which is a client version', () => {
  assert.equal(clientApiVersion('AddPartitionsToTxn', 2), 2);
});

test('other requests: the highest the broker supports', () => {
  assert.equal(clientApiVersion('Produce', 12), 12);
  assert.equal(clientApiVersion('AddOffsetsToTxn', 4), 4);
});

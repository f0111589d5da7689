import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stageAcls } from '../../../../../services/shared/kafka/core/acls.ts';

const text = (acls: ReturnType<typeof stageAcls>) =>
  acls.map(
    (a) =>
      `${a.principal} ${a.operation} ${a.resourceType}:${a.resourceName}${a.patternType === 'PREFIXED' ? '*' : ''}`,
  );

test('the collector may only write and describe the events topic', () => {
  assert.deepEqual(text(stageAcls({}, ['collector'])), [
    'User:collector WRITE TOPIC:vfio.events.v1',
    'User:collector DESCRIBE_CONFIGS TOPIC:vfio.events.v1',
  ]);
});

test('the exporter reads the transitions topic and its group; audit only reads', () => {
  assert.deepEqual(text(stageAcls({ exporterGroup: 'g' }, ['exporter'])), [
    'User:exporter READ TOPIC:vfio.transitions.v1',
    'User:exporter READ GROUP:g',
  ]);
  const audit = stageAcls({}, ['audit']);
  assert.ok(audit.every((a) => a.operation === 'READ' || a.operation === 'DESCRIBE_CONFIGS'));
});

test('the processor: its inputs, outputs, group and transactional ids under its prefix', () => {
  const acls = text(
    stageAcls(
      {
        principals: { processor: 'User:proc' },
        eventsTopic: 'e',
        transitionsTopic: 't',
        stateTopic: 's',
        deadLetterTopic: 'd',
        processorGroup: 'pg',
      },
      ['processor'],
    ),
  );
  for (const expected of [
    'User:proc READ TOPIC:e',
    'User:proc READ GROUP:pg',
    'User:proc READ TOPIC:s',
    'User:proc WRITE TOPIC:s',
    'User:proc WRITE TOPIC:t',
    'User:proc WRITE TOPIC:d',
    'User:proc WRITE TRANSACTIONAL_ID:pg*',
  ])
    assert.ok(acls.includes(expected), expected);
  assert.ok(!acls.some((a) => a.includes('WRITE TOPIC:e')), 'never writes its input');
});

test('every binding has a reason', () => {
  assert.ok(stageAcls().every((a) => a.reason.length > 10));
});

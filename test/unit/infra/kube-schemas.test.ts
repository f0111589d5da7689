/**
 * infra/helm/kube-schemas.ts: the OpenAPI-to-JSON-schema conversion that makes kubeconform strict.
 * The e2e test (test/e2e/infra/helm.test.ts) shows the generated schemas refuse real mistakes;
 * these cases pin the rules one by one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  crdKinds,
  openApiKinds,
  schemaFileName,
  toStrictSchema,
} from '../../../infra/helm/kube-schemas.ts';

describe('toStrictSchema', () => {
  test('an object that lists its properties refuses others', () => {
    const out = toStrictSchema(
      { type: 'object', properties: { a: { type: 'string' } } },
      new Set(),
    );
    assert.equal(out['additionalProperties'], false);
  });

  test('unless it keeps unknown fields or says what the others are', () => {
    const kept = toStrictSchema(
      { type: 'object', properties: {}, 'x-kubernetes-preserve-unknown-fields': true },
      new Set(),
    );
    assert.equal(kept['additionalProperties'], undefined);
    const map = toStrictSchema(
      { type: 'object', properties: {}, additionalProperties: { type: 'string' } },
      new Set(),
    );
    assert.deepEqual(map['additionalProperties'], { type: 'string' });
  });

  test('refs move to definitions and are collected; format and nullable go, properties so named stay', () => {
    const reached = new Set<string>();
    const out = toStrictSchema(
      {
        properties: {
          format: { type: 'string', format: 'int-or-string' },
          nullable: { type: 'boolean' },
          spec: { allOf: [{ $ref: '#/components/schemas/io.k8s.X' }] },
          items: { type: 'array', items: { type: 'integer', format: 'int32', nullable: true } },
        },
      },
      reached,
    );
    assert.deepEqual(out['properties'], {
      format: { type: 'string' },
      nullable: { type: 'boolean' },
      spec: { allOf: [{ $ref: '#/definitions/io.k8s.X' }] },
      items: { type: 'array', items: { type: ['integer', 'null'] } },
    });
    assert.deepEqual([...reached], ['io.k8s.X']);
  });
});

test('schemaFileName: the names kubeconform looks up', () => {
  assert.equal(schemaFileName({ group: '', version: 'v1', kind: 'Service' }), 'service-v1.json');
  assert.equal(
    schemaFileName({ group: 'apps', version: 'v1', kind: 'DaemonSet' }),
    'daemonset-apps-v1.json',
  );
  assert.equal(
    schemaFileName({ group: 'monitoring.coreos.com', version: 'v1', kind: 'ServiceMonitor' }),
    'servicemonitor-monitoring-v1.json',
  );
});

test('openApiKinds: a standalone schema per kind, with the definitions it reaches only', () => {
  const document = {
    components: {
      schemas: {
        'io.k8s.Thing': {
          'x-kubernetes-group-version-kind': [{ group: 'g.io', version: 'v1', kind: 'Thing' }],
          properties: { spec: { $ref: '#/components/schemas/io.k8s.Spec' } },
        },
        'io.k8s.Spec': { properties: { self: { $ref: '#/components/schemas/io.k8s.Spec' } } },
        'io.k8s.Unused': { type: 'string' },
      },
    },
  };
  const [thing, ...rest] = openApiKinds(document);
  assert.equal(rest.length, 0);
  assert.deepEqual(thing?.gvk, { group: 'g.io', version: 'v1', kind: 'Thing' });
  assert.deepEqual(Object.keys(thing?.schema['definitions'] ?? {}), ['io.k8s.Spec']);
  const properties = thing?.schema['properties'] as Record<string, unknown>;
  assert.deepEqual(properties['apiVersion'], { type: 'string', enum: ['g.io/v1'] });
  assert.deepEqual(properties['kind'], { type: 'string', enum: ['Thing'] });
});

test('crdKinds: every served version of a CustomResourceDefinition', () => {
  const version = (name: string, served: boolean) => ({
    name,
    served,
    schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object' } } } },
  });
  const kinds = crdKinds({
    spec: {
      group: 'monitoring.coreos.com',
      names: { kind: 'PrometheusRule' },
      versions: [version('v1', true), version('v1beta1', false)],
    },
  });
  assert.deepEqual(
    kinds.map((k) => k.gvk),
    [{ group: 'monitoring.coreos.com', version: 'v1', kind: 'PrometheusRule' }],
  );
  assert.equal(kinds[0]?.schema['additionalProperties'], false);
});

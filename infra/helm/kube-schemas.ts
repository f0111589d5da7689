/**
 * Writes kubeconform's JSON schemas, offline, from the Kubernetes OpenAPI v3 spec (the
 * `api/openapi-spec/v3/*.json` of the k8s.io/kubernetes Go module) and CustomResourceDefinitions
 * (the prometheus-operator module's `example/prometheus-operator-crd/*.yaml`):
 *
 *   node --import tsx infra/helm/kube-schemas.ts --openapi DIR --crd FILE... --out DIR
 *
 * One file per kind and version, named as kubeconform looks them up
 * (`{{ .ResourceKind }}{{ .KindSuffix }}.json`: `daemonset-apps-v1.json`, `service-v1.json`,
 * `servicemonitor-monitoring-v1.json`), each standalone (the definitions it reaches are copied
 * into it) and strict, as yannh/kubernetes-json-schema's `-standalone-strict` flavour:
 *
 * - an object schema that lists its `properties` refuses any other (`additionalProperties:
 *   false`), unless the API says it keeps unknown fields (`x-kubernetes-preserve-unknown-fields`);
 *   a misspelled field fails validation as the API server's strict field validation refuses it;
 * - `kind` and `apiVersion` must be the ones the file is for;
 * - OpenAPI 3.0's `nullable: true` becomes a JSON-schema type that admits null, and `format` is
 *   dropped: kubeconform compiles draft 4, which would assert formats it does not know the
 *   Kubernetes meaning of (`int-or-string`, `int64`, `byte`).
 *
 * infra/setup-system.sh runs this once per version pair and keeps the result under
 * ~/.cache/vfio-telemetry; test/e2e/infra/helm.test.ts validates the chart's manifests with it.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };

const isSchema = (v: Json | undefined): v is Schema =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const OPENAPI_REF = '#/components/schemas/';

const text = (v: Json | undefined): string => (typeof v === 'string' ? v : '');

/**
 * `schema` as a strict draft-4 schema; refs to `#/components/schemas/X` become
 * `#/definitions/X`, and X is added to `reached`. Only schema positions are walked, so a
 * property named `format` or `nullable` stays a property.
 */
export function toStrictSchema(schema: Schema, reached: Set<string>): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'format' || key === 'nullable') continue;
    if (key === '$ref' && typeof value === 'string') {
      const name = value.startsWith(OPENAPI_REF) ? value.slice(OPENAPI_REF.length) : null;
      if (name === null) throw new Error(`unexpected $ref ${value}`);
      reached.add(name);
      out[key] = `#/definitions/${name}`;
    } else if (key === 'properties' && isSchema(value)) {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, sub]) => [
          name,
          isSchema(sub) ? toStrictSchema(sub, reached) : sub,
        ]),
      );
    } else if (
      (key === 'items' || key === 'additionalProperties' || key === 'not') &&
      isSchema(value)
    ) {
      out[key] = toStrictSchema(value, reached);
    } else if ((key === 'allOf' || key === 'anyOf' || key === 'oneOf') && Array.isArray(value)) {
      out[key] = value.map((sub) => (isSchema(sub) ? toStrictSchema(sub, reached) : sub));
    } else {
      out[key] = value;
    }
  }
  if (schema['nullable'] === true && typeof schema['type'] === 'string') {
    out['type'] = [schema['type'], 'null'];
  }
  if (
    isSchema(schema['properties']) &&
    schema['additionalProperties'] === undefined &&
    schema['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out['additionalProperties'] = false;
  }
  return out;
}

export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** The file kubeconform reads for a kind (its registry's `{{ .ResourceKind }}{{ .KindSuffix }}`). */
export function schemaFileName({ group, version, kind }: GroupVersionKind): string {
  const suffix = group === '' ? `-${version}` : `-${group.split('.')[0]}-${version}`;
  return `${kind}${suffix}.json`.toLowerCase();
}

/**
 * The standalone strict schema of a kind whose root is `root`, with the definitions it reaches
 * taken from `definitions` (an OpenAPI document's component schemas, or none for a CRD).
 */
export function standaloneSchema(
  gvk: GroupVersionKind,
  root: Schema,
  definitions: Readonly<Record<string, Schema>>,
): Schema {
  const reached = new Set<string>();
  const schema = toStrictSchema(root, reached);
  const copied: Record<string, Json> = {};
  const pending = [...reached];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (name in copied) continue;
    const definition = definitions[name];
    if (definition === undefined) throw new Error(`${gvk.kind}: no definition ${name}`);
    const more = new Set<string>();
    copied[name] = toStrictSchema(definition, more);
    pending.push(...[...more].filter((n) => !(n in copied)));
  }
  const apiVersion = gvk.group === '' ? gvk.version : `${gvk.group}/${gvk.version}`;
  const properties = isSchema(schema['properties']) ? schema['properties'] : {};
  return {
    ...schema,
    properties: {
      ...properties,
      apiVersion: { type: 'string', enum: [apiVersion] },
      kind: { type: 'string', enum: [gvk.kind] },
    },
    ...(Object.keys(copied).length > 0 ? { definitions: copied } : {}),
  };
}

/** Every kind of an OpenAPI v3 document (`x-kubernetes-group-version-kind`) with its schema. */
export function openApiKinds(document: Json): { gvk: GroupVersionKind; schema: Schema }[] {
  const components = isSchema(document) ? document['components'] : undefined;
  const schemas = isSchema(components) ? components['schemas'] : undefined;
  if (!isSchema(schemas)) return [];
  const definitions = Object.fromEntries(
    Object.entries(schemas).filter((e): e is [string, Schema] => isSchema(e[1])),
  );
  return Object.values(definitions).flatMap((root) => {
    const gvks = root['x-kubernetes-group-version-kind'];
    if (!Array.isArray(gvks)) return [];
    return gvks.filter(isSchema).map((g) => {
      const gvk = { group: text(g['group']), version: text(g['version']), kind: text(g['kind']) };
      return { gvk, schema: standaloneSchema(gvk, root, definitions) };
    });
  });
}

/** Every served version of a CustomResourceDefinition with its schema. */
export function crdKinds(crd: Json): { gvk: GroupVersionKind; schema: Schema }[] {
  const spec = isSchema(crd) ? crd['spec'] : undefined;
  if (!isSchema(spec) || !isSchema(spec['names']) || !Array.isArray(spec['versions'])) return [];
  const group = text(spec['group']);
  const kind = text(spec['names']['kind']);
  return spec['versions'].filter(isSchema).flatMap((v) => {
    const validation = v['schema'];
    const root = isSchema(validation) ? validation['openAPIV3Schema'] : undefined;
    if (v['served'] === false || !isSchema(root)) return [];
    const gvk = { group, version: text(v['name']), kind };
    return [{ gvk, schema: standaloneSchema(gvk, root, {}) }];
  });
}

async function main(args: readonly string[]): Promise<number> {
  const openapi: string[] = [];
  const crds: string[] = [];
  let out = '';
  for (let i = 0; i < args.length; i++) {
    const value = args[i + 1] ?? '';
    if (args[i] === '--openapi') openapi.push(value);
    else if (args[i] === '--crd') crds.push(value);
    else if (args[i] === '--out') out = value;
    else {
      process.stderr.write(`kube-schemas: unknown argument ${args[i]}\n`);
      return 2;
    }
    i++;
  }
  if (out === '' || (openapi.length === 0 && crds.length === 0)) {
    process.stderr.write('usage: kube-schemas.ts --openapi DIR --crd FILE... --out DIR\n');
    return 2;
  }
  const kinds: { gvk: GroupVersionKind; schema: Schema }[] = [];
  for (const dir of openapi) {
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('_openapi.json')).sort()) {
      kinds.push(...openApiKinds(JSON.parse(await readFile(join(dir, file), 'utf8')) as Json));
    }
  }
  for (const file of crds) {
    for (const doc of parseAllDocuments(await readFile(file, 'utf8'))) {
      const found = crdKinds(doc.toJS() as Json);
      if (found.length === 0) throw new Error(`${basename(file)}: not a CustomResourceDefinition`);
      kinds.push(...found);
    }
  }
  await mkdir(out, { recursive: true });
  const written = new Map<string, GroupVersionKind>();
  for (const { gvk, schema } of kinds) {
    const name = schemaFileName(gvk);
    const before = written.get(name);
    // The same kind appears in several documents (every group's document carries the core
    // types it uses, and the List kinds); two groups behind one file name would be a real clash.
    if (before !== undefined && before.group !== gvk.group) {
      throw new Error(`${name}: both ${before.group} and ${gvk.group}`);
    }
    written.set(name, gvk);
    await writeFile(join(out, name), JSON.stringify(schema));
  }
  process.stdout.write(`kube-schemas: ${written.size} schemas in ${out}\n`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}

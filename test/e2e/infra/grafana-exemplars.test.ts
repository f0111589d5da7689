/**
 * The dashboards' exemplar queries against the real thing: an exporter fed transition records,
 * scraped by a real Prometheus with exemplar storage. Every panel target that asks Grafana for
 * exemplars must get some from `/api/v1/query_exemplars` (what Grafana calls for them), and the
 * slowest-devices table's query must put the slowest device first.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';
import { startFedExporter } from '../../helpers/fed-exporter.ts';
import {
  pollUntil,
  PROMETHEUS_VERSIONS,
  startPrometheus,
  substituteGrafanaVariables,
} from '../../helpers/prometheus.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface ExemplarTarget {
  where: string;
  expr: string;
}

async function exemplarTargets(): Promise<ExemplarTarget[]> {
  const dir = join(ROOT, 'infra/grafana/dashboards');
  const found: ExemplarTarget[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.json'))) {
    const dashboard = JSON.parse(await readFile(join(dir, file), 'utf8')) as {
      panels: { title: string; targets?: { expr?: string; refId: string; exemplar?: boolean }[] }[];
    };
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        if (target.exemplar !== true || target.expr === undefined) continue;
        found.push({
          where: `${file} "${panel.title}" ${target.refId}`,
          expr: substituteGrafanaVariables(target.expr, dashboard),
        });
      }
    }
  }
  return found;
}

for (const version of PROMETHEUS_VERSIONS)
  test(`every exemplar query of the dashboards returns exemplars from a scraped exporter (${version.name})`, async (t) => {
    const targets = await exemplarTargets();
    assert.ok(targets.length >= 4, `only ${targets.length} exemplar targets`);

    const exporter = await startFedExporter(t);
    const record = (vm: string, deviceId: string, seconds: number, endMicros: number) =>
      ({
        type: 'prepare',
        host: `hv-${vm.length % 2}`,
        vm,
        qomPath: `/machine/peripheral/${deviceId}`,
        deviceId,
        target: 'pre-copy-p2p',
        prepareState: 'pre-copy-p2p-prepare',
        outcome: 'completed',
        next: 'pre-copy-p2p',
        seconds,
        startMicros: endMicros - Math.round(seconds * 1e6),
        endMicros,
      }) satisfies TransitionRecord;
    // Keep observing while Prometheus scrapes, so rate() over the panels' ranges sees increases.
    let n = 0;
    const observe = () => {
      const now = Date.now() * 1000;
      for (let i = 0; i < 20; i++, n++) {
        exporter.feed(record(`vm-${n % 7}`, `vf${n % 3}`, 0.004 + (n % 9) / 1000, now), now);
      }
      exporter.feed(record('slow-vm', 'gpu-9', 2.25, now), now);
    };
    observe();
    const timer = setInterval(observe, 500);
    t.after(() => clearInterval(timer));

    const prometheus = await startPrometheus({
      binary: version.prometheus,
      t,
      targets: { 'vfio-exporter': [exporter.address] },
      extraArgs: ['--enable-feature=exemplar-storage'],
    });

    for (const { where, expr } of targets) {
      await t.test(where, async () => {
        const exemplars = await pollUntil(
          `${where} to return exemplars: ${expr}`,
          async () => {
            const now = Date.now() / 1000;
            const response = await prometheus.get(
              `/api/v1/query_exemplars?query=${encodeURIComponent(expr)}&start=${now - 600}&end=${now + 60}`,
            );
            assert.equal(response.status, 'success', `${response.error ?? ''}\n${expr}`);
            const all = (
              response.data as { exemplars: { labels: Record<string, string>; value: string }[] }[]
            ).flatMap((s) => s.exemplars);
            return all.length > 0 ? all : undefined;
          },
          60_000,
          500,
        );
        const slowest = exemplars.reduce((a, b) => (Number(b.value) > Number(a.value) ? b : a));
        assert.deepEqual(
          { value: Number(slowest.value), vm: slowest.labels.vm, device: slowest.labels.device },
          { value: 2.25, vm: 'slow-vm', device: 'gpu-9' },
        );
      });
    }
  });

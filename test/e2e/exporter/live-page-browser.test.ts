/**
 * The live page in headless Chromium: after the exporter consumed records from the real broker,
 * the page shows outcome counts, a p99 value and latency bars. EXPORTER_SCREENSHOT=file.png
 * saves what the browser saw (for looking at the page during development; never committed).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import type { PrepareOutcome } from '../../../services/shared/core/transition-record.ts';
import { uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { prepareRecord, produce, scrape, series, startTestExporter } from './exporter-harness.ts';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A spread of latencies around 10–40 ms with a slow tail, deterministic. */
function latencies(n: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    const u = ((i * 7919) % n) / n;
    return 0.008 * Math.exp(2.2 * u * u) + (u > 0.97 ? 0.12 : 0);
  });
}

test(
  'the live page shows outcome counts, quantiles and latency bars',
  { timeout: 120_000 },
  async (t) => {
    const topic = await uniqueTopic(t, 'exporter-page');
    const codec = createTransitionCodec();
    const extra: [PrepareOutcome, number | null][] = [
      ...latencies(6).map((s): [PrepareOutcome, number] => ['failed', s * 3]),
      ['timed_out', null],
      ['timed_out', null],
      ['aborted', null],
      ['unfinished', null],
    ];
    const records = [
      ...latencies(240).map((s, i) => codec.encode(prepareRecord(`host-${i % 4}`, 'completed', s))),
      ...extra.map(([outcome, s]) => codec.encode(prepareRecord('host-0', outcome, s))),
      Buffer.from('poison'),
    ];
    await produce(t, topic, records);
    const exporter = await startTestExporter(t, topic, { 'quantile-interval-ms': '200' });
    await waitFor(
      async () =>
        (await scrape(exporter.http.url)).get(series('vfio_exporter_records_consumed_total')) ===
        records.length,
      { timeoutMs: 60_000, description: 'records consumed' },
    );

    const userDataDir = await mkdtemp(join(tmpdir(), 'vfio-chromium-'));
    t.after(() => rm(userDataDir, { recursive: true, force: true }));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      viewport: { width: 1360, height: 940 },
    });
    t.after(() => context.close());
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    const outside: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(exporter.http.url)) outside.push(r.url());
    });

    await page.goto(`${exporter.http.url}/`);
    await page.waitForFunction(
      () => {
        const p99 = document.getElementById('p99')?.textContent ?? '—';
        const completed = document.querySelector('#outcomes tr[data-outcome="completed"] .count');
        return p99 !== '—' && completed !== null && completed.textContent !== '0';
      },
      undefined,
      { timeout: 15_000 },
    );

    const text = async (selector: string) => (await page.locator(selector).textContent()) ?? '';
    assert.equal(await text('#outcomes tr[data-outcome="completed"] .count'), '240');
    assert.equal(await text('#outcomes tr[data-outcome="timed_out"] .count'), '2');
    assert.match(await text('#p99'), /^\d+(\.\d+)? (µs|ms|s)$/);
    assert.match(await text('#p50'), /ms$/);
    assert.equal(await text('#consumed'), String(records.length));
    assert.equal(await text('#invalid'), '1');
    assert.equal(await text('#ready'), 'ready');
    assert.ok((await page.locator('#distributions .bar:not(.empty)').count()) > 3);
    assert.ok((await page.locator('#quantiles path.line').count()) === 3);
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(outside, [], 'the page loads nothing from elsewhere');

    const screenshot = process.env['EXPORTER_SCREENSHOT'];
    if (screenshot !== undefined && screenshot !== '') {
      // Let a few quantile points accumulate so the chart has a line, not a dot.
      await page.waitForFunction(
        () =>
          (document.querySelector('#quantiles path.l99')?.getAttribute('d') ?? '').split('L')
            .length > 4,
        undefined,
        { timeout: 10_000 },
      );
      await page.screenshot({ path: screenshot, fullPage: true });
    }
  },
);

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
import { countColour, decodePng } from './png-pixels.ts';

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
    // Three slow devices on their own VMs: the slowest-prepares table must name them first.
    const slow = [
      { ...prepareRecord('host-2', 'completed', 1.75), vm: 'slow-vm-2', deviceId: 'gpu-2' },
      { ...prepareRecord('host-1', 'failed', 0.875), vm: 'slow-vm-1', deviceId: '' },
      { ...prepareRecord('host-3', 'completed', 0.5), vm: 'slow-vm-3', deviceId: 'nvme-3' },
    ];
    const completedByHost = latencies(240).map((s, i) => ({ host: `host-${i % 4}`, s }));
    const records = [
      ...completedByHost.map(({ host, s }) => codec.encode(prepareRecord(host, 'completed', s))),
      ...slow.map((r) => codec.encode(r)),
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
    assert.equal(await text('#outcomes tr[data-outcome="completed"] .count'), '242');
    assert.equal(await text('#outcomes tr[data-outcome="timed_out"] .count'), '2');
    assert.match(await text('#p99'), /^\d+(\.\d+)? (µs|ms|s)$/);
    assert.match(await text('#p50'), /ms$/);
    assert.equal(await text('#consumed'), String(records.length));
    assert.equal(await text('#invalid'), '1');
    assert.equal(await text('#ready'), 'ready');
    assert.ok((await page.locator('#distributions .bar:not(.empty)').count()) > 3);
    assert.ok((await page.locator('#quantiles path.line').count()) === 3);

    // The slowest recent prepares: slowest first, the budget marked, sortable.
    const slowestRows = page.locator('#slowest tbody tr');
    const column = (n: number) =>
      page.$$eval(`#slowest tbody tr td:nth-child(${n})`, (cells) =>
        cells.map((c) => c.firstChild?.textContent ?? ''),
      );
    assert.ok((await slowestRows.count()) > 3);
    assert.deepEqual((await column(2)).slice(0, 3), ['slow-vm-2', 'slow-vm-1', 'slow-vm-3']);
    assert.deepEqual((await column(3)).slice(0, 3), ['gpu-2', 'peripheral/nic0', 'nvme-3']);
    assert.equal(await text('#slowest tbody tr:first-child td:nth-child(5)'), 'completed');
    assert.equal(await text('#slowest tbody tr:first-child td.seconds'), '1.75 sover budget');
    const overRows = await page.locator('#slowest tbody tr.over').count();
    const shown = await page.$$eval('#slowest tbody tr td.seconds', (cells) =>
      cells.map((c) => Number((c as HTMLElement).title.replace(' s', ''))),
    );
    assert.equal(overRows, shown.filter((v) => v > 0.05).length);
    assert.ok(overRows >= 3);
    assert.ok((await column(1)).every((h) => /^host-\d$/.test(h)));
    await page.locator('#slowest th[data-sort="vm"] button').click();
    assert.equal(await page.getAttribute('#slowest th[data-sort="vm"]', 'aria-sort'), 'ascending');
    const byVm = await column(2);
    assert.deepEqual(
      byVm,
      [...byVm].sort((a, b) => a.localeCompare(b)),
    );
    await page.locator('#slowest th[data-sort="seconds"] button').click();
    assert.equal((await column(2))[0], 'slow-vm-2');

    // Per host: prepares, p99 and over-budget counts of completed prepares.
    const hostRows = await page.$$eval('#hosts tbody tr', (rows) =>
      rows.map((r) => ({
        host: (r as HTMLElement).dataset['host'],
        prepares: r.querySelector('.prepares')?.textContent,
        p99: r.querySelector('.p99')?.textContent,
        over: r.querySelector('.over')?.textContent,
      })),
    );
    assert.deepEqual(
      hostRows.map((r) => r.host),
      ['host-0', 'host-1', 'host-2', 'host-3'],
    );
    const completedOn = (host: string) => [
      ...completedByHost.filter((c) => c.host === host).map((c) => c.s),
      ...slow
        .filter((r) => r.host === host && r.type === 'prepare' && r.outcome === 'completed')
        .map((r) => r.seconds ?? 0),
    ];
    for (const row of hostRows) {
      const host = row.host ?? '';
      assert.equal(row.over, String(completedOn(host).filter((v) => v > 0.05).length), host);
      assert.match(row.p99 ?? '', /^\d+(\.\d+)? (ms|s)$/, host);
    }
    assert.equal(hostRows[0]?.prepares, String(60 + extra.length));

    // What the browser drew: the table has rows and the budget badges are visibly red.
    const shot = decodePng(await page.locator('#slowest').screenshot());
    assert.ok(shot.height > 40 * 4, `table only ${shot.height} px high`);
    const badgeRed = countColour(shot, [0xd1, 0x49, 0x3f]);
    assert.ok(badgeRed > overRows * 50, `only ${badgeRed} red pixels for ${overRows} badges`);
    const dark = countColour(shot, [0x1d, 0x23, 0x30], 60);
    assert.ok(dark > 2000, `only ${dark} text pixels`);

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

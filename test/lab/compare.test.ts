import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compare, type ComparePlan } from '../../src/lab/compare.js';
import { MODELS, pickModels } from '../../src/lab/models/index.js';
import { htmlReport, textReport } from '../../src/lab/report.js';

const CLI = fileURLToPath(new URL('../../bin/edgeproc.js', import.meta.url));

/** Small samples: what is checked is that every figure is there, not what it is. */
const TINY: ComparePlan = {
  coldSamples: 2,
  coldRounds: 1,
  warmUpSec: 0.2,
  warmSec: 0.5,
  warmConnections: 4,
  warmRounds: 1,
  memoryCounts: [1, 2],
  neighbourRate: 100,
  hostileSec: 0.6,
  limits: { cpuMs: 50, memoryMb: 64 },
};

/**
 * The product beside one other model, not all six (those took ~90 s of the suite's time in CI):
 * each model's own behaviour, its runaway, its memory bomb, its processes, is tested in its own
 * file (test/lab/*.test.ts). What this checks is what compare adds: every experiment run and
 * reported for each model. vm is the other because its memory bomb takes its whole host down,
 * the case the crash experiment must report rather than trip over.
 */
const RUN = pickModels(['process-pool', 'vm']);

describe('edgeproc compare', () => {
  it('reports every figure for each model it runs, and the reason for any unavailable one', async () => {
    const lines: string[] = [];
    const report = await compare(RUN, TINY, (line) => lines.push(line));
    expect(report.models.map((m) => m.name)).toEqual(['process-pool', 'vm']);
    expect(report.machine).toMatchObject({ cores: expect.any(Number), node: process.version });
    for (const model of report.models) {
      if (!model.available) {
        expect(model.unavailableReason).toMatch(/\w/);
        continue;
      }
      expect(model.errors).toEqual([]);
      expect(model.coldStartMs).toMatchObject({ samples: 2, p50: expect.any(Number), p99: expect.any(Number) });
      expect(model.warm!.requestsPerSec).toBeGreaterThan(0);
      expect(model.warm!.latencyMs.p99).toBeGreaterThan(0);
      expect(model.memory!.perTenantMiB.map((p) => p.tenants)).toEqual([1, 2]);
      expect(model.runaway).toMatchObject({ stopped: expect.any(Boolean), neighbourErrors: expect.any(Number), neighbourP99Ms: expect.any(Number) });
      expect(model.crash).toMatchObject({ neighbourErrors: expect.any(Number), othersServeAfter: expect.any(Boolean) });
    }
    const pool = report.models.find((m) => m.name === 'process-pool')!;
    // The product's promise: a runaway is stopped and its neighbour sees no error.
    expect(pool.runaway).toMatchObject({ stopped: true, status: 503, neighbourErrors: 0 });
    expect(pool.crash).toMatchObject({ neighbourErrors: 0, othersServeAfter: true });
    expect(report.ratios.find((r) => r.name === 'process-pool')).toMatchObject({ coldStartP50: 1, warmRequestsPerSec: 1 });
    expect(lines.some((l) => l.includes('[cold start] process-pool'))).toBe(true);
    const text = textReport(report);
    for (const model of report.models) expect(text).toContain(model.name);
    expect(htmlReport(report)).toMatch(/^<!doctype html>[\s\S]*<svg[\s\S]*<\/html>\n$/);
  }, 180_000);

  it('exits 2 naming the models when --models names an unknown one', async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'compare', '--models', 'process-pool,teleport'], (error, _stdout, stderr) =>
        resolve({ code: error ? (error as { code?: number }).code ?? null : 0, stderr }),
      );
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`edgeproc: unknown model "teleport"; the models are: ${MODELS.map((m) => m.name).join(', ')}\n`);
  });

  it('writes the JSON it was asked for', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeproc-compare-'));
    const file = join(dir, 'out.json');
    await new Promise<void>((resolve, reject) =>
      execFile(process.execPath, [CLI, 'bench', '--quick', '--json', file], { timeout: 120_000 }, (error) => (error ? reject(error) : resolve())),
    );
    const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, { samples: number; p50: number; p99: number }>;
    for (const key of ['hit', 'miss', 'burst']) expect(json[key]).toMatchObject({ samples: expect.any(Number), p50: expect.any(Number), p99: expect.any(Number) });
    // Cold starts answered with an error are counted per case, beside the figures of the rest.
    expect(json.failed).toEqual({ hit: expect.any(Number), miss: expect.any(Number), burst: expect.any(Number) });
    expect(json.hit!.p50).toBeLessThan(json.miss!.p50);
  }, 150_000);
});

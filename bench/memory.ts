/**
 * Memory per tenant: 50 workers each hit once (--max-instances 1), so 50 live
 * idle tenant children, plus the warm pool. PSS of the tenant children from
 * /proc/PID/smaps_rollup, summed and divided by 50; RSS and USS per child
 * beside it; and the PSS of a warm (unspecialised) child measured in the same
 * sharing conditions. The daemon runs in this process (startDaemon) so that
 * tenant and warm children can be told apart. Target (issue 2): ≤ 10 MiB PSS per tenant.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import type * as ConfigModule from '../src/config.js';
import type * as DaemonModule from '../src/daemon.js';
import type * as LogModule from '../src/log.js';
import { buildRoot } from './lib/build.js';
import { describeMachine, machine } from './lib/machine.js';
import { table, verdict, writeResult } from './lib/report.js';
import { processMemory, type ProcessMemory } from './lib/smaps.js';
import { median } from './lib/stats.js';
import { tenantDir } from './lib/tenants.js';

const TENANTS = 50;
const WARM_POOL = 2;
const SETTLE_MS = 3_000;

export async function memory(): Promise<void> {
  const facts = machine();
  const { dir, names } = tenantDir(TENANTS);
  console.log('\n## memory — per live idle tenant\n');
  console.log(`method: in-process daemon on a directory of ${TENANTS} tiny tenants, --max-instances 1, --warm-pool ${WARM_POOL};`);
  console.log(`        each tenant hit once, then the pool refilled and ${SETTLE_MS} ms idle; PSS/RSS/USS from /proc/PID/smaps_rollup`);
  console.log(`        of every tenant child (daemon.broker.instances()) and every warm child (pool.live minus tenants).`);
  console.log(describeMachine(facts));

  // The daemon from the private copy of the build, as the other benchmarks run it.
  const { buildServeConfig } = (await import(`${buildRoot()}dist/src/config.js`)) as typeof ConfigModule;
  const { startDaemon } = (await import(`${buildRoot()}dist/src/daemon.js`)) as typeof DaemonModule;
  const { Logger } = (await import(`${buildRoot()}dist/src/log.js`)) as typeof LogModule;
  const problems: LogModule.LogRecord[] = [];
  const log = new Logger((record) => {
    if (record.level === 'warn' || record.level === 'error') problems.push(record);
  });
  let daemon: DaemonModule.Daemon | undefined;
  const agent = new Agent({ connections: 1 });
  try {
    daemon = await startDaemon(
      buildServeConfig(dir, { port: 0, adminPort: 0, warmPool: WARM_POOL, maxInstances: 1, idleTimeout: 600_000 }),
      log,
    );
    await daemon.pool.filled();
    for (const name of names) {
      const { statusCode, body } = await request(`${daemon.url}/`, { dispatcher: agent, headers: { host: `${name}.localhost` } });
      await body.text();
      if (statusCode !== 200) throw new Error(`${name} answered ${statusCode}`);
    }
    await daemon.pool.filled();
    await sleep(SETTLE_MS);

    const tenants = daemon.broker.instances();
    if (tenants.length !== TENANTS) throw new Error(`expected ${TENANTS} tenant instances, found ${tenants.length}`);
    const tenantPids = new Set(tenants.map((i) => i.pid!));
    const warmPids = [...daemon.pool.live].map((i) => i.pid!).filter((pid) => !tenantPids.has(pid));
    const tenantMem = [...tenantPids].map(processMemory);
    const warmMem = warmPids.map(processMemory);

    const mib = (kb: number) => kb / 1024;
    const perTenantPss = mib(sum(tenantMem, 'pssKb')) / TENANTS;
    const rows = [
      describe('tenant child', tenantMem),
      describe('warm child', warmMem),
    ];
    console.log('');
    console.log(table(['children', 'count', 'PSS mean MiB', 'PSS median', 'PSS max', 'RSS mean MiB', 'USS mean MiB', 'USS max'], rows));
    console.log('');
    console.log(
      table(
        ['figure', 'value', 'target', 'verdict'],
        [
          ['PSS per tenant MiB (sum / 50)', perTenantPss, '≤ 10', verdict(perTenantPss <= 10)],
          ['PSS per warm child MiB', mib(sum(warmMem, 'pssKb')) / Math.max(1, warmMem.length), '', ''],
          ['PSS of all children MiB', mib(sum(tenantMem, 'pssKb') + sum(warmMem, 'pssKb')), '', ''],
        ],
      ),
    );
    if (problems.length > 0) console.log(`daemon warnings/errors during the run: ${problems.length}; first: ${JSON.stringify(problems[0])}`);
    const file = writeResult('memory', {
      method: { tenants: TENANTS, warmPool: WARM_POOL, maxInstances: 1, settleMs: SETTLE_MS, source: '/proc/PID/smaps_rollup' },
      machine: facts,
      perTenantPssMiB: perTenantPss,
      tenants: tenantMem,
      warm: warmMem,
      problems,
      pass: { pssPerTenant: perTenantPss <= 10 },
    });
    console.log(`results: ${file}`);
  } finally {
    await agent.close();
    await daemon?.close();
  }
}

function sum(list: ProcessMemory[], key: 'pssKb' | 'rssKb' | 'ussKb'): number {
  return list.reduce((n, m) => n + m[key], 0);
}

function describe(name: string, list: ProcessMemory[]): Array<string | number> {
  const mib = (kb: number) => kb / 1024;
  const mean = (key: 'pssKb' | 'rssKb' | 'ussKb') => mib(sum(list, key) / Math.max(1, list.length));
  return [
    name,
    list.length,
    mean('pssKb'),
    mib(median(list.map((m) => m.pssKb))),
    mib(Math.max(...list.map((m) => m.pssKb))),
    mean('rssKb'),
    mean('ussKb'),
    mib(Math.max(...list.map((m) => m.ussKb))),
  ];
}

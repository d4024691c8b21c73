/**
 * Scheduled events (issue 6, part 5): `serve --test-scheduled` runs a worker's
 * scheduled handler through `GET /__scheduled`, module and service-worker
 * syntax, under the request limits; without the flag the path is the worker's.
 * The cron parser integration is tested on its own, and one real firing runs
 * on a clock moved to just before a minute boundary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CronScheduler, nextFireTime, type SchedulerClock } from '../../src/scheduled/scheduler.js';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

const MODULE_WORKER = `
let runs = 0;
let last = null;
let waited = 0;
export default {
  fetch() {
    return Response.json({ runs, last, waited });
  },
  async scheduled(controller, env, ctx) {
    runs++;
    last = { cron: controller.cron, scheduledTime: controller.scheduledTime, greeting: env.GREETING, noRetry: typeof controller.noRetry };
    console.log('tick ' + controller.cron);
    if (controller.cron === '0 0 * * *') throw new Error('midnight is not allowed');
    if (controller.cron === '1 1 * * *') for (;;) {}
    if (controller.cron === '3 3 * * *') await new Promise((resolve) => setTimeout(resolve, 1200));
    ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 20)).then(() => waited++));
  },
};
`;

const SERVICE_WORKER = `
let runs = 0;
let last = null;
addEventListener('scheduled', (event) => {
  event.waitUntil((async () => {
    await new Promise((resolve) => setTimeout(resolve, 10));
    runs++;
    last = { cron: event.cron, scheduledTime: event.scheduledTime, noRetry: typeof event.noRetry };
    if (event.cron === '0 0 * * *') throw new Error('no work at midnight');
  })());
});
addEventListener('fetch', (event) => event.respondWith(Response.json({ runs, last })));
`;

function project(name: string, main: string, crons: string[], vars = ''): Record<string, string> {
  return {
    [`${name}/wrangler.toml`]: `name = "${name}"\nmain = "index.js"\n[triggers]\ncrons = ${JSON.stringify(crons)}\n${vars}`,
    [`${name}/index.js`]: main,
  };
}

describe('serve --test-scheduled', () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    const dir = writeScripts({
      ...project('mod', MODULE_WORKER, ['*/5 * * * *', '0 12 * * MON'], '[vars]\nGREETING = "hi"\n'),
      ...project('sw', SERVICE_WORKER, ['30 2 * * *']),
    });
    // Crons that never fire by themselves: '*/5 * * * *' fired at a five-minute boundary during a run
    // once, and the counts these tests read were one too many.
    const stopped: SchedulerClock = { now: () => Date.now(), setTimer: () => ({ clear() {} }) };
    daemon = await startTestDaemon(dir, { testScheduled: true, maxInstances: 1 }, { clock: stopped });
  });
  afterAll(() => closeDaemons());

  it('runs a module worker\'s scheduled(controller, env, ctx) with the cron given; its side effect and waitUntil are seen by the next fetch', async () => {
    const before = Date.now();
    const ran = await daemon.fetchText('mod', '/__scheduled?cron=' + encodeURIComponent('15 * * * *'));
    expect(ran.status).toBe(200);
    expect(ran.text).toBe('Ran scheduled event');
    const state = JSON.parse((await daemon.fetchText('mod', '/')).text);
    expect(state).toMatchObject({ runs: 1, waited: 1, last: { cron: '15 * * * *', greeting: 'hi', noRetry: 'function' } });
    expect(state.last.scheduledTime).toBeGreaterThanOrEqual(before);
    expect(state.last.scheduledTime).toBeLessThanOrEqual(Date.now());
    // The accounting line, and the tenant's console line carrying the run's id.
    const requestId = ran.headers['edgeproc-request-id'];
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({ msg: 'scheduled', worker: 'mod', cron: '15 * * * *', requestId, outcome: 'ok', wallMs: expect.any(Number), cpuMs: expect.any(Number), childCpuMs: expect.any(Number) }),
    );
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'tick 15 * * * *', source: 'tenant', worker: 'mod', requestId }));
  });

  it('uses the first configured cron when none is given', async () => {
    expect((await daemon.fetchText('mod', '/__scheduled')).status).toBe(200);
    expect(JSON.parse((await daemon.fetchText('mod', '/')).text).last.cron).toBe('*/5 * * * *');
  });

  it('answers 500 with the error a handler threw, and logs a warn line', async () => {
    const ran = await daemon.fetchText('mod', '/__scheduled?cron=' + encodeURIComponent('0 0 * * *'));
    expect(ran.status).toBe(500);
    expect(ran.text).toContain('Scheduled event failed: Error: midnight is not allowed');
    const requestId = ran.headers['edgeproc-request-id'];
    expect(daemon.logs).toContainEqual(
      expect.objectContaining({ level: 'warn', msg: 'scheduled event failed', worker: 'mod', cron: '0 0 * * *', requestId, error: 'Error: midnight is not allowed' }),
    );
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'scheduled', worker: 'mod', requestId, outcome: 'error' }));
  });

  it('runs a service-worker scheduled listener and waits for its waitUntil work', async () => {
    const before = Date.now();
    const ran = await daemon.fetchText('sw', '/__scheduled?cron=' + encodeURIComponent('*/10 * * * *'));
    expect(ran.status).toBe(200);
    expect(ran.text).toBe('Ran scheduled event');
    const state = JSON.parse((await daemon.fetchText('sw', '/')).text);
    expect(state).toMatchObject({ runs: 1, last: { cron: '*/10 * * * *', noRetry: 'function' } });
    expect(state.last.scheduledTime).toBeGreaterThanOrEqual(before);
  });

  it('fails a service-worker event whose waitUntil work rejected', async () => {
    const ran = await daemon.fetchText('sw', '/__scheduled?cron=' + encodeURIComponent('0 0 * * *'));
    expect(ran.status).toBe(500);
    expect(ran.text).toContain('Scheduled event failed: 1 waitUntil promise rejected');
    expect(daemon.logs).toContainEqual(expect.objectContaining({ level: 'error', msg: 'waitUntil promise rejected: Error: no work at midnight', worker: 'sw' }));
  });
});

describe('limits', () => {
  afterAll(() => closeDaemons());

  it('stops a runaway scheduled handler at the CPU limit, naming it', async () => {
    const dir = writeScripts(project('mod', MODULE_WORKER, ['1 1 * * *']));
    const daemon = await startTestDaemon(dir, { testScheduled: true, cpuMs: 200 });
    const ran = await daemon.fetchText('mod', '/__scheduled?cron=' + encodeURIComponent('1 1 * * *'));
    expect(ran.status).toBe(500);
    expect(ran.text).toMatch(/^Scheduled event failed: Worker "mod" exceeded its CPU time limit: this request used \d+ ms of CPU; the limit is 200 ms per request \(--cpu-ms\)\./);
    const requestId = ran.headers['edgeproc-request-id'];
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'limit exceeded', worker: 'mod', limit: 'cpuMs', max: 200, requestId }));
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'scheduled event failed', worker: 'mod', requestId }));
    // The next event gets a fresh instance.
    expect((await daemon.fetchText('mod', '/__scheduled?cron=' + encodeURIComponent('2 2 * * *'))).status).toBe(200);
  });

  it('stops a scheduled handler that outlasts --wall-ms, naming the limit', async () => {
    const dir = writeScripts(project('mod', MODULE_WORKER, ['3 3 * * *']));
    const daemon = await startTestDaemon(dir, { testScheduled: true, wallMs: 300 });
    const ran = await daemon.fetchText('mod', '/__scheduled');
    expect(ran.status).toBe(500);
    expect(ran.text).toContain('Scheduled event failed: the scheduled handler did not finish within 300 ms (--wall-ms)');
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'scheduled', worker: 'mod', cron: '3 3 * * *', outcome: 'error' }));
  });
});

describe('without --test-scheduled', () => {
  afterAll(() => closeDaemons());

  it('sends /__scheduled to the worker like any other path', async () => {
    const dir = writeScripts(project('mod', MODULE_WORKER, ['*/5 * * * *']));
    const daemon = await startTestDaemon(dir);
    const res = await daemon.fetchText('mod', '/__scheduled');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ runs: 0, last: null, waited: 0 });
    expect(daemon.logs.some((l) => l.msg.includes('do not fire yet'))).toBe(false);
  });
});

describe('the schedule', () => {
  it.each([
    ['*/5 * * * *', '2026-11-23T16:43:10Z', '2026-11-23T16:45:00.000Z'],
    ['0 12 * * MON', '2026-11-23T16:43:10Z', '2026-11-30T12:00:00.000Z'],
    ['0 12 * * MON-FRI', '2026-11-27T13:00:00Z', '2026-11-30T12:00:00.000Z'],
    ['0 0 L * *', '2026-02-03T00:00:00Z', '2026-02-28T00:00:00.000Z'],
    ['0 0 * * 5#2', '2026-11-23T00:00:00Z', '2026-12-11T00:00:00.000Z'],
    ['59 23 * DEC *', '2026-01-01T00:00:00Z', '2026-12-01T23:59:00.000Z'],
    // Strictly after: a time that is due now fires next time, not twice.
    ['* * * * *', '2026-11-23T16:43:00Z', '2026-11-23T16:44:00.000Z'],
  ])('%s after %s is due at %s (UTC)', (cron, after, due) => {
    expect(new Date(nextFireTime(cron, Date.parse(after))).toISOString()).toBe(due);
  });

  it('arms one timer per cron and fires each at its due time with that scheduledTime', () => {
    let now = Date.parse('2026-11-23T16:43:10Z');
    const timers: Array<{ at: number; callback: () => void; cleared: boolean }> = [];
    const clock: SchedulerClock = {
      now: () => now,
      setTimer(callback, delayMs) {
        const timer = { at: now + delayMs, callback, cleared: false };
        timers.push(timer);
        return { clear: () => (timer.cleared = true) };
      },
    };
    const runs: Array<[string, string, string]> = [];
    const scheduler = new CronScheduler(
      [
        { worker: 'a', cron: '*/5 * * * *' },
        { worker: 'b', cron: '0 17 * * *' },
      ],
      async (worker, cron, scheduledTime) => void runs.push([worker, cron, new Date(scheduledTime).toISOString()]),
      clock,
    );
    scheduler.start();
    const advance = (to: string) => {
      now = Date.parse(to);
      for (let due = timers.find((t) => !t.cleared && t.at <= now); due; due = timers.find((t) => !t.cleared && t.at <= now)) {
        due.cleared = true;
        due.callback();
      }
    };
    advance('2026-11-23T16:44:59Z');
    expect(runs).toEqual([]);
    for (let minute = 45; minute <= 60; minute++) advance(`2026-11-23T${minute < 60 ? `16:${minute}` : '17:00'}:00Z`);
    // Sorted by time, then worker: two timers due at once fire in the order they were armed.
    const byTime = (x: [string, string, string], y: [string, string, string]) => x[2].localeCompare(y[2]) || x[0].localeCompare(y[0]);
    expect([...runs].sort(byTime)).toEqual([
      ['a', '*/5 * * * *', '2026-11-23T16:45:00.000Z'],
      ['a', '*/5 * * * *', '2026-11-23T16:50:00.000Z'],
      ['a', '*/5 * * * *', '2026-11-23T16:55:00.000Z'],
      ['a', '*/5 * * * *', '2026-11-23T17:00:00.000Z'],
      ['b', '0 17 * * *', '2026-11-23T17:00:00.000Z'],
    ]);
    // A wake long overdue (a suspended machine) runs each cron once, not once per missed time.
    advance('2026-11-23T17:42:00Z');
    expect(runs.slice(5)).toEqual([['a', '*/5 * * * *', '2026-11-23T17:05:00.000Z']]);
    scheduler.stop();
    advance('2026-11-23T19:00:00Z');
    expect(runs).toHaveLength(6);
  });

  it('fires a project worker\'s cron end to end, on a clock 300 ms before a minute boundary', async () => {
    // Real timers, the real parser, a real child: only the clock's origin is moved, so the
    // every-minute cron is due 300 ms after the scheduler starts instead of up to a minute later.
    let offset: number | null = null;
    const clock: SchedulerClock = {
      now: () => {
        const real = Date.now();
        offset ??= Math.ceil(real / 60_000) * 60_000 + 60_000 - 300 - real;
        return real + offset;
      },
      setTimer(callback, delayMs) {
        const timer = setTimeout(callback, delayMs);
        return { clear: () => clearTimeout(timer) };
      },
    };
    const dir = writeScripts(project('mod', MODULE_WORKER, ['* * * * *'], '[vars]\nGREETING = "cron"\n'));
    const daemon = await startTestDaemon(dir, {}, { clock });
    try {
      const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error('no scheduled run within 10 s')), 10_000);
        const poll = setInterval(() => {
          const found = daemon.logs.find((l) => l.msg === 'scheduled');
          if (found) {
            clearInterval(poll);
            clearTimeout(deadline);
            resolve(found);
          }
        }, 20);
      });
      expect(line).toMatchObject({ worker: 'mod', cron: '* * * * *', outcome: 'ok' });
      const state = JSON.parse((await daemon.fetchText('mod', '/')).text);
      expect(state.runs).toBe(1);
      expect(state.last.greeting).toBe('cron');
      expect(state.last.cron).toBe('* * * * *');
      expect(state.last.scheduledTime % 60_000).toBe(0);
      expect(Math.abs(state.last.scheduledTime - clock.now())).toBeLessThan(10_000);
    } finally {
      await closeDaemons();
    }
  });
});

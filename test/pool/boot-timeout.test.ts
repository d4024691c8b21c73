/**
 * A child that does not finish booting in time is stopped, and what waited for it is told that,
 * not only "killed by SIGKILL": on a saturated machine that 503 is the user's only clue.
 */
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { buildServeConfig } from '../../src/config.js';
import { startDaemon } from '../../src/daemon.js';
import { Logger, memorySink, type LogRecord } from '../../src/log.js';
import { writeScripts } from '../helpers/daemon.js';

/** A daemon serving one hello worker with no warm pool and this boot timeout, and its log. */
async function daemonWithBootTimeout(bootTimeoutMs: number): Promise<{ daemon: Awaited<ReturnType<typeof startDaemon>>; logs: LogRecord[] }> {
  const dir = writeScripts({ 'hello.mjs': `export default { fetch() { return new Response('hello'); } };\n` });
  const built = buildServeConfig(dir, { port: 0, adminPort: 0, warmPool: 0 }, {});
  const logs: LogRecord[] = [];
  const daemon = await startDaemon({ ...built, limits: { ...built.limits, bootTimeoutMs } }, new Logger(memorySink(logs)));
  return { daemon, logs };
}

describe('a child that does not boot in time', () => {
  it('is stopped, and the request waiting for it gets 503 saying so', async () => {
    // No child boots in a millisecond: the first request's child meets the timeout.
    const { daemon, logs } = await daemonWithBootTimeout(1);
    try {
      const res = await request(`${daemon.url}/`, { headers: { host: `hello.localhost:${daemon.port}` } });
      const text = await res.body.text();
      expect(res.statusCode).toBe(503);
      expect(text).toMatch(
        /^No instance is available for worker "hello": a child did not finish booting within 1 ms and was stopped; the machine is likely overloaded\. Retry; a new child will be started\n\nrequest id: [0-9a-f]+\n$/,
      );
      expect(logs.some((line) => line.msg === 'a child did not become ready in time; killing it')).toBe(true);
      // The daemon itself still answers.
      const admin = await request(`${daemon.adminUrl}/workers`);
      expect(admin.statusCode).toBe(200);
      await admin.body.dump();
    } finally {
      await daemon.close();
    }
  });

  it('is logged with where it stood: its threads\' states and priorities, and its CPU', async () => {
    const { daemon, logs } = await daemonWithBootTimeout(1500);
    try {
      const answer = request(`${daemon.url}/`, { headers: { host: `hello.localhost:${daemon.port}` } });
      // Stopped from outside as soon as its pid is known: it cannot boot, and its log line must say why.
      let pid: number | undefined;
      const deadline = Date.now() + 10_000;
      while (!(pid = [...daemon.pool.live].find((instance) => instance.pid)?.pid)) {
        if (Date.now() > deadline) throw new Error('no child was started within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      process.kill(pid, 'SIGSTOP');
      const res = await answer;
      await res.body.dump();
      expect(res.statusCode).toBe(503);
      const line = logs.find((record) => record.msg === 'a child did not become ready in time; killing it');
      expect(line).toMatchObject({ pid, bootTimeoutMs: 1500, cpuMs: expect.any(Number) });
      // Every thread it had is shown stopped ("T"), with its priority.
      const threads = line!.threads as Record<string, number>;
      expect(Object.keys(threads).length).toBeGreaterThan(0);
      for (const key of Object.keys(threads)) expect(key).toMatch(/^T (idle, )?nice -?\d+$/);
    } finally {
      await daemon.close();
    }
  });
});

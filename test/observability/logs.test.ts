import { connect } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../src/lab/ports.js';
import { TAIL_QUEUE_BYTES } from '../../src/observability/log-tail.js';
import { killCliRuns, runCli } from '../helpers/cli.js';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(async () => {
  killCliRuns();
  await closeDaemons();
});

const run = runCli;

describe('logs and edgeproc tail', () => {
  it('serve writes a tenant console.log as one JSON line with worker and request id; tail follows one worker', async () => {
    const dir = writeScripts({
      'hello.mjs': `export default { fetch(request) { console.log('hello says hi', { n: 1 }); return new Response('hello'); } };`,
      'other.mjs': `export default { fetch() { console.log('other says hi'); return new Response('other'); } };`,
    });
    const [port, adminPort] = [await freePort(), await freePort()];
    const token = 'tail-test-token';
    const served = run(['serve', dir, '--port', String(port), '--admin-port', String(adminPort), '--warm-pool', '1', '--admin-token', token]);
    await served.waitFor('stderr', 'edgeproc serving 2 workers');
    const adminUrl = `http://127.0.0.1:${adminPort}`;

    const tail = run(['tail', 'hello', '--admin-url', adminUrl], { EDGEPROC_ADMIN_TOKEN: token });
    await tail.waitFor('stderr', `edgeproc tail: following worker hello on ${adminUrl}`);

    const get = async (worker: string) => {
      const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: `${worker}.localhost` } });
      expect(await res.body.text()).toBe(worker);
    };
    // other first: the daemon writes lines to a follower in order, so once hello's line is in, other's would be too.
    await get('other');
    await get('hello');
    await served.waitFor('stdout', '"worker":"hello","requestId"');
    await tail.waitFor('stdout', 'status=200');

    // The daemon's log: one JSON object per line on stdout.
    const lines = served
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const helloId = lines.find((l) => l.msg === 'request' && l.worker === 'hello')?.requestId;
    expect(helloId).toMatch(/^[0-9a-f]{16}$/);
    const tenant = lines.filter((l) => l.msg === 'hello says hi { n: 1 }');
    expect(tenant).toEqual([
      { level: 'info', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), source: 'tenant', worker: 'hello', instance: expect.any(String), requestId: helloId, msg: 'hello says hi { n: 1 }' },
    ]);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'request', worker: 'hello', requestId: helloId, status: 200 }));
    expect(served.stdout()).not.toContain(token);

    // The tail: readable lines, hello's only.
    const tailed = tail.stdout();
    expect(tailed).toMatch(new RegExp(`^\\S+Z info  hello ${helloId} hello says hi \\{ n: 1 \\}  instance=i\\w+$`, 'm'));
    expect(tailed).toMatch(new RegExp(`^\\S+Z info  hello ${helloId} request  instance=i\\w+ status=200 wallMs=`, 'm'));
    expect(tailed).not.toContain('other');

    // Refused and unreachable: one line each, non-zero.
    const refused = run(['tail', '--admin-url', adminUrl, '--admin-token', 'wrong']);
    expect((await refused.exited).code).toBe(2);
    expect(refused.stderr()).toBe(
      `edgeproc: the admin API at ${adminUrl} refused the token: pass --admin-token or set EDGEPROC_ADMIN_TOKEN\n`,
    );
    const closedPort = await freePort();
    const unreachable = run(['tail', '--admin-url', `http://127.0.0.1:${closedPort}`]);
    expect((await unreachable.exited).code).toBe(1);
    expect(unreachable.stderr()).toBe(
      `edgeproc: cannot connect to the admin API at http://127.0.0.1:${closedPort} (ECONNREFUSED): is \`edgeproc serve\` running there? (--admin-url)\n`,
    );

    // When the daemon shuts down, the tail says so and exits non-zero.
    served.proc.kill('SIGTERM');
    expect((await served.exited).code).toBe(0);
    expect((await tail.exited).code).toBe(1);
    expect(tail.stderr()).toContain('edgeproc tail: the daemon closed the log stream');
  });

  it('--log-level warn writes warnings and errors only, the tenant\'s included', async () => {
    const dir = writeScripts({
      'hello.mjs': `export default { fetch() { console.log('an info line'); console.warn('a warning'); return new Response('hello'); } };`,
    });
    const port = await freePort();
    const served = run(['serve', dir, '--port', String(port), '--admin-port', '0', '--warm-pool', '1', '--log-level', 'warn']);
    await served.waitFor('stderr', 'edgeproc serving 1 worker');
    const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'hello.localhost' } });
    expect(await res.body.text()).toBe('hello');
    await served.waitFor('stdout', '"msg":"a warning"');
    const lines = served.stdout().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((l) => l.level)).not.toContain('info');
    expect(lines.map((l) => l.msg)).not.toContain('an info line');
  });

  it('a follower that stops reading costs the daemon a bounded queue: lines past it are dropped, then one notice', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'hello.mjs': `export default { fetch() { return new Response('hi'); } };` }), { warmPool: 0 });
    const { port } = new URL(daemon.adminUrl);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write('GET /logs HTTP/1.1\r\nhost: admin\r\n\r\n');
    // Reads the head, then stops reading: the kernel's buffers fill, then the daemon's.
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause();
    await new Promise<void>((resolve) => {
      const wait = () => (daemon.tail.stats().length === 1 ? resolve() : setTimeout(wait, 5));
      wait();
    });

    const filler = 'x'.repeat(4000);
    let written = 0;
    let worst = 0;
    // Far more than the kernel's socket buffers and the queue together; stops once lines are dropped.
    while (written < 20_000 && daemon.tail.stats()[0]!.droppedTotal < 100) {
      for (let i = 0; i < 100; i++) daemon.log.info('filler', { n: written++, filler });
      const [stats] = daemon.tail.stats();
      worst = Math.max(worst, stats!.queuedBytes + stats!.socketBytes);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const [stats] = daemon.tail.stats();
    expect(stats!.droppedTotal).toBeGreaterThanOrEqual(100);
    expect(stats!.queuedBytes).toBeLessThanOrEqual(TAIL_QUEUE_BYTES);
    // The queue, plus what the socket holds: one line past its high-water mark, or one flushed queue.
    expect(worst).toBeLessThanOrEqual(2 * TAIL_QUEUE_BYTES + 64 * 1024);

    // Reading again, the client gets the queue, then a notice with the count, then new lines.
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => (received += text));
    socket.resume();
    await new Promise<void>((resolve) => {
      const wait = () => (received.includes('"source":"tail"') ? resolve() : setTimeout(wait, 10));
      wait();
    });
    daemon.log.info('after the gap');
    await new Promise<void>((resolve) => {
      const wait = () => (received.includes('"msg":"after the gap"') ? resolve() : setTimeout(wait, 10));
      wait();
    });
    const notices = received
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { source?: string; dropped: number; msg: string })
      .filter((record) => record.source === 'tail');
    expect(notices.length).toBeGreaterThanOrEqual(1);
    expect(notices[0]).toEqual({
      level: 'warn',
      time: expect.any(String),
      source: 'tail',
      dropped: notices[0]!.dropped,
      msg: `edgeproc tail: ${notices[0]!.dropped} log lines dropped: this client read more slowly than the daemon logged`,
    });
    // Every dropped line is in some notice.
    expect(notices.reduce((n, record) => n + record.dropped, 0)).toBe(daemon.tail.stats()[0]!.droppedTotal);
    socket.destroy();
  });
});

/**
 * WebSocket messages through edgeproc against workerd: the same service-worker script, an echo
 * that accepts one end of a WebSocketPair, served by both; a load generator in its own process
 * (bench/lib/ws-load.ts) keeps 16 sockets each sending a 64-byte message and waiting for its
 * echo. Each server gets a discarded warm-up run, then rounds interleave the two (order
 * rotated). Reported: messages a second and round-trip percentiles, their ratio per round, and
 * the servers' own CPU per message (every thread of the daemon and its runner children; of
 * workerd), from /proc schedstat across each run. No target in an issue: what a WebSocket app
 * pays for the process boundary, each message crossing to the tenant's child and back.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type RunningDaemon } from './lib/daemon.js';
import { describeMachine, machine } from './lib/machine.js';
import { cpuNs, runnerPids, start } from './lib/processes.js';
import { resultsPath, table, writeResult } from './lib/report.js';
import { median } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { startWorkerd, type RunningWorkerd } from './lib/workerd.js';
import type { WsLoadResult } from './lib/ws-load.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = 16;
const SECONDS = Number(process.env.BENCH_DURATION_SEC ?? 5);
const LOAD = fileURLToPath(new URL('./lib/ws-load.js', import.meta.url));
const SERVERS = ['edgeproc', 'workerd'] as const;

const ECHO = `addEventListener('fetch', (event) => {
  if (event.request.headers.get('upgrade') !== 'websocket') return event.respondWith(new Response('a WebSocket echo'));
  const pair = new WebSocketPair();
  const server = pair[1];
  server.accept();
  server.addEventListener('message', (message) => server.send(message.data));
  event.respondWith(new Response(null, { status: 101, webSocket: pair[0] }));
});
`;

interface Run {
  server: (typeof SERVERS)[number];
  round: number;
  result: WsLoadResult;
  cpuUsPerMessage: number;
}

export async function websocket(): Promise<void> {
  const facts = machine();
  const dir = tempDir('websocket');
  const script = join(dir, 'echo.js');
  writeFileSync(script, ECHO);
  console.log('\n## websocket — echo messages through edgeproc vs workerd\n');
  console.log(`method: one service-worker echo (WebSocketPair, accept, send back each message) served by both; a load generator in its own process,`);
  console.log(`        ${CONNECTIONS} sockets each sending 64 bytes and waiting for the echo, ${SECONDS} s a run; one warm-up run each discarded;`);
  console.log(`        ${ROUNDS} rounds interleaving the two (order rotated). CPU per message: schedstat of every thread of the server's processes.`);
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  let workerd: RunningWorkerd | undefined;
  try {
    daemon = await startDaemon(script, { idleTimeoutMs: 600_000, recycleAfter: 0 }, resultsPath('websocket.daemon.log'));
    workerd = await startWorkerd(script, resultsPath('websocket.workerd.log'));
    const servers = {
      edgeproc: { url: daemon.url, pids: () => [daemon!.process.pid, ...runnerPids(daemon!.process.pid)] },
      workerd: { url: workerd.url, pids: () => [workerd!.process.pid] },
    };
    const measure = async (server: Run['server']): Promise<Omit<Run, 'round'>> => {
      const pids = servers[server].pids();
      const before = pids.reduce((sum, pid) => sum + cpuNs(pid), 0);
      const result = await runLoad(servers[server].url.replace(/^http/, 'ws'), new URL(servers[server].url).host);
      const after = pids.reduce((sum, pid) => sum + cpuNs(pid), 0);
      return { server, result, cpuUsPerMessage: Math.round((after - before) / 1000 / Math.max(1, result.messages) * 10) / 10 };
    };
    for (const server of SERVERS) {
      const warm = await measure(server);
      console.log(`warm-up ${server}: ${Math.round(warm.result.perSec)} messages/s (discarded)`);
    }
    const runs: Run[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? SERVERS : ([...SERVERS].reverse() as unknown as typeof SERVERS);
      for (const server of order) {
        const run = { ...(await measure(server)), round };
        runs.push(run);
        console.log(`round ${round} ${server}: ${Math.round(run.result.perSec)} messages/s, p99 ${run.result.rttMs.p99} ms, ${run.cpuUsPerMessage} µs CPU a message`);
      }
    }
    const of = (s: Run['server']) => runs.filter((r) => r.server === s);
    const ratios = of('edgeproc').map((e) => e.result.perSec / of('workerd').find((w) => w.round === e.round)!.result.perSec);
    const summary = (s: Run['server']) => ({
      perSecMedian: median(of(s).map((r) => r.result.perSec)),
      p50MsMedian: median(of(s).map((r) => r.result.rttMs.p50)),
      p99MsMedian: median(of(s).map((r) => r.result.rttMs.p99)),
      cpuUsPerMessageMedian: median(of(s).map((r) => r.cpuUsPerMessage)),
      errors: of(s).reduce((n, r) => n + r.result.errors, 0),
    });
    const edge = summary('edgeproc');
    const peer = summary('workerd');
    console.log('');
    console.log(
      table(
        ['run', 'messages/s', 'p50 ms', 'p99 ms', 'max ms', 'CPU µs/message', 'errors'],
        runs.map(({ server, round, result, cpuUsPerMessage }) => [
          `${server} #${round}`,
          Math.round(result.perSec),
          result.rttMs.p50,
          result.rttMs.p99,
          result.rttMs.max,
          cpuUsPerMessage,
          result.errors,
        ]),
      ),
    );
    console.log('');
    console.log(
      table(
        ['figure', 'value'],
        [
          ['edgeproc messages/s (median)', Math.round(edge.perSecMedian)],
          ['workerd messages/s (median)', Math.round(peer.perSecMedian)],
          ['ratio edgeproc/workerd (median of rounds)', median(ratios)],
          ['edgeproc round trip p50 / p99 ms (medians)', `${edge.p50MsMedian} / ${edge.p99MsMedian}`],
          ['workerd round trip p50 / p99 ms (medians)', `${peer.p50MsMedian} / ${peer.p99MsMedian}`],
          ['edgeproc CPU µs a message (daemon + children)', edge.cpuUsPerMessageMedian],
          ['workerd CPU µs a message', peer.cpuUsPerMessageMedian],
        ],
      ),
    );
    const file = writeResult('websocket', {
      method: { connections: CONNECTIONS, seconds: SECONDS, rounds: ROUNDS, interleaved: true, messageBytes: 64 },
      machine: facts,
      runs,
      ratios,
      ratioMedian: median(ratios),
      edgeproc: edge,
      workerd: peer,
    });
    console.log(`results: ${file}`);
  } finally {
    await Promise.all([daemon?.stop(), workerd?.stop()]);
  }
}

/** One run of the load generator, in its own process. */
async function runLoad(url: string, host: string): Promise<WsLoadResult> {
  const proc = start(process.execPath, [LOAD, `${url}/`, host, String(CONNECTIONS), String(SECONDS)], resultsPath('websocket.load.log'));
  const [line] = await proc.waitFor(/^\{"messages".*\}$/m, (SECONDS + 30) * 1000);
  return JSON.parse(line) as WsLoadResult;
}

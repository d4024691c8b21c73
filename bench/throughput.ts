/**
 * Warm hello-world throughput: the edgeproc daemon against workerd serving the
 * same script, both under `wrk -t1 -c32 -d10s --latency`, and a bare
 * `node:http` process answering the same body as a reference (the ceiling of
 * any Node.js front door here). Each server gets one discarded warm-up run,
 * then rounds interleave the three, rotating the order, so that noise from
 * other work on the machine falls on all alike. Target (issue 2): edgeproc
 * ≥ 2× workerd's req/s, p99 ≤ 10 ms.
 */
import { readFileSync } from 'node:fs';
import { PACKAGE_ROOT } from './lib/build.js';
import { adminState, startDaemon, type RunningDaemon } from './lib/daemon.js';
import { describeMachine, machine } from './lib/machine.js';
import type { RunningServer } from './lib/processes.js';
import { resultsPath, table, verdict, writeResult } from './lib/report.js';
import { median } from './lib/stats.js';
import { runWrk, wrkArgs, type WrkOptions, type WrkResult } from './lib/wrk.js';
import { startBareHop } from './lib/bare-hop.js';
import { startBareNode } from './lib/bare-node.js';
import { startWorkerd, type RunningWorkerd } from './lib/workerd.js';

const SCRIPT = `${PACKAGE_ROOT}examples/hello.js`;
/** Longer than the whole run: the instance stays warm between rounds (see main). */
const IDLE_TIMEOUT_MS = 600_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WRK: WrkOptions = { threads: 1, connections: 32, durationSec: Number(process.env.BENCH_DURATION_SEC ?? 10) };
const WARMUP: WrkOptions = { ...WRK, durationSec: 5 };

const SERVERS = ['edgeproc', 'workerd', 'node', 'hop'] as const;

interface Run {
  server: (typeof SERVERS)[number];
  round: number;
  result: WrkResult;
}

export async function throughput(): Promise<void> {
  const facts = machine();
  console.log('\n## throughput — warm hello-world, edgeproc daemon vs workerd, bare node:http and a bare hop for reference\n');
  console.log(`method: script ${SCRIPT} served by both; wrk ${wrkArgs('URL', WRK).join(' ')};`);
  console.log(`        one ${WARMUP.durationSec} s warm-up run per server discarded; ${ROUNDS} rounds interleaving edgeproc, workerd, node and hop (order rotated); all up throughout.`);
  console.log('        node: one bare node:http process answering the same body, nothing of edgeproc in it (the ceiling of a Node.js front door).');
  console.log('        hop: a bare node:http front handing each request to one child as binary frames (JSON head) and writing its answer (bench/lib/bare-hop.ts):');
  console.log('             the hop alone, nothing else of edgeproc: the ceiling of a process per tenant.');
  console.log(`        edgeproc: bin/edgeproc.js serve --idle-timeout ${IDLE_TIMEOUT_MS} --recycle-after 0 (otherwise defaults: --warm-pool 2, --max-instances 4), its own process.`);
  console.log(describeMachine(facts));

  let daemon: RunningDaemon | undefined;
  let workerd: RunningWorkerd | undefined;
  let bare: RunningServer | undefined;
  let hop: RunningServer | undefined;
  try {
    // Warm throughput: in the rotation edgeproc waits up to a minute between its rounds, which
    // the default --idle-timeout (60 s) would end by evicting its instance, so that a round
    // measured a fresh child's first seconds (p99 12–15 ms, against 4–5 once warm).
    // Not recycled either: at ~40k req/s the default (a million requests per instance) replaced
    // the instance once or twice per run, a cold start inside a round of warm throughput.
    daemon = await startDaemon(SCRIPT, { idleTimeoutMs: IDLE_TIMEOUT_MS, recycleAfter: 0 }, resultsPath('throughput.daemon.log'));
    workerd = await startWorkerd(SCRIPT, resultsPath('throughput.workerd.log'));
    bare = await startBareNode(resultsPath('throughput.node.log'));
    hop = await startBareHop(resultsPath('throughput.hop.log'));
    const targets = { edgeproc: `${daemon.url}/`, workerd: `${workerd.url}/`, node: `${bare.url}/`, hop: `${hop.url}/` };

    for (const server of SERVERS) {
      const r = await runWrk(targets[server], WARMUP);
      console.log(`warm-up ${server}: ${r.requestsPerSec.toFixed(0)} req/s (discarded)`);
    }
    const runs: Run[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate which server goes first, so none always follows another's load.
      const order = SERVERS.map((_, i) => SERVERS[(i + round - 1) % SERVERS.length]!);
      for (const server of order) {
        const result = await runWrk(targets[server], WRK);
        runs.push({ server, round, result });
        console.log(`round ${round} ${server}: ${result.requestsPerSec.toFixed(0)} req/s, p99 ${result.latencyMs.p99} ms`);
      }
    }
    const state = await adminState(daemon);
    const workerdRss = rssMiB(workerd.process.pid);

    const of = (s: Run['server']) => runs.filter((r) => r.server === s);
    const ratiosOf = (a: Run['server'], b: Run['server']) =>
      runs.filter((r) => r.server === a).map((x) => x.result.requestsPerSec / runs.find((y) => y.server === b && y.round === x.round)!.result.requestsPerSec);
    const ratios = ratiosOf('edgeproc', 'workerd');
    const nodeRatio = median(ratiosOf('node', 'workerd'));
    const hopRatio = median(ratiosOf('hop', 'workerd'));
    const shareOfHop = median(ratiosOf('edgeproc', 'hop'));
    const shareOfNode = median(ratiosOf('edgeproc', 'node'));
    const summary = (s: Run['server']) => ({
      reqPerSecMedian: median(of(s).map((r) => r.result.requestsPerSec)),
      p50MsMedian: median(of(s).map((r) => r.result.latencyMs.p50)),
      p99MsMedian: median(of(s).map((r) => r.result.latencyMs.p99)),
      p99MsWorst: Math.max(...of(s).map((r) => r.result.latencyMs.p99)),
      errors: of(s).reduce((n, r) => n + r.result.non2xx + Object.values(r.result.socketErrors).reduce((a, b) => a + b, 0), 0),
    });
    const edge = summary('edgeproc');
    const peer = summary('workerd');
    const reference = summary('node');
    const hopSummary = summary('hop');
    const ratio = median(ratios);

    console.log('');
    console.log(
      table(
        ['run', 'req/s', 'p50 ms', 'p75 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors'],
        runs.map(({ server, round, result: r }) => [
          `${server} #${round}`,
          Math.round(r.requestsPerSec),
          r.latencyMs.p50,
          r.latencyMs.p75,
          r.latencyMs.p90,
          r.latencyMs.p99,
          r.latencyMs.max,
          r.non2xx + Object.values(r.socketErrors).reduce((a, b) => a + b, 0),
        ]),
      ),
    );
    console.log('');
    console.log(
      table(
        ['figure', 'value', 'target', 'verdict'],
        [
          ['edgeproc req/s (median)', Math.round(edge.reqPerSecMedian), '', ''],
          ['workerd req/s (median)', Math.round(peer.reqPerSecMedian), '', ''],
          ['bare node:http req/s (median)', Math.round(reference.reqPerSecMedian), '', ''],
          ['bare hop (node:http front + one child) req/s (median)', Math.round(hopSummary.reqPerSecMedian), '', ''],
          ['ratio bare node:http/workerd: the most a Node.js front door reaches', nodeRatio, '', ''],
          ['ratio bare hop/workerd: the most a process per tenant reaches', hopRatio, '', ''],
          ['ratio edgeproc/bare node:http', shareOfNode, '', ''],
          ['ratio edgeproc/bare hop', shareOfHop, '', ''],
          ['ratio edgeproc/workerd (median of rounds)', ratio, '≥ 2', verdict(ratio >= 2)],
          ['edgeproc p99 ms (median of runs)', edge.p99MsMedian, '≤ 10', verdict(edge.p99MsMedian <= 10)],
          ['edgeproc p99 ms (worst run)', edge.p99MsWorst, '≤ 10', verdict(edge.p99MsWorst <= 10)],
          ['workerd p99 ms (median of runs)', peer.p99MsMedian, '', ''],
        ],
      ),
    );
    console.log(`edgeproc instances serving hello: ${state.workers[0]?.instances}; pool ${JSON.stringify(state.pool)}; workerd RSS after runs ${workerdRss} MiB`);
    const file = writeResult('throughput', {
      method: { wrk: wrkArgs('URL', WRK), warmupSec: WARMUP.durationSec, rounds: ROUNDS, interleaved: true, script: SCRIPT, edgeprocFlags: { idleTimeoutMs: IDLE_TIMEOUT_MS } },
      machine: facts,
      runs,
      ratios,
      edgeproc: edge,
      workerd: peer,
      node: reference,
      hop: hopSummary,
      ratioMedian: ratio,
      nodeToWorkerdMedian: nodeRatio,
      edgeprocToNodeMedian: shareOfNode,
      hopToWorkerdMedian: hopRatio,
      edgeprocToHopMedian: shareOfHop,
      daemonState: state,
      workerdRssMiB: workerdRss,
      pass: { ratio: ratio >= 2, p99: edge.p99MsWorst <= 10 },
    });
    console.log(`results: ${file}`);
  } finally {
    await Promise.all([daemon?.stop(), workerd?.stop(), bare?.stop(), hop?.stop()]);
  }
}

function rssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Math.round(Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? Number.NaN) / 1024);
  } catch {
    return Number.NaN;
  }
}

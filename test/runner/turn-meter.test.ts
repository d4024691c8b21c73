/**
 * The child's own count of each request's CPU (runner/turn-meter.ts), which the accounting
 * line reports and the daemon's watchdog corrects its guesses with. A settle right after
 * the last reading charges the wall time since (no system call); any longer gap is read
 * from the process's CPU clock. Either way a request that burned CPU is charged what it
 * burned, and quick requests are charged no more than the time they took.
 */
import { describe, expect, it } from 'vitest';
import { TurnMeter } from '../../runner/turn-meter.js';

function burn(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** The process's CPU clock (every thread, as the meter reads it), in milliseconds. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * A charge can never be more than the CPU the process used meanwhile: that is what "charged
 * once" means, and it holds however busy the machine or the test runner's own threads are
 * (CI saw 40.7 ms of process CPU around 20 ms of burning). 0.2 ms: a settle's estimate may
 * charge wall time the process spent preempted.
 */
const ESTIMATE_SLACK_MS = 0.2;

/** Lets the meter's end-of-turn microtask run, so that the next enter() starts a new turn. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('TurnMeter', () => {
  it('charges a request that burned CPU in its turn what it burned, read from the clock', async () => {
    const meter = new TurnMeter();
    await nextTurn();
    const before = cpuMs();
    meter.enter(1);
    burn(30);
    const ms = meter.settle(1);
    // A busy machine may take some of the 30 ms away.
    expect(ms).toBeGreaterThan(5);
    expect(ms).toBeLessThanOrEqual(cpuMs() - before + ESTIMATE_SLACK_MS);
  });

  it('charges quick requests settled in one turn no more than the turn took, and the turn’s later work to those left', async () => {
    const meter = new TurnMeter();
    await nextTurn();
    const before = cpuMs();
    const started = performance.now();
    for (let owner = 1; owner <= 51; owner++) meter.enter(owner);
    const quick: number[] = [];
    for (let owner = 1; owner <= 50; owner++) quick.push(meter.settle(owner));
    const tookMs = performance.now() - started;
    // Each is charged a share of the time the turn had taken when it settled: all of them
    // together about the turn's time (a reading counts the runner's other threads too).
    for (const ms of quick) expect(ms).toBeLessThan(1);
    expect(quick.reduce((a, b) => a + b, 0)).toBeLessThan(2 * tookMs + 1);
    burn(20);
    // The last one's settle comes long after the last estimate: read exactly, and what the
    // estimates charged before is not charged again.
    const last = meter.settle(51);
    expect(last).toBeGreaterThan(5);
    expect(last).toBeLessThanOrEqual(cpuMs() - before + ESTIMATE_SLACK_MS);
  });

  it('charges a request across turns: each turn it ran in, once', async () => {
    const meter = new TurnMeter();
    await nextTurn();
    const before = cpuMs();
    meter.enter(1);
    burn(10);
    await nextTurn();
    meter.enter(1);
    burn(10);
    await nextTurn();
    meter.enter(1);
    const ms = meter.settle(1);
    expect(ms).toBeGreaterThan(5);
    // Counted twice, it would pass the process's own CPU (what runs between turns is charged
    // to the turn before: the meter has no other owner for it).
    expect(ms).toBeLessThanOrEqual(cpuMs() - before + ESTIMATE_SLACK_MS);
  });

  it("leaves what runs between pause() and resume() out of the turn's requests, and charges them the rest", async () => {
    // The runtime's own set-up for an API's first use, and a script's load, run so (runner/runtime-work.ts).
    const meter = new TurnMeter();
    await nextTurn();
    const before = cpuMs();
    meter.enter(1);
    burn(10);
    meter.pause();
    burn(30);
    const outsideMs = meter.resume() / 1000;
    burn(10);
    const chargedMs = meter.settle(1);
    const totalMs = cpuMs() - before;
    expect(outsideMs).toBeGreaterThan(5);
    expect(chargedMs).toBeGreaterThan(2);
    // Everything the turn used but the paused stretch (the clock counts the runner's other threads too).
    expect(chargedMs).toBeLessThanOrEqual(totalMs - outsideMs + 1);
  });
});

/**
 * Attack: Array[Symbol.species] decides the class of what Array methods
 * build, in the runner's code too (it slices its list of waitUntil promises).
 * The tenant's class is used, and constructed, but it gets nothing of the
 * runner's: an Array subclass still holds the same promises, and the waitUntil
 * work settles as it should.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('Symbol.species on Array', () => {
  it('is followed by the runner’s own slicing, harmlessly: waitUntil still settles', async () => {
    const daemon = await startHostileDaemon(['array-species']);
    const hooked = await attack(daemon, 'array-species', '/hook');
    expect(hooked).toMatchObject({ status: 200, text: 'hooked' });
    // The accounting line comes once the child settles the request.
    await expect.poll(() => daemon.logs.find((r) => r.msg === 'request' && r.worker === 'array-species')).toBeDefined();
    const id = daemon.logs.find((r) => r.msg === 'request' && r.worker === 'array-species')!.requestId;
    // The request settles (its waitUntil work done) with no failure and no timeout logged.
    await expect.poll(() => daemon.broker.stats().find((w) => w.name === 'array-species')?.inflight).toBe(0);
    expect(daemon.logs.filter((r) => r.source === 'tenant' && r.requestId === id)).toEqual([]);
    const count = await daemon.fetchText('array-species', '/count');
    expect(count.status).toBe(200);
    expect(Number(count.text.replace('built ', ''))).toBeGreaterThan(0);
    await expectDaemonServes(daemon);
  });
});

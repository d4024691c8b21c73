/**
 * Attack: make subrequests no request pays for. The daemon counts subrequests
 * (--subrequests) per request; a fetch from a timer that outlives its response,
 * from waitUntil work abandoned at --wait-until-ms, or at global scope named a
 * request that was no longer in flight (or none), and was counted against
 * nothing: with --subrequests 1, a tenant made as many as it liked. As on
 * Workers, a fetch now belongs to a request in flight, or rejects at once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

let origin: Origin | null = null;
afterEach(async () => {
  await closeDaemons();
  await origin?.close();
  origin = null;
});

const REFUSED =
  'TypeError: fetch: no request is in flight here (the request this code ran for has finished, or this is the global scope); a worker fetches only while handling a request or its waitUntil work';

describe('fetch() with no request in flight', () => {
  it('rejects at once, and reaches no origin', async () => {
    const seen: string[] = [];
    origin = await startOrigin((req, res) => {
      seen.push(req.url ?? '');
      res.end('origin');
    });
    const daemon = await startHostileDaemon(['fetch-after-response'], { subrequests: 1, egressAllow: '127.0.0.1/32' });
    const query = `?origin=${encodeURIComponent(origin.url)}`;
    expect(await attack(daemon, 'fetch-after-response', `/timer${query}`)).toMatchObject({ status: 200, text: 'responded' });
    expect(await attack(daemon, 'fetch-after-response', `/abandoned${query}`)).toMatchObject({ status: 200, text: 'responded' });
    expect(await attack(daemon, 'fetch-after-response', `/within${query}`)).toMatchObject({ status: 200, text: 'responded' });
    await expect
      .poll(async () => JSON.parse((await daemon.fetchText('fetch-after-response', '/report')).text), { timeout: 5000 })
      .toEqual({
        'global scope': REFUSED,
        'timer 0': REFUSED,
        'timer 1': REFUSED,
        'timer 2': REFUSED,
        'abandoned waitUntil': REFUSED,
        // Within its request's waitUntil work a fetch is that request's one subrequest.
        'within waitUntil': 'fetched 200',
      });
    expect(seen).toEqual(['/within']);
    await expectDaemonServes(daemon);
  });
});

/**
 * Attack: the tenant subverts its own runner (it steers the head encoder to its JSON
 * form, then replaces JSON.stringify) and rewrites its response head into what no genuine
 * Response can be: status 101, CR LF in the status text or a header, a header
 * name that is no token, junk instead of a header list, 200 KB of headers, a
 * body length that lies. The daemon trusts no frame: before it checked heads,
 * status 101 went to the client (whose parser then failed) and a bad status
 * text left the client with no answer at all. Now: a clean 500 for every bad
 * head, and for a body that does not match its length: a 500 when the body came
 * whole with its head (nothing was sent yet), a cut response when it followed. On a
 * WebSocket upgrade a forged 101 completes the handshake, and the body behind it (or,
 * with no body, the request's end in the child) gets the socket closed with 1011.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, expectErrorResponse, startHostileDaemon } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';
import { openSocket } from '../helpers/websocket-client.js';

afterEach(closeDaemons);

const cannotSend = (why: string) => `The worker returned a response the daemon cannot send: ${why}.`;

describe('a forged response head', () => {
  it('gets a clean 500 saying what is wrong with it', async () => {
    const daemon = await startHostileDaemon(['forged-response-head']);
    const cases: Array<[string, string]> = [
      ['status-101', 'its status 101 is not an integer from 200 to 599'],
      ['status-string', 'its status "200" is not an integer from 200 to 599'],
      ['status-text-crlf', 'its status text holds characters a status line cannot carry'],
      ['header-crlf', 'the value of header "x-evil" holds CR, LF, NUL or another character a header cannot carry'],
      ['header-name', 'the header name "bad name" is not a valid HTTP token'],
      ['headers-not-a-list', 'its headers are not a list'],
      ['headers-not-pairs', 'its headers are not a list of name and value strings'],
      ['headers-huge', 'its headers take more than 131072 bytes (1 header), the most a response may carry'],
      ['has-body-not-boolean', 'its head is malformed'],
    ];
    for (const [forgery, why] of cases) {
      const res = await attack(daemon, 'forged-response-head', `/?forge=${forgery}`);
      expectErrorResponse(res, 500, cannotSend(why));
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    // The instance itself is fine: an honest head goes through.
    expect(await daemon.fetchText('forged-response-head', '/')).toMatchObject({ status: 200, text: 'the real body' });
    await expectDaemonServes(daemon);
  });

  it('of 101 on a WebSocket upgrade gets the socket closed, not left open with nobody behind it', async () => {
    const daemon = await startHostileDaemon(['forged-response-head']);
    // The client's handshake completes on the forged head; the body that follows is what gives it away.
    const socket = await openSocket(daemon, 'forged-response-head', '/?big&forge=upgrade-101');
    const reason = 'the instance sent a response body after its 101: a WebSocket carries none';
    expect(await socket.closed).toEqual({ code: 1011, reason });
    expect(daemon.logs).toContainEqual(expect.objectContaining({ msg: 'WebSocket closed with 1011', worker: 'forged-response-head', reason }));
    // Closed and out of the count (until 2026-12-06 it stayed open, uncounted, until the client left).
    await until(() => daemon.broker.stats().find((w) => w.name === 'forged-response-head')?.webSockets === 0, 'the socket to leave the count');
    // With no body behind the forged head, the request's end in the child gives it away.
    const bare = await openSocket(daemon, 'forged-response-head', '/?empty&forge=upgrade-101');
    expect(await bare.closed).toEqual({ code: 1011, reason: 'the request ended in the instance while its WebSocket was still open' });
    await until(() => daemon.broker.stats().find((w) => w.name === 'forged-response-head')?.webSockets === 0, 'the second socket to leave the count');
    expect(await daemon.fetchText('forged-response-head', '/')).toMatchObject({ status: 200, text: 'the real body' });
    await expectDaemonServes(daemon);
  });

  it('with a body length that lies gets a clean 500 when the body came whole with the head', async () => {
    const daemon = await startHostileDaemon(['forged-response-head']);
    for (const [forgery, claimed] of [
      ['body-length-longer', 1013],
      ['body-length-shorter', 1],
    ] as const) {
      const res = await attack(daemon, 'forged-response-head', `/?forge=${forgery}`);
      expectErrorResponse(res, 500, cannotSend(`its body of 13 bytes does not match the length its head gave (${claimed})`));
    }
    expect(await daemon.fetchText('forged-response-head', '/')).toMatchObject({ status: 200, text: 'the real body' });
    await expectDaemonServes(daemon);
  });

  it('with a body length that lies is cut when the body follows the head, never sent short or long on a kept-alive connection', async () => {
    const daemon = await startHostileDaemon(['forged-response-head']);
    for (const [forgery, reason] of [
      ['body-length-longer', 'the response body ended after 70000 of the 71000 bytes its Content-Length header promised'],
      ['body-length-shorter', 'the response body is longer than the 1 bytes its Content-Length header promised'],
    ]) {
      await expect(attack(daemon, 'forged-response-head', `/?big&forge=${forgery}`)).rejects.toThrow();
      expect(daemon.logs).toContainEqual(
        expect.objectContaining({ msg: 'response body failed mid-stream', worker: 'forged-response-head', reason }),
      );
    }
    expect(await daemon.fetchText('forged-response-head', '/')).toMatchObject({ status: 200, text: 'the real body' });
    await expectDaemonServes(daemon);
  });
});

/**
 * `request.cf` (runner/web.ts): what edgeproc knows of a request, and what `--cf FILE`
 * configures for local testing; never a made-up location.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts } from '../helpers/daemon.js';

afterEach(closeDaemons);

const SCRIPT = `
export default {
  fetch(request) {
    const cf = request.cf;
    let nestedWrite = 'n/a';
    if (cf.botManagement) {
      try { cf.botManagement.score = 1; nestedWrite = 'ignored: ' + cf.botManagement.score; } catch (error) { nestedWrite = error.name; }
    }
    return Response.json({
      cf,
      country: cf.country ?? null,
      same: request.cf === cf,
      built: typeof new Request('https://example.com/').cf,
      ownKeys: Reflect.ownKeys(request).length,
      nestedWrite,
    });
  },
};
`;

describe('request.cf', () => {
  it('holds what edgeproc knows of the request and no location, on received requests only', async () => {
    const daemon = await startTestDaemon(writeScripts({ 'cf.mjs': SCRIPT }));
    const res = await daemon.fetchText('cf', '/', { headers: { 'accept-encoding': 'gzip, br' } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      cf: { clientAcceptEncoding: 'gzip, br' },
      country: null,
      same: true,
      built: 'undefined',
      // The mark that tells a received request from a built one is not visible to the tenant.
      ownKeys: 0,
      nestedWrite: 'n/a',
    });
  });

  it('starts from the fields of --cf FILE, frozen below the top level, for every request', async () => {
    const dir = writeScripts({ 'cf.mjs': SCRIPT });
    const file = join(dir, 'cf.json');
    writeFileSync(file, JSON.stringify({ country: 'DE', colo: 'FRA', asn: 3320, botManagement: { score: 99 } }));
    const daemon = await startTestDaemon(dir, { cf: file });
    for (const encoding of ['gzip', 'identity']) {
      const res = await daemon.fetchText('cf', '/', { headers: { 'accept-encoding': encoding } });
      const body = JSON.parse(res.text);
      expect(body.cf).toEqual({ country: 'DE', colo: 'FRA', asn: 3320, botManagement: { score: 99 }, clientAcceptEncoding: encoding });
      expect(body.country).toBe('DE');
      // A module is strict code: the shared nested object refuses the write.
      expect(body.nestedWrite).toBe('TypeError');
    }
  });
});

/**
 * Attack: subvert the runner (replace JSON.stringify, which its frame encoder
 * calls) so a binding call names what the tenant was not given: another
 * worker's KV binding, a request not in flight, or another worker's cache.
 * The daemon decides what a call reaches from the instance's own worker, never
 * from the frame: each attempt fails or misses, and the victim's data stays
 * its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

const VICTIM = `
export default {
  async fetch(request, env) {
    await env.SECRETS.put('password', 'hunter2');
    await caches.default.put('https://victim.example/private', new Response('victim page', { headers: { 'cache-control': 'max-age=600' } }));
    return new Response('stored');
  },
};
`;

const ATTACKER = `
const stringify = JSON.stringify;
let forge = null;
JSON.stringify = function (value, ...rest) {
  if (forge && value && typeof value === 'object' && 'target' in value && 'op' in value) {
    value = forge(value);
    forge = null;
  }
  return stringify(value, ...rest);
};
export default {
  async fetch(request, env) {
    const how = new URL(request.url).searchParams.get('how');
    if (how === 'binding') forge = (call) => ({ ...call, target: { kind: 'kv', binding: 'SECRETS' } });
    if (how === 'parent') forge = (call) => ({ ...call, parent: 999999 });
    if (how === 'proto') forge = (call) => ({ ...call, target: { kind: 'kv', binding: 'constructor' } });
    try {
      if (how === 'cache') {
        const hit = await caches.default.match('https://victim.example/private');
        return new Response(hit ? 'read ' + (await hit.text()) : 'miss');
      }
      const value = await env.MINE.get('password');
      return new Response('read ' + value);
    } catch (error) {
      return new Response('rejected ' + error.name + ': ' + error.message);
    }
  },
};
`;

describe('a forged binding call', () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    const dir = writeScripts({
      'victim/wrangler.toml': 'name = "victim"\nmain = "index.js"\nkv_namespaces = [{ binding = "SECRETS", id = "victim-secrets" }]\n',
      'victim/index.js': VICTIM,
      'attacker/wrangler.toml': 'name = "attacker"\nmain = "index.js"\nkv_namespaces = [{ binding = "MINE", id = "attacker-own" }]\n',
      'attacker/index.js': ATTACKER,
    });
    daemon = await startTestDaemon(dir, { persistTo: mkdtempSync(join(tmpdir(), 'edgeproc-kv-')) });
    expect((await daemon.fetchText('victim')).text).toBe('stored');
  });

  afterAll(closeDaemons);

  it("naming another worker's KV binding reaches nothing", async () => {
    expect((await daemon.fetchText('attacker', '/?how=binding')).text).toBe(
      'rejected Error: env.SECRETS is not a KV namespace of worker "attacker": declare it in kv_namespaces of its wrangler config',
    );
    // Its own namespace, asked honestly, holds nothing of the victim's.
    expect((await daemon.fetchText('attacker', '/?how=none')).text).toBe('read null');
  });

  it("naming a property every object has (constructor) finds no namespace", async () => {
    expect((await daemon.fetchText('attacker', '/?how=proto')).text).toBe(
      'rejected Error: env.constructor is not a KV namespace of worker "attacker": declare it in kv_namespaces of its wrangler config',
    );
  });

  it('naming a request not in flight is refused', async () => {
    expect((await daemon.fetchText('attacker', '/?how=parent')).text).toBe('rejected Error: binding call denied: it names no request in flight');
  });

  it("cannot read another worker's cache entry by its URL", async () => {
    expect((await daemon.fetchText('attacker', '/?how=cache')).text).toBe('miss');
    expect((await daemon.fetchText('victim')).status).toBe(200);
  });
});

/**
 * A project's `main` bundled as wrangler does: TypeScript importing an npm
 * package (resolved with the `workerd` condition first), and tenant stack
 * traces — thrown or logged — mapped back to the original `.ts` file and line.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';

let dir: string;
let daemon: TestDaemon;

beforeAll(async () => {
  dir = writeScripts({
    'wrangler.toml': 'name = "typed"\nmain = "src/index.ts"\ncompatibility_date = "2024-09-23"\n',
    // An npm package with a build per runtime: the bundle must take the workerd one, as wrangler's does.
    'node_modules/shout/package.json': JSON.stringify({
      name: 'shout',
      version: '1.0.0',
      exports: { '.': { workerd: './workerd.js', node: './node.js', default: './node.js' } },
    }),
    'node_modules/shout/workerd.js': 'export const shout = (s) => s.toUpperCase() + "! (workerd build)";\n',
    'node_modules/shout/node.js': 'import fs from "node:fs"; export const shout = (s) => fs + s;\n',
    'src/fail.ts': [
      'export class TeapotError extends Error {',
      '  readonly status: number = 418;',
      '}',
      '',
      'export function brew(kind: string): never {',
      '  throw new TeapotError(`cannot brew ${kind}`);',
      '}',
      '',
    ].join('\n'),
    'src/index.ts': [
      "import { shout } from 'shout';",
      "import { brew } from './fail';",
      '',
      'interface Env {}',
      '',
      'export default {',
      '  async fetch(request: Request, _env: Env): Promise<Response> {',
      '    const { pathname } = new URL(request.url);',
      "    if (pathname === '/throw') brew('coffee');",
      "    if (pathname === '/log') {",
      '      try {',
      "        brew('tea');",
      '      } catch (err) {',
      '        console.error((err as Error).stack);',
      '      }',
      '    }',
      "    const words: string[] = ['hello', 'typescript'];",
      "    return new Response(shout(words.join(' ')));",
      '  },',
      '};',
      '',
    ].join('\n'),
  });
  daemon = await startTestDaemon(dir);
});
afterAll(() => closeDaemons());

describe('bundling a TypeScript project', () => {
  it('serves TypeScript that imports an npm package, with the workerd build of it', async () => {
    const res = await daemon.fetchText('typed');
    expect(res).toMatchObject({ status: 200, text: 'HELLO TYPESCRIPT! (workerd build)' });
    expect(daemon.registry.get('typed')!.filename).toMatch(/^.*\/typed\.\d+\.bundle\.js$/);
  });

  it('logs a thrown exception with a stack naming the .ts file and line', async () => {
    const res = await daemon.fetchText('typed', '/throw');
    expect(res.status).toBe(500);
    expect(res.text).toContain('Worker threw exception: Error: cannot brew coffee');
    const logged = daemon.logs.find((r) => r.msg === 'worker threw an exception');
    const stack = String(logged?.stack);
    expect(stack).toContain(`at brew (${join(dir, 'src/fail.ts')}:6:9)`);
    expect(stack).toContain(`(${join(dir, 'src/index.ts')}:9:32)`);
    expect(stack).not.toContain('.bundle.js');
  });

  it("maps console.error(err.stack) from the tenant the same way", async () => {
    await daemon.fetchText('typed', '/log');
    const line = daemon.logs.find((r) => r.source === 'tenant' && r.msg.includes('cannot brew tea'));
    expect(line?.level).toBe('error');
    expect(line?.msg).toContain(`at brew (${join(dir, 'src/fail.ts')}:6:9)`);
    expect(line?.msg).toContain(`(${join(dir, 'src/index.ts')}:12:9)`);
  });

  it('stops serve with the file and line of a TypeScript error esbuild cannot bundle', async () => {
    const broken = writeScripts({
      'wrangler.toml': 'name = "broken"\nmain = "src/index.ts"\n',
      'src/index.ts': "import { missing } from 'not-installed';\nexport default { fetch: () => new Response(missing) };\n",
    });
    await expect(startTestDaemon(broken)).rejects.toThrow(
      `worker "broken": bundling ${join(broken, 'src/index.ts')} failed: ${join(broken, 'src/index.ts')}:1:25: Could not resolve "not-installed"`,
    );
  });
});

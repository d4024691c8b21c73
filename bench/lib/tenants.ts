/** A directory of tiny hello-world tenants w0 … w(N-1), for benchmarks that need many never-seen workers. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

export function tenantDir(count: number): { dir: string; names: string[] } {
  const dir = tempDir('tenants');
  const names = Array.from({ length: count }, (_, i) => `w${i}`);
  for (const name of names) {
    writeFileSync(
      join(dir, `${name}.js`),
      `addEventListener('fetch', (event) => event.respondWith(new Response('hello from ${name}\\n')));\n`,
    );
  }
  return { dir, names };
}

/** Directories of never-seen workers for benchmarks: tiny hello-world tenants, or copies of a real app. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleProject } from '../../src/projects/bundle.js';
import { readProjectConfig } from '../../src/projects/project-config.js';
import { PACKAGE_ROOT } from './build.js';
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

/**
 * A directory of N copies of a real Workers app, the bundled examples/hono-app (Hono's router,
 * middleware, JWT and streaming helpers, ~80 KB), bundled as `edgeproc serve` bundles a Wrangler
 * project: the cold start of a real app, whose script takes milliseconds to compile and run.
 */
export async function appTenantDir(count: number): Promise<{ dir: string; names: string[]; bytes: number }> {
  const config = readProjectConfig(join(PACKAGE_ROOT, 'examples/hono-app/wrangler.toml'));
  const { source } = await bundleProject(config);
  const dir = tempDir('app-tenants');
  const names = Array.from({ length: count }, (_, i) => `app${i}`);
  for (const name of names) writeFileSync(join(dir, `${name}.mjs`), source);
  return { dir, names, bytes: Buffer.byteLength(source) };
}

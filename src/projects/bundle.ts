/**
 * Bundles a project's `main` as wrangler does, with esbuild in the daemon at
 * serve time: TypeScript, ES modules and npm packages become one ES module,
 * the worker's source, with a source map kept in the daemon (source-maps.ts)
 * to put tenant stack traces back on the original files.
 */
import { basename, join } from 'node:path';
import type { BuildOptions, BuildResult, Message } from 'esbuild';
import { EdgeprocError } from '../errors.js';
import { lazyPackage } from '../lazy-package.js';
import type { ProjectConfig } from './project-config.js';

const esbuild = lazyPackage<typeof import('esbuild')>('esbuild');

export interface Bundle {
  /** The name the worker's code runs under: its stack frames say it, and the source map is found by it. */
  filename: string;
  source: string;
  /** The source map, as JSON; its sources are relative to `dir`. */
  map: string;
  dir: string;
}

export interface BundleWatch {
  dispose(): Promise<void>;
}

/** Every build gets its own filename, so a frame from an older version still finds its own map. */
let builds = 0;

function options(project: ProjectConfig): BuildOptions {
  return {
    entryPoints: [project.main],
    absWorkingDir: project.dir,
    // Not written: `outfile` only names the output and anchors the map's relative source paths.
    outfile: join(project.dir, `${project.name}.bundle.js`),
    write: false,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['browser', 'module', 'main'],
    target: 'es2022',
    sourcemap: 'external',
    logLevel: 'silent',
  };
}

function toBundle(project: ProjectConfig, result: BuildResult): Bundle {
  const files = result.outputFiles ?? [];
  const js = files.find((f) => f.path.endsWith('.js'));
  const map = files.find((f) => f.path.endsWith('.js.map'));
  if (!js || !map) throw new EdgeprocError('ERR_SPAWN', `bundling ${project.main}: esbuild returned no output`);
  // The map comment names a file that is never written; the map is kept in the daemon instead.
  const source = js.text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
  return { filename: join(project.dir, `${project.name}.${++builds}.bundle.js`), source, map: map.text, dir: project.dir };
}

export async function bundleProject(project: ProjectConfig): Promise<Bundle> {
  try {
    return toBundle(project, await esbuild().build(options(project)));
  } catch (error) {
    throw bundleError(project, error);
  }
}

/**
 * Rebuilds on every change to a file the bundle was made from (esbuild's own
 * watcher); each new bundle goes to `onBundle`, a failed build to `onError`.
 * The first build, which `serve` already did, is skipped.
 */
export async function watchProject(
  project: ProjectConfig,
  onBundle: (bundle: Bundle) => void,
  onError: (error: EdgeprocError) => void,
): Promise<BundleWatch> {
  let first = true;
  const ctx = await esbuild().context({
    ...options(project),
    plugins: [
      {
        name: 'edgeproc-watch',
        setup(build) {
          build.onEnd((result) => {
            if (first) return void (first = false);
            if (result.errors.length > 0) return onError(bundleError(project, result));
            onBundle(toBundle(project, result));
          });
        },
      },
    ],
  });
  await ctx.watch();
  return { dispose: () => ctx.dispose() };
}

/** esbuild's first error, on one line: the file, the line and column, and what it says. */
function bundleError(project: ProjectConfig, error: unknown): EdgeprocError {
  const first = (error as { errors?: Message[] }).errors?.[0];
  if (!first) return new EdgeprocError('ERR_SCRIPT_LOAD', `worker "${project.name}": bundling ${basename(project.main)} failed: ${(error as Error).message}`);
  const at = first.location ? `${join(project.dir, first.location.file)}:${first.location.line}:${first.location.column + 1}: ` : '';
  return new EdgeprocError('ERR_SCRIPT_LOAD', `worker "${project.name}": bundling ${project.main} failed: ${at}${first.text}`);
}

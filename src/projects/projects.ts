/**
 * The Workers projects of a target, for the daemon: bundles them, says what
 * their configs asked for that edgeproc does not do, and gives each one's
 * `env` (vars, then `.dev.vars` secrets over them), limits and routes. With
 * `--watch` it rebuilds a project on change and hands the new bundle over to
 * be deployed as an admin PUT would be.
 */
import { EdgeprocError } from '../errors.js';
import { workerLimits, type Limits } from '../limits.js';
import type { Logger } from '../log.js';
import type { RouteRule } from '../server/routes.js';
import type { Target, TargetWorker } from '../workers/target.js';
import { bundleProject, watchProject, type Bundle, type BundleWatch } from './bundle.js';
import { readDevVars } from './dev-vars.js';
import type { ProjectConfig } from './project-config.js';
import { SourceMaps } from './source-maps.js';

/** edgeproc's limit names → the wrangler field they came from, for error messages. */
const LIMIT_FIELDS = { cpuMs: 'cpu_ms', subrequests: 'subrequests' } as const;

export class Projects {
  readonly maps = new SourceMaps();
  readonly #workers: Array<TargetWorker & { project: ProjectConfig }>;
  readonly #secrets = new Map<string, Record<string, string>>();
  readonly #log: Logger;
  #watches: BundleWatch[] = [];
  #maxScriptBytes = Infinity;

  constructor(target: Target, log: Logger) {
    this.#workers = target.workers.filter((w): w is TargetWorker & { project: ProjectConfig } => w.project !== undefined);
    this.#log = log;
    for (const { name, project } of this.#workers) {
      for (const warning of project.warnings) log.warn(`${project.file}: ${warning.message}`, { worker: name, file: project.file, field: warning.field });
      const secrets = readDevVars(project.dir, project.envName);
      this.#secrets.set(name, secrets.values);
      // Names and values of secrets stay out of the log: only how many, and from where.
      if (secrets.file) log.info('secrets loaded into env', { worker: name, file: secrets.file, count: Object.keys(secrets.values).length });
    }
  }

  /** Bundles every project (in turn: esbuild uses every core for one build) and fills in its source. */
  async bundle(maxScriptBytes: number): Promise<void> {
    this.#maxScriptBytes = maxScriptBytes;
    for (const worker of this.#workers) {
      const bundle = await bundleProject(worker.project);
      checkSize(worker.project, bundle, maxScriptBytes);
      this.maps.add(worker.name, bundle.filename, bundle.map, bundle.dir);
      worker.source = bundle.source;
      worker.path = bundle.filename;
    }
  }

  /** A project worker's `env`: its vars, and its secrets over them; {} for a plain script. */
  env(name: string): Record<string, unknown> {
    const worker = this.#workers.find((w) => w.name === name);
    return worker ? { ...worker.project.vars, ...this.#secrets.get(name) } : {};
  }

  /**
   * A project worker's KV bindings: env name → namespace. The namespace is the entry's `id`, so
   * workers naming one id share its data, as on Cloudflare (`preview_id`, then the binding's own
   * name, when there is none).
   */
  kv(name: string): Record<string, string> {
    const worker = this.#workers.find((w) => w.name === name);
    const kv: Record<string, string> = {};
    for (const ns of worker?.project.kvNamespaces ?? []) kv[ns.binding] = ns.id ?? ns.previewId ?? ns.binding;
    return kv;
  }

  /** The daemon's limits with a project's `[limits]` on top; the daemon's for a plain script. */
  limits(name: string, global: Limits): Limits {
    const worker = this.#workers.find((w) => w.name === name);
    if (!worker) return global;
    try {
      return workerLimits(global, worker.project.limits);
    } catch (error) {
      const key = Object.keys(worker.project.limits).find((k) => (error as Error).message.includes(`limits.${k} `)) as keyof typeof LIMIT_FIELDS | undefined;
      const field = key ? `limits.${LIMIT_FIELDS[key]}` : 'limits';
      throw new EdgeprocError('ERR_CONFIG', `${worker.project.file}: "${field}": ${(error as Error).message}`);
    }
  }

  /** Every project worker's cron triggers, for the scheduler. */
  crons(): Array<{ worker: string; cron: string }> {
    return this.#workers.flatMap(({ name, project }) => project.crons.map((cron) => ({ worker: name, cron })));
  }

  /** A worker's cron triggers; none for a plain script. */
  cronsOf(name: string): readonly string[] {
    return this.#workers.find((w) => w.name === name)?.project.crons ?? [];
  }

  /** Every project's routes; one pattern claimed by two workers stops serve, as Cloudflare refuses it. */
  routes(): RouteRule[] {
    const rules: RouteRule[] = [];
    const owners = new Map<string, string>();
    for (const { name, project } of this.#workers) {
      for (const route of project.routes) {
        const other = owners.get(route.pattern);
        if (other && other !== name) {
          throw new EdgeprocError('ERR_CONFIG', `${project.file}: "routes": the pattern "${route.pattern}" is also a route of worker "${other}"; a pattern may route to one worker only`);
        }
        owners.set(route.pattern, name);
        rules.push({ pattern: route.pattern, worker: name });
      }
    }
    return rules;
  }

  /**
   * `serve --watch`: rebuilds each project when a file of its bundle changes
   * and passes the new bundle to `deploy`. A build that fails is logged; the
   * version live before it keeps serving.
   */
  async watch(deploy: (name: string, bundle: Bundle) => Promise<void>): Promise<void> {
    for (const { name, project } of this.#workers) {
      const watch = await watchProject(
        project,
        (bundle) => {
          try {
            checkSize(project, bundle, this.#maxScriptBytes);
            this.maps.add(name, bundle.filename, bundle.map, bundle.dir);
          } catch (error) {
            this.#log.error('rebuild failed; the previous version keeps serving', { worker: name, error: (error as Error).message });
            return;
          }
          deploy(name, bundle).catch((error: Error) =>
            this.#log.error('rebuilt worker failed to load; the previous version keeps serving', { worker: name, error: error.message }),
          );
        },
        (error) => this.#log.error('rebuild failed; the previous version keeps serving', { worker: name, error: error.message }),
      );
      this.#watches.push(watch);
    }
  }

  async close(): Promise<void> {
    const watches = this.#watches.splice(0);
    await Promise.all(watches.map((w) => w.dispose()));
  }
}

function checkSize(project: ProjectConfig, bundle: Bundle, maxScriptBytes: number): void {
  const bytes = Buffer.byteLength(bundle.source);
  if (bytes > maxScriptBytes) {
    throw new EdgeprocError('ERR_SCRIPT_TOO_LARGE', `worker "${project.name}": the bundle of ${project.main} is ${bytes} bytes; the script limit is ${maxScriptBytes} bytes`);
  }
}

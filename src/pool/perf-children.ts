/**
 * `EDGEPROC_PERF_CHILDREN=1`: children that Linux `perf` can profile, for
 * finding where a tenant child's time goes (`npm run bench -- profile`). The
 * inspector cannot reach a child (the permission model denies it), but perf
 * reads a child from outside if V8 writes a map of its JIT code to
 * /tmp/perf-PID.map, which needs the child's file-size limit lifted. V8 writes
 * that file itself, past Node's permission model, so this weakens one layer
 * (rlimits: file writes allowed) and the daemon says so at start. A benchmark
 * and debugging aid: never for tenants one does not trust.
 */
export const PERF_CHILDREN = process.env.EDGEPROC_PERF_CHILDREN === '1';

/** V8's flag for the map (functions only: smaller, and enough to name JavaScript frames). */
export const PERF_CHILD_FLAGS: readonly string[] = PERF_CHILDREN ? ['--perf-basic-prof-only-functions'] : [];

/**
 * Per-module tracing, off by default (STYLE §5).
 *
 * `DISCO_TRACE=router,inprocess` (or `all`) turns modules on; lines go to stderr
 * with a timestamp and the module name. Callers test the returned flag before
 * building a message, so a disabled trace costs one boolean check:
 *
 *   const tracer = tracerFor('router');
 *   if (tracer.enabled) tracer.log(`route ${node} -> ${t.name}`);
 */

/** A module's tracer. */
export interface Tracer {
  readonly enabled: boolean;
  log(message: string): void;
}

const selected = new Set(
  (process.env.DISCO_TRACE ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
);

/** The tracer of `module`; enabled when DISCO_TRACE names it or says `all`. */
export function tracerFor(module: string): Tracer {
  const enabled = selected.has(module) || selected.has('all');
  return {
    enabled,
    log(message: string): void {
      if (enabled) process.stderr.write(`${new Date().toISOString()} disco:${module} ${message}\n`);
    },
  };
}

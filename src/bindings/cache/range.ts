/**
 * The Range header of a cache.match request, read against the stored body's
 * length. [workers] https://developers.cloudflare.com/workers/runtime-apis/cache/
 * says a Range on the request "Results in a 206 response" when a matching
 * response is found.
 *
 * Where RFC 9110 §14 leaves a choice, this follows miniflare (Cloudflare's local
 * implementation, what `wrangler dev` answers), except for a range unit other
 * than bytes, which RFC 9110 §14.2 says MUST be ignored.
 */

export type RangeDecision =
  /** Serve the whole body as if there were no Range. */
  | { kind: 'whole' }
  /** 416 Range Not Satisfiable. */
  | { kind: 'unsatisfiable' }
  /** 206 with bytes start..end, both inclusive. */
  | { kind: 'partial'; start: number; end: number };

const WHOLE: RangeDecision = { kind: 'whole' };
const UNSATISFIABLE: RangeDecision = { kind: 'unsatisfiable' };

const BYTES_UNIT = /^\s*bytes\s*=/i;
const RANGE_SPEC = /^\s*(\d*)\s*-\s*(\d*)\s*$/;

export function decideRange(header: string, length: number): RangeDecision {
  // 1. Another unit (or none): ignored (RFC 9110 §14.2).
  const unit = BYTES_UNIT.exec(header);
  if (!unit) return WHOLE;
  const specs = header.slice(unit[0].length).split(',');
  // 2. `bytes=` with nothing after it: the whole body (as miniflare).
  if (specs.length === 1 && specs[0]!.trim() === '') return WHOLE;
  // 3. Several ranges would be a multipart/byteranges body, which this store does not build; a
  //    server may ignore a Range (RFC 9110 §14.2), so the whole body is served.
  if (specs.length > 1) return WHOLE;
  // 4. A malformed spec is unsatisfiable (as miniflare).
  const spec = RANGE_SPEC.exec(specs[0]!);
  if (!spec || (spec[1] === '' && spec[2] === '')) return UNSATISFIABLE;
  const first = spec[1]!;
  const last = spec[2]!;
  // 5. A suffix `-n`: the last n bytes; a suffix covering the body (or -0) is the whole body (as miniflare).
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || suffix >= length) return WHOLE;
    return { kind: 'partial', start: length - suffix, end: length - 1 };
  }
  // 6. `a-` or `a-b`: unsatisfiable when a is past the body or after b; b is clamped to the body.
  const start = Number(first);
  const end = last === '' ? length - 1 : Math.min(Number(last), length - 1);
  if (start >= length || (last !== '' && start > Number(last))) return UNSATISFIABLE;
  return { kind: 'partial', start, end };
}

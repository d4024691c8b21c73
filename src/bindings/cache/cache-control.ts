/**
 * Cache-Control directive syntax: a comma-separated list of
 * `name[=token|"quoted-string"]`, names compared without case.
 * https://www.rfc-editor.org/rfc/rfc9111#section-5.2
 *
 * Only the syntax lives here; what the directives mean for cache.put is
 * decided in storage-policy.ts.
 */

export interface CacheDirective {
  /** Lower case. */
  name: string;
  /** The argument, unquoted; null when the directive has none. */
  value: string | null;
}

/** Every directive in order, duplicates kept (the policy decides which occurrence counts). */
export function parseCacheControl(header: string | null): CacheDirective[] {
  const directives: CacheDirective[] = [];
  if (header === null) return directives;
  let i = 0;
  while (i < header.length) {
    // 1. Skip separators and whitespace before the name.
    while (i < header.length && (header[i] === ',' || isSpace(header[i]!))) i++;
    if (i >= header.length) break;
    // 2. The name runs to `=`, `,` or the end.
    const nameStart = i;
    while (i < header.length && header[i] !== '=' && header[i] !== ',') i++;
    const name = header.slice(nameStart, i).trim().toLowerCase();
    let value: string | null = null;
    if (header[i] === '=') {
      i++;
      while (i < header.length && isSpace(header[i]!)) i++;
      if (header[i] === '"') {
        // 3a. A quoted-string may hold commas (`private="Set-Cookie, X-Id"`) and backslash escapes.
        i++;
        let text = '';
        while (i < header.length && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < header.length) i++;
          text += header[i];
          i++;
        }
        i++; // the closing quote
        value = text;
        // Anything between the closing quote and the next comma is not part of the directive.
        while (i < header.length && header[i] !== ',') i++;
      } else {
        // 3b. A token runs to the next comma.
        const valueStart = i;
        while (i < header.length && header[i] !== ',') i++;
        value = header.slice(valueStart, i).trim();
      }
    }
    if (name !== '') directives.push({ name, value });
  }
  return directives;
}

function isSpace(char: string): boolean {
  return char === ' ' || char === '\t';
}

/** `private="Set-Cookie, X-Id"` → ['set-cookie', 'x-id']: the field names a qualified directive lists. */
export function fieldNames(value: string): string[] {
  return value
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
}

/**
 * A delta-seconds argument (max-age, s-maxage) or the Age field; null when it
 * is not a non-negative integer. Values past 2^31 are read as 2^31
 * (RFC 9111 §1.2.2).
 */
export function parseDeltaSeconds(value: string | null): number | null {
  if (value === null || !/^\d+$/.test(value)) return null;
  return Math.min(Number(value), 2 ** 31);
}

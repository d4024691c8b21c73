/**
 * Reading a HeaderList (name/value pairs as they crossed the IPC channel, in
 * the tenant's order and case) the way Headers would: names compare without
 * case, and repeated fields combine into one comma-separated value.
 */
import type { HeaderList } from '../../../protocol/messages.js';

/** The combined value of every `name` field, or null when there is none. */
export function headerValue(headers: HeaderList, name: string): string | null {
  const wanted = name.toLowerCase();
  let combined: string | null = null;
  for (const [field, value] of headers) {
    if (field.toLowerCase() !== wanted) continue;
    combined = combined === null ? value : `${combined}, ${value}`;
  }
  return combined;
}

export function hasHeader(headers: HeaderList, name: string): boolean {
  const wanted = name.toLowerCase();
  return headers.some(([field]) => field.toLowerCase() === wanted);
}

/** A copy without the fields named in `lowerCaseNames`. */
export function withoutHeaders(headers: HeaderList, lowerCaseNames: ReadonlySet<string>): HeaderList {
  return headers.filter(([field]) => !lowerCaseNames.has(field.toLowerCase()));
}

/** Bytes the fields take in memory as UTF-8, names and values. */
export function headerListBytes(headers: HeaderList): number {
  let bytes = 0;
  for (const [field, value] of headers) bytes += Buffer.byteLength(field) + Buffer.byteLength(value);
  return bytes;
}

/**
 * list()'s cursor: opaque to the tenant, and here the UTF-8 bytes of the last
 * key of the page in base64url, so the next page starts strictly after that key
 * whatever was written or deleted in between (a key inserted before it is not
 * seen, one after it is, as on Workers). Any string decodes to some position, as
 * in miniflare; a cursor from another prefix simply starts at that position.
 */

export function encodeCursor(lastKey: string): string {
  return Buffer.from(lastKey, 'utf8').toString('base64url');
}

/** The bytes to start after, or null to start at the beginning (no cursor, or ""). */
export function decodeCursor(cursor: string): Buffer | null {
  if (cursor === '') return null;
  return Buffer.from(cursor, 'base64url');
}

/**
 * The Request a handler receives is built by a shortcut (runner/web.ts incomingRequest:
 * the header list filled directly, no init for a plain GET). A tenant must not be able
 * to tell: every property it can read, its headers, its body and what it does when
 * cloned or used as the input of another Request are those of the object the
 * constructor makes from the same head.
 */
import { describe, expect, it } from 'vitest';
import type { HeaderList } from '../../protocol/messages.js';
import { Request, incomingRequest } from '../../runner/web.js';

interface Head {
  method: string;
  url: string;
  headers: HeaderList;
  body?: string;
}

const HEADS: Array<[string, Head]> = [
  ['a plain GET', { method: 'GET', url: 'http://hello.localhost:8787/', headers: [['Host', 'hello.localhost:8787']] }],
  [
    'a GET with repeated, mixed-case and cookie headers',
    {
      method: 'GET',
      url: 'http://hello.localhost:8787/a/b?x=1&y=%20z',
      headers: [
        ['Host', 'hello.localhost:8787'],
        ['Accept', 'text/html'],
        ['accept', 'application/json'],
        ['Cookie', 'a=1'],
        ['cookie', 'b=2'],
        ['X-Custom-Header', 'v\u00e9'],
        ['Set-Cookie', 'c=3'],
        ['set-cookie', 'd=4'],
      ],
    },
  ],
  ['a HEAD', { method: 'HEAD', url: 'http://[::1]:8787/', headers: [['Host', '[::1]:8787']] }],
  ['a DELETE without a body', { method: 'DELETE', url: 'http://hello.localhost:8787/item/7', headers: [['Host', 'hello.localhost:8787']] }],
  [
    'a POST with a streamed body',
    {
      method: 'POST',
      url: 'http://hello.localhost:8787/upload',
      headers: [
        ['Host', 'hello.localhost:8787'],
        ['Content-Type', 'application/json'],
      ],
      body: '{"hello":"world"}',
    },
  ],
];

function bodyOf(head: Head): ReadableStream<Uint8Array> | null {
  if (head.body === undefined) return null;
  const bytes = new TextEncoder().encode(head.body);
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

function viaConstructor(head: Head): Request {
  return new Request(head.url, { method: head.method, headers: head.headers, body: bodyOf(head), duplex: 'half' } as RequestInit);
}

function viaShortcut(head: Head): Request {
  return incomingRequest(head.url, head.method, head.headers, bodyOf(head));
}

/** Everything a tenant can read off a Request without consuming its body. */
function visible(request: Request): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url,
    headers: [...request.headers],
    setCookies: request.headers.getSetCookie(),
    mode: request.mode,
    credentials: request.credentials,
    cache: request.cache,
    redirect: request.redirect,
    referrer: request.referrer,
    referrerPolicy: request.referrerPolicy,
    integrity: request.integrity,
    keepalive: request.keepalive,
    isReloadNavigation: request.isReloadNavigation,
    isHistoryNavigation: request.isHistoryNavigation,
    destination: request.destination,
    duplex: (request as { duplex?: string }).duplex,
    bodyUsed: request.bodyUsed,
    hasBody: request.body !== null,
    aborted: request.signal.aborted,
    tag: Object.prototype.toString.call(request),
    prototype: Object.getPrototypeOf(request) === Request.prototype,
  };
}

describe('the Request a handler receives', () => {
  it.each(HEADS)('is the constructor’s for %s', async (_, head) => {
    const expected = viaConstructor(head);
    const actual = viaShortcut(head);
    expect(visible(actual)).toEqual(visible(expected));
    expect(await actual.clone().text()).toBe(await expected.clone().text());
    expect(visible(actual)).toEqual(visible(expected));
    expect(await actual.text()).toBe(head.body ?? '');
  });

  it.each(HEADS)('is cloned, rebuilt and changed as the constructor’s is, for %s', (_, head) => {
    const expected = viaConstructor(head);
    const actual = viaShortcut(head);
    expect(visible(actual.clone())).toEqual(visible(expected.clone()));
    const init = head.body === undefined ? { headers: { 'x-added': '1' } } : { method: 'PUT', duplex: 'half' };
    expect(visible(new Request(actual, init as RequestInit))).toEqual(visible(new Request(expected, init as RequestInit)));
    // Its headers take changes and refuse invalid ones the same way.
    actual.headers.set('x-set', 'yes');
    expected.headers.set('x-set', 'yes');
    expect([...actual.headers]).toEqual([...expected.headers]);
    expect(() => actual.headers.append('bad name', 'v')).toThrow(TypeError);
    expect(() => expected.headers.append('bad name', 'v')).toThrow(TypeError);
  });
});

/**
 * Workers' `HTMLRewriter`: `new HTMLRewriter().on(selector, handlers).onDocument(handlers)
 * .transform(response)` answers a Response whose body is the original's, rewritten as it
 * streams through. The rewriting is lol-html, Cloudflare's own streaming rewriter, compiled to
 * WebAssembly (the html-rewriter-wasm package, which Miniflare 2 used): its element, text,
 * comment, doctype and document-end objects are what the tenant's handlers get, and its
 * handlers may be async.
 *
 * Its glue and its 0.9 MB module are not in the runner's bundle, which every child holds: the
 * first read of the global loads them from beside the runner (scripts/build.mjs puts them there,
 * src/pool/sandbox.ts lets children read them) inside a runtime-work window, and compiles the
 * module with the WebAssembly.Module a tenant does not get (wasm.ts). A child whose tenant never
 * reads `HTMLRewriter` carries none of it.
 */
import { bytesOf } from './bytes.js';
import { loadCompanion } from './companions.js';
import { runtimeWebAssembly } from './wasm.js';
import { Headers, Response } from './web.js';

/** The glue's rewriter (html_rewriter.d.ts of html-rewriter-wasm). */
interface LolRewriter {
  on(selector: string, handlers: object): LolRewriter;
  onDocument(handlers: object): LolRewriter;
  write(chunk: Uint8Array): Promise<void>;
  end(): Promise<void>;
  free(): void;
}
type LolRewriterClass = new (sink: (chunk: Uint8Array) => void) => LolRewriter;

// Captured at boot: transform() runs in the tenant's turns, after it could have replaced the globals.
const Readable = ReadableStream;

let lol: LolRewriterClass | null = null;

/**
 * The write or end running now, of any transform in this child. Async handlers suspend
 * lol-html's WebAssembly mid-call (asyncify), and two suspended at once share its one shadow
 * stack: the second to resume overwrites the other's frames (seen as "recursive use of an
 * object detected which would lead to unsafe aliasing in rust", and as output missing a tag).
 * So one call at a time per child; a call that never suspends is over in microseconds.
 */
let lolCall: Promise<unknown> = Promise.resolve();

function exclusive(call: () => Promise<void>): Promise<void> {
  const run = lolCall.then(call);
  lolCall = run.then(freeTokens, freeTokens);
  return run;
}

/**
 * The glue's classes of what handlers get, each with the export that frees one. The glue makes
 * one per handler call, each holding ~40 bytes of lol-html's memory, and never frees it: 20,000
 * links rewritten grew a child by ~0.8 MB, for good (WebAssembly memory never shrinks), until the
 * RSS recycle took the instance.
 */
const TOKEN_CLASSES = {
  Element: '__wbg_element_free',
  Comment: '__wbg_comment_free',
  TextChunk: '__wbg_textchunk_free',
  Doctype: '__wbg_doctype_free',
  DocumentEnd: '__wbg_documentend_free',
  EndTag: '__wbg_endtag_free',
} as const;

interface TokenClass {
  __wrap(ptr: number): { ptr: number };
  prototype: object;
}

/** Tokens handed to handlers since the last free, each with its class's free export. */
let tokens: Array<[token: { ptr: number }, free: (ptr: number) => void]> = [];

const { apply, defineProperty, getOwnPropertyDescriptor, ownKeys } = Reflect;

function spent(): never {
  throw new TypeError(
    'This content token is no longer valid. Content tokens are only valid during the execution of the relevant content handler.',
  );
}

/** Records every token the glue makes, for freeTokens(), and makes a freed one say what it is. */
function trackTokens(glue: Record<string, unknown>): void {
  const wasm = glue.__wasm as Record<string, unknown> | undefined;
  for (const [name, freeExport] of Object.entries(TOKEN_CLASSES)) {
    const tokenClass = glue[name] as TokenClass | undefined;
    const free = wasm?.[freeExport] as ((ptr: number) => void) | undefined;
    if (typeof tokenClass?.__wrap !== 'function' || typeof free !== 'function') {
      throw new TypeError(`HTMLRewriter is not available: html-rewriter.cjs has no ${name}.__wrap or ${freeExport} to free its tokens with`);
    }
    const wrap = tokenClass.__wrap;
    tokenClass.__wrap = (ptr: number) => {
      const token = apply(wrap, tokenClass, [ptr]) as { ptr: number };
      tokens.push([token, free]);
      return token;
    };
    guardSpent(tokenClass.prototype);
  }
}

/**
 * A token used after its handler ended threw Workers' TypeError while lol-html still held it;
 * freed, the glue would throw "null pointer passed to rust". Each member checks first.
 */
function guardSpent(prototype: object): void {
  const guarded = <F extends (...args: never[]) => unknown>(member: F) =>
    function (this: { ptr?: unknown } | null | undefined, ...args: unknown[]): unknown {
      if (this?.ptr === 0) spent();
      return apply(member, this, args);
    };
  for (const key of ownKeys(prototype)) {
    const member = getOwnPropertyDescriptor(prototype, key)!;
    if (key === 'constructor' || key === '__destroy_into_raw') continue;
    if (typeof member.value === 'function') member.value = guarded(member.value);
    if (member.get) member.get = guarded(member.get);
    if (member.set) member.set = guarded(member.set);
    defineProperty(prototype, key, member);
  }
}

/**
 * Frees the tokens of lol-html calls that have ended (no handler of theirs runs any more; one
 * kept by the tenant throws when used, as on Workers). A token whose `ptr` the tenant made
 * anything but a writable number, or freed itself, is left alone: its own memory, in its own child.
 */
function freeTokens(): void {
  const done = tokens;
  tokens = [];
  for (const [token, free] of done) {
    const ptr = getOwnPropertyDescriptor(token, 'ptr');
    if (!ptr?.writable || typeof ptr.value !== 'number' || ptr.value === 0) continue;
    token.ptr = 0;
    try {
      free(ptr.value);
    } catch {
      // A pointer the tenant forged (it can write `ptr`) may trap in lol-html's allocator: its own
      // memory, and the chain of lol-html calls (lolCall) must not be left rejected by it.
    }
  }
}

/**
 * Loads and compiles lol-html once per child. The glue reads its WebAssembly file from its
 * `__dirname` and compiles it with the global `WebAssembly`, bound here to the runtime's
 * compiling namespace.
 */
function loadLol(): LolRewriterClass {
  const glue = loadCompanion<{ HTMLRewriter?: LolRewriterClass }>('html-rewriter.cjs', 'HTMLRewriter', { WebAssembly: runtimeWebAssembly() });
  if (typeof glue.HTMLRewriter !== 'function') throw new TypeError('HTMLRewriter is not available: html-rewriter.cjs exports no HTMLRewriter');
  trackTokens(glue);
  return glue.HTMLRewriter;
}

/** The class the tenant's global holds; reading the global the first time loads lol-html (globals.ts). */
export function loadHTMLRewriter(): typeof HTMLRewriter {
  if (!lol) {
    lol = loadLol();
    warmUp(lol);
  }
  return HTMLRewriter;
}

/**
 * One small rewrite while the load is still the runtime's work: the first pass through lol-html's
 * code (and the glue's) is most of a first transform's cost.
 */
function warmUp(Lol: LolRewriterClass): void {
  const rewriter = new Lol(() => {});
  try {
    const handlers = { element() {}, text() {}, comments() {} };
    rewriter.on('a[href], p', handlers).onDocument({ doctype() {}, end() {} });
    // With handlers that return nothing, write and end finish inside the call; only their promises settle later.
    void rewriter.write(new TextEncoder().encode('<!doctype html><p>warm <a href="/">up</a><!-- c --></p>')).catch(() => {});
    void rewriter.end().catch(() => {});
  } finally {
    rewriter.free();
    freeTokens();
  }
}

export class HTMLRewriter {
  readonly #elementHandlers: Array<[string, object]> = [];
  readonly #documentHandlers: object[] = [];

  on(selector: string, handlers: object): this {
    if (typeof selector !== 'string') throw new TypeError(`HTMLRewriter.on(): the selector must be a string, not ${typeof selector}`);
    if (typeof handlers !== 'object' || handlers === null) throw new TypeError('HTMLRewriter.on(): the handlers must be an object with element, comments or text methods');
    // As on Workers, a selector lol-html cannot parse fails here, not mid-stream.
    const probe = new lol!(() => {});
    try {
      probe.on(selector, {});
    } catch (error) {
      throw new TypeError(`HTMLRewriter.on(${JSON.stringify(selector)}): ${(error as Error).message}`);
    } finally {
      probe.free();
    }
    this.#elementHandlers.push([selector, handlers]);
    return this;
  }

  onDocument(handlers: object): this {
    if (typeof handlers !== 'object' || handlers === null) {
      throw new TypeError('HTMLRewriter.onDocument(): the handlers must be an object with doctype, comments, text or end methods');
    }
    this.#documentHandlers.push(handlers);
    return this;
  }

  /** The response with its body rewritten as it is read; its status and headers, but no Content-Length. */
  transform(response: Response): Response {
    if (!(response instanceof Response)) throw new TypeError('HTMLRewriter.transform(): expects a Response');
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    const init = { status: response.status, statusText: response.statusText, headers };
    if (response.body === null) return new Response(null, init);
    if (response.bodyUsed || response.body.locked) throw new TypeError('HTMLRewriter.transform(): the response body was already read');
    return new Response(rewritten(response.body, this.#elementHandlers.slice(), this.#documentHandlers.slice()), init);
  }
}

/** What a transform's output is gathered in to start with; it grows for a write that makes more. */
const OUTPUT_BUFFER_BYTES = 16 * 1024;

/**
 * `body` through a fresh lol-html rewriter (one per transform: a rewriter ends once), pulled as
 * the reader of the result reads. Its memory is freed when the body ends, fails or is cancelled,
 * never while one of its calls (an async handler) is still running.
 */
function rewritten(body: ReadableStream<Uint8Array>, elementHandlers: Array<[string, object]>, documentHandlers: object[]): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let rewriter: LolRewriter | null = null;
  // lol-html hands its output over in pieces as small as one token: enqueued one by one, a page of
  // 20,000 links made ~100,000 chunks, and the stream's queue (an array it shifts) went quadratic,
  // 18 s of CPU. What one write or end produces goes on as one chunk, gathered in one buffer: a
  // copy of each piece of its own kept the garbage collector busy for a third of a rewrite's CPU.
  let output = new Uint8Array(OUTPUT_BUFFER_BYTES);
  let size = 0;
  const gather = (piece: Uint8Array) => {
    if (size + piece.byteLength > output.byteLength) {
      const larger = new Uint8Array(Math.max(output.byteLength * 2, size + piece.byteLength));
      larger.set(output.subarray(0, size));
      output = larger;
    }
    output.set(piece, size);
    size += piece.byteLength;
  };
  const flush = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (size === 0) return;
    controller.enqueue(output.slice(0, size));
    size = 0;
    // A large page's buffer is not kept for the rest of a long stream.
    if (output.byteLength > OUTPUT_BUFFER_BYTES) output = new Uint8Array(OUTPUT_BUFFER_BYTES);
  };
  let running: Promise<unknown> | null = null;
  const free = () => {
    const done = rewriter;
    rewriter = null;
    done?.free();
  };
  return new Readable<Uint8Array>({
    start() {
      // The output is a view of lol-html's memory, which its next call reuses: gather copies it.
      rewriter = new lol!(gather);
      for (const [selector, handlers] of elementHandlers) rewriter.on(selector, handlers);
      for (const handlers of documentHandlers) rewriter.onDocument(handlers);
    },
    async pull(controller) {
      if (!rewriter) return;
      try {
        const { done, value } = await reader.read();
        // Cancelled while it waited for the body.
        if (!rewriter) return;
        if (done) {
          const ending = rewriter;
          await (running = exclusive(() => ending.end()));
          free();
          flush(controller);
          controller.close();
          return;
        }
        const bytes = bytesOf(value);
        if (!bytes) throw new TypeError('HTMLRewriter.transform(): the response body gave a chunk that is not bytes; a body for HTMLRewriter must be a byte stream');
        const writing = rewriter;
        await (running = exclusive(() => writing.write(bytes)));
        flush(controller);
      } catch (error) {
        free();
        reader.cancel(error).catch(() => {});
        throw error;
      } finally {
        running = null;
      }
    },
    cancel(reason) {
      // A call still running keeps the rewriter until it returns.
      if (running) void running.then(free, free);
      else free();
      return reader.cancel(reason);
    },
  });
}

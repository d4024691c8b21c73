/**
 * The tenant's global scope, declared in one table grouped as DESIGN.md lists
 * it. installGlobals() removes every Node-specific global, defines each name
 * below with a locked descriptor and freezes the Web API objects, so a tenant
 * can neither reach Node nor patch what the runner relies on. A name that
 * fails to resolve fails the child at boot, never at request time.
 */
import vm from 'node:vm';
import { Headers, Request, Response, FormData } from './web.js';
import { ExtendableEvent, FetchEvent, ScheduledEvent } from './events.js';
import type { BindingCaller } from './binding-call.js';
import { Cache, CacheStorage } from './caches.js';
import type { TenantTimers } from './timers.js';
import { disallowWasmCodegen } from './wasm.js';
import { guardStructuredClone } from './plain-streams.js';
import { announceCompressionTurns } from './compression-turns.js';
import { announcePortTurns } from './port-turns.js';
import { announceSubtleTurns } from './subtle-turns.js';
import { addDigestStream, addWorkersSubtle } from './workers-crypto.js';
import { FixedLengthStream, IdentityTransformStream } from './workers-streams.js';
import { loadHTMLRewriter } from './html-rewriter.js';
import { loadCompanion } from './companions.js';
import { Scheduler } from './scheduler.js';
import type { TurnHooks } from './turn-hooks.js';
import { CloseEvent, WebSocket, WebSocketPair } from './websocket.js';

/** Things the runtime supplies per child: they talk to the daemon. */
export interface ScopeHooks {
  fetch: typeof globalThis.fetch;
  /** KV and Cache API operations, carried out by the daemon. */
  callBinding: BindingCaller;
  timers: TenantTimers;
  console: Console;
  addEventListener: (type: string, listener: unknown) => void;
  removeEventListener: (type: string, listener: unknown) => void;
  /**
   * Whose work runs now, and whose resumes in a turn the runner did not start
   * (subtle-turns.ts, port-turns.ts, compression-turns.ts).
   */
  turns: TurnHooks;
}

class Navigator {
  get userAgent(): string {
    return 'Cloudflare-Workers';
  }
  get hardwareConcurrency(): number {
    return 1;
  }
  get language(): string {
    return 'en';
  }
  get languages(): readonly string[] {
    return Object.freeze(['en']);
  }
}

/** A function as a tenant sees it: with the name of its global, not the runner's. */
function named<F extends (...args: never[]) => unknown>(name: string, fn: F): F {
  const wrapper = { [name]: (...args: Parameters<F>) => fn(...args) }[name]!;
  return wrapper as unknown as F;
}

function tenantPerformance(performance: Performance): object {
  const { timeOrigin } = performance;
  const now = performance.now.bind(performance);
  return {
    get timeOrigin() {
      return timeOrigin;
    },
    now: () => now(),
    toJSON: () => ({ timeOrigin }),
  };
}

/**
 * A global Node itself defines lazily (its module loads on first read). The
 * tenant's stays lazy too: a child whose tenant never touches crypto or
 * CompressionStream does not carry them (bench/memory: ~1 MiB per child).
 * `wrap` turns Node's value into the tenant's; `then` runs once it is loaded.
 */
class LazyNodeGlobal {
  constructor(
    readonly wrap?: (value: unknown) => unknown,
    readonly then?: (value: unknown) => void,
    /** The runtime's own loader, for a global Node does not have (instead of Node's lazy getter). */
    readonly load?: () => unknown,
  ) {}
}
const lazy = (wrap?: (value: unknown) => unknown, then?: (value: unknown) => void) => new LazyNodeGlobal(wrap, then);
/** A global of the runtime's own that loads what it needs on first read (html-rewriter.ts). */
const loadedOnFirstRead = (load: () => unknown) => new LazyNodeGlobal(undefined, undefined, load);
/**
 * A lazy global whose objects another lazy global's hook changes before freezing their
 * prototype: that one is read (and hooked) first, or this one's first read would freeze the
 * prototype unhooked and the other's hook would then throw.
 */
const lazyAfter = (first: string) =>
  lazy((value) => {
    void (globalThis as Record<string, unknown>)[first];
    return value;
  });

/** The table: group → name → value. Every name here must exist and work in a child. */
function scopeTable(hooks: ScopeHooks): Record<string, Record<string, unknown>> {
  return {
    fetch: { fetch: hooks.fetch, Request, Response, Headers, FormData },
    // URLPattern is the polyfill Miniflare uses, loaded on the first read (companions.ts).
    url: { URL, URLSearchParams, URLPattern: loadedOnFirstRead(() => loadCompanion<{ URLPattern: unknown }>('urlpattern.cjs', 'URLPattern').URLPattern) },
    streams: {
      ReadableStream,
      ReadableStreamDefaultReader,
      ReadableStreamBYOBReader,
      ReadableStreamDefaultController,
      ReadableByteStreamController,
      ReadableStreamBYOBRequest,
      WritableStream,
      WritableStreamDefaultWriter,
      WritableStreamDefaultController,
      TransformStream,
      TransformStreamDefaultController,
      ByteLengthQueuingStrategy,
      CountQueuingStrategy,
      // Workers' own byte streams (workers-streams.ts).
      IdentityTransformStream,
      FixedLengthStream,
      TextEncoderStream: lazy(),
      TextDecoderStream: lazy(),
      // Each chunk zlib hands back announces its turn (compression-turns.ts).
      CompressionStream: lazy((value) => {
        announceCompressionTurns(hooks.turns);
        return value;
      }),
      DecompressionStream: lazy((value) => {
        announceCompressionTurns(hooks.turns);
        return value;
      }),
    },
    encoding: { TextEncoder, TextDecoder, atob, btoa },
    crypto: {
      // Handed out by a getter, the same object to every caller: as locked as the value it hangs off.
      crypto: lazy(
        (value) => {
          addDigestStream(value as Crypto, hooks.turns);
          return value;
        },
        (value) => {
          announceSubtleTurns((value as Crypto).subtle, hooks.turns);
          addWorkersSubtle((value as Crypto).subtle);
          freezeApi((value as Crypto).subtle);
        },
      ),
      Crypto: lazy(),
      CryptoKey: lazy(),
      // Its prototype is crypto.subtle's, which crypto's hook above changes.
      SubtleCrypto: lazyAfter('crypto'),
    },
    timers: {
      setTimeout: named('setTimeout', hooks.timers.setTimeout),
      setInterval: named('setInterval', hooks.timers.setInterval),
      clearTimeout: named('clearTimeout', hooks.timers.clearTimeout),
      clearInterval: named('clearInterval', hooks.timers.clearInterval),
      queueMicrotask,
      // Workers' own: `await scheduler.wait(ms)`.
      scheduler: new Scheduler(hooks.timers),
    },
    cloning: { structuredClone: guardStructuredClone(structuredClone) },
    abort: { AbortController, AbortSignal },
    files: { Blob, File },
    events: { Event, EventTarget, CustomEvent, ExtendableEvent, FetchEvent, ScheduledEvent, DOMException },
    messaging: {
      // A channel's ports are MessagePorts, whose prototype MessagePort's hook below changes.
      MessageChannel: lazyAfter('MessagePort'),
      // Before the prototype is frozen: each message announces its turn (port-turns.ts).
      MessagePort: lazy((value) => {
        announcePortTurns(value, hooks.turns);
        return value;
      }),
      MessageEvent: lazy(),
    },
    platform: {
      console: hooks.console,
      performance: lazy((value) => tenantPerformance(value as Performance)),
      navigator: new Navigator(),
      Navigator,
      caches: new CacheStorage(hooks.callBinding),
      CacheStorage,
      Cache,
      // Workers' WebSockets (websocket.ts).
      WebSocket,
      WebSocketPair: loadedOnFirstRead(() => WebSocketPair),
      CloseEvent: loadedOnFirstRead(() => CloseEvent),
    },
    // Workers' own; lol-html loads on the first read (html-rewriter.ts).
    rewriting: { HTMLRewriter: loadedOnFirstRead(loadHTMLRewriter) },
    scope: {
      addEventListener: hooks.addEventListener,
      removeEventListener: hooks.removeEventListener,
    },
  };
}

/** Globals V8 itself puts in every context when a command-line flag asks for them: not part of the language. */
const V8_FLAG_GLOBALS = ['gc'];

/** Names of the ECMAScript built-ins: what a bare V8 context has (Node adds nothing there), minus V8's flag extras. */
function languageIntrinsics(): Set<string> {
  const names = new Set(vm.runInNewContext('Object.getOwnPropertyNames(globalThis)') as string[]);
  for (const name of V8_FLAG_GLOBALS) names.delete(name);
  return names;
}

/** Removes a global; one that cannot be deleted but can be written (V8 makes --expose-gc's `gc` so) is emptied and locked. */
function removeGlobal(key: string | symbol): void {
  if (Reflect.deleteProperty(globalThis, key)) return;
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, key);
  if (!descriptor || !('value' in descriptor) || !descriptor.writable) {
    throw new Error(`runner boot: could not remove the Node global ${String(key)}`);
  }
  Object.defineProperty(globalThis, key, { value: undefined, writable: false });
}

const frozen = new WeakSet<object>();

/**
 * The bundler may rename a class it emits (undici's `class Response` becomes
 * `class _Response` in dist/runner.cjs), and tenants and libraries read
 * `constructor.name`. Restores the global's name when the difference is only
 * that decoration; any other mismatch is a wrong table entry and fails the boot.
 */
function nameAsGlobal(name: string, value: unknown): void {
  if (typeof value !== 'function' || !/^[A-Z]/.test(name) || value.name === name) return;
  if (!new RegExp(`^_*${name}\\d*$`).test(value.name)) {
    throw new Error(`runner boot: global ${name} is the class ${value.name}`);
  }
  Object.defineProperty(value, 'name', { value: name, writable: false, enumerable: false, configurable: true });
}

/** Freezes a Web API value: a class with its prototype chain up to the language's own, or an object with its prototype. */
function freezeApi(value: unknown): void {
  if ((typeof value !== 'function' && typeof value !== 'object') || value === null || frozen.has(value)) return;
  frozen.add(value);
  Object.freeze(value);
  if (typeof value === 'function') {
    const proto = (value as { prototype?: object }).prototype;
    if (proto) Object.freeze(proto);
    // Parent classes (e.g. FetchEvent → ExtendableEvent → Event) too, but never Function.prototype.
    const parent = Object.getPrototypeOf(value);
    if (parent !== Function.prototype) freezeApi(parent);
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto && proto !== Object.prototype) Object.freeze(proto);
  }
}

/**
 * 1. Delete every global that is neither an ECMAScript intrinsic nor in the table.
 * 2. Define the table's names, read-only and non-configurable.
 * 3. Give each class its global's name, freeze each Web API value and the
 *    singletons they hand out; lock (but do not freeze) the language
 *    built-ins, whose prototypes libraries legitimately extend.
 * 4. Take code generation out of WebAssembly (wasm.ts).
 * Returns the names installed, for the boot check and the tests.
 */
export function installGlobals(hooks: ScopeHooks): string[] {
  const table = scopeTable(hooks);
  const intrinsics = languageIntrinsics();
  const allowed = new Map<string, unknown>();
  const lazyGetters = new Map<string, () => unknown>();
  const postInstall: Array<() => void> = [];
  for (const [group, names] of Object.entries(table)) {
    for (const [name, value] of Object.entries(names)) {
      if (value instanceof LazyNodeGlobal && value.load) {
        lazyGetters.set(name, value.load);
      } else if (value instanceof LazyNodeGlobal) {
        const descriptor = Object.getOwnPropertyDescriptor(globalThis, name);
        if (descriptor?.get) {
          lazyGetters.set(name, descriptor.get);
        } else if (descriptor && 'value' in descriptor && descriptor.value !== undefined) {
          // Already loaded (a sibling from the same module was read first): a plain value then.
          allowed.set(name, value.wrap ? value.wrap(descriptor.value) : descriptor.value);
          if (value.then) postInstall.push(() => value.then!(allowed.get(name)));
          continue;
        } else {
          throw new Error(`runner boot: global ${group}.${name} is missing in this Node version`);
        }
      } else if (value === undefined) {
        throw new Error(`runner boot: global ${group}.${name} is missing in this Node version`);
      }
      allowed.set(name, value);
    }
  }
  for (const key of Reflect.ownKeys(globalThis)) {
    if (typeof key === 'string' && intrinsics.has(key)) continue;
    removeGlobal(key);
  }
  for (const [name, value] of allowed) {
    if (value instanceof LazyNodeGlobal) {
      defineLazyGlobal(name, value, lazyGetters.get(name)!, hooks.turns);
      continue;
    }
    nameAsGlobal(name, value);
    freezeApi(value);
    Object.defineProperty(globalThis, name, { value, writable: false, enumerable: true, configurable: false });
  }
  for (const run of postInstall) run();
  for (const name of ['self', 'globalThis']) {
    Object.defineProperty(globalThis, name, { value: globalThis, writable: false, enumerable: false, configurable: false });
  }
  for (const name of intrinsics) {
    if (name === 'globalThis') continue;
    const descriptor = Object.getOwnPropertyDescriptor(globalThis, name);
    if (!descriptor?.configurable) continue;
    const locked = 'value' in descriptor ? { writable: false, configurable: false } : { configurable: false };
    Object.defineProperty(globalThis, name, locked);
  }
  disallowWasmCodegen();
  sealSharedPrototypes();
  return [...allowed.keys(), 'self', 'globalThis'];
}

/**
 * The tenant runs in the same realm as Node's own JavaScript, so it shares the
 * language's prototypes with it. Every `x[i] = v` or `x.name = v` Node makes on
 * an array or a plain object (and every push, primordial or not) consults
 * Array.prototype and Object.prototype for a setter of that name, and Node
 * calls some array methods the plain way (async_hooks pops its stack of
 * resources with `.pop()`). A tenant that defined such a setter, or replaced
 * pop, was handed what Node stored there: the hostile battery got the channel's
 * libuv Pipe handle (Node sets `req.handle` on each write), from its owner
 * symbol the net.Socket class (able to open any socket), and the `process`
 * object itself (test/hostile/prototype-setters.test.ts,
 * test/hostile/intrinsic-methods.test.ts).
 *
 * So Object.prototype is sealed: it takes no new property and no accessor, and
 * its methods stay writable, because freezing it would break the everyday
 * `Foo.prototype.toString = ...` (the "override mistake": an inherited read-only
 * property cannot be assigned on an heir). Array.prototype is frozen: overriding
 * an array method by assignment is rare, and its methods are what Node calls.
 * The built-in iterators' `next` is frozen too: a replaced one sees every value
 * Node iterates with for-of.
 *
 * Object.seal/freeze, never a loop of defineProperty: redefining Array.prototype's
 * properties one by one makes V8 drop its array fast paths (a push/map/spread
 * microbenchmark ran 8x slower). Frozen, reading a hole of a holey array costs
 * ~30 ns instead of ~3; nothing else measured changes. What this takes from
 * tenants: adding to Array.prototype or Object.prototype (polyfills for what
 * Node 20 lacks) or assigning an array method fails, in strict code with a TypeError.
 */
function sealSharedPrototypes(): void {
  Object.seal(Object.prototype);
  Object.freeze(Array.prototype);
  const arrayIterator = Object.getPrototypeOf([][Symbol.iterator]()) as object;
  for (const iterator of [
    arrayIterator,
    Object.getPrototypeOf(new Map()[Symbol.iterator]()),
    Object.getPrototypeOf(new Set()[Symbol.iterator]()),
    Object.getPrototypeOf(''[Symbol.iterator]()),
  ]) {
    Object.freeze(iterator);
  }
  // %IteratorPrototype% stays extensible (iterator-helper polyfills add to it); only its @@iterator is locked.
  Object.defineProperty(Object.getPrototypeOf(arrayIterator), Symbol.iterator, { writable: false, configurable: false });
}

/**
 * A read-only, non-configurable accessor that loads the value from Node's own
 * lazy getter on first read, then names, freezes and caches it. The loading is
 * the runtime's work, not the request's that first read it (runtime-work.ts).
 */
function defineLazyGlobal(name: string, spec: LazyNodeGlobal, nodeGetter: () => unknown, turns: TurnHooks): void {
  let value: unknown;
  let loaded = false;
  const load = (): void => {
    let raw: unknown;
    try {
      raw = nodeGetter.call(undefined);
    } catch {
      // Node 20's lazy interface getters cache the loaded value, then try to replace the
      // global's accessor with it; ours is locked, so that throws once. The second call
      // answers from the cache. (test/runner/globals.test.ts checks every such global.)
      raw = nodeGetter.call(undefined);
    }
    value = spec.wrap ? spec.wrap(raw) : raw;
    nameAsGlobal(name, value);
    freezeApi(value);
    spec.then?.(value);
    loaded = true;
  };
  const get = {
    [name](): unknown {
      if (!loaded) turns.runtimeWork(load);
      return value;
    },
  }[name]!;
  Object.defineProperty(globalThis, name, { get, enumerable: true, configurable: false });
}

/**
 * A MessagePort's message resumes the tenant in a turn the runner did not start
 * (Node delivers it from its own handle), so neither the child's meter nor the
 * daemon's watchdog could tell whose it was, and the watchdog split it among
 * every request in flight: a request that spun in a message listener ran k times
 * its CPU limit beside k idle requests, and an idle one could be blamed. Every
 * message a port delivers goes through one method Node's event targets share,
 * under a registered symbol; ports get their own, which first announces the turn
 * for the request that created the port (its async context is the creator's:
 * Runtime.currentRequest), then dispatches as before.
 */
import { announceBefore, type TurnHooks } from './turn-hooks.js';

/** Node's (lib/internal/event_target.js): how a MessagePort hands a message to its listeners. */
const HYBRID_DISPATCH = Symbol.for('nodejs.internal.kHybridDispatch');

/** Gives MessagePort.prototype (before it is frozen) a dispatch that announces each message's turn. */
export function announcePortTurns(messagePort: unknown, hooks: TurnHooks): void {
  const proto = (messagePort as { prototype?: Record<symbol, unknown> }).prototype;
  const original = proto?.[HYBRID_DISPATCH];
  // Another Node, another mechanism: messages stay unannounced (their CPU split evenly), as before.
  if (!proto || typeof original !== 'function') return;
  announceBefore(proto, HYBRID_DISPATCH, original as (...args: unknown[]) => unknown, hooks);
}

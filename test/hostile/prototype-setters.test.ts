/**
 * Attack: accessors on the prototypes Node's own objects inherit from. The
 * tenant runs in the same realm as Node's JavaScript: before the runner sealed
 * them, a setter on Object.prototype for 'handle' received the libuv Pipe of
 * the channel on every write (and from it the net.Socket class), and index
 * setters on Array.prototype received whatever Node pushed into an array, the
 * `process` object included. Object.prototype is sealed (no new property, no
 * accessor; its methods stay writable), Array.prototype and the built-in
 * iterators are frozen.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDaemons } from '../helpers/daemon.js';
import { attack, expectDaemonServes, startHostileDaemon } from '../helpers/hostile.js';

afterEach(closeDaemons);

describe('setters on Object.prototype and Array.prototype', () => {
  it('cannot be defined, nor array methods or iterators replaced; Object.prototype methods and other prototypes stay open to libraries', async () => {
    const daemon = await startHostileDaemon(['prototype-setters']);
    const res = await attack(daemon, 'prototype-setters');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({
      'Object.prototype setter "handle"': 'TypeError: Cannot define property handle, object is not extensible',
      'Object.prototype setter "then"': 'TypeError: Cannot define property then, object is not extensible',
      'Object.prototype.toJSON =': 'TypeError: Cannot add property toJSON, object is not extensible',
      'Object.prototype index setter "0"': 'TypeError: Cannot define property 0, object is not extensible',
      'Object.prototype.constructor as accessor': 'TypeError: Cannot redefine property: constructor',
      'Object.prototype.__proto__ redefined': 'TypeError: Cannot redefine property: __proto__',
      'Array.prototype index setter "0"': 'TypeError: Cannot define property 0, object is not extensible',
      'Array.prototype.push as accessor': 'TypeError: Cannot redefine property: push',
      'Array.prototype.newMethod =': 'TypeError: Cannot add property newMethod, object is not extensible',
      'array iterator next =': "TypeError: Cannot assign to read only property 'next' of object '#<Object>'",
      'map iterator next =': "TypeError: Cannot assign to read only property 'next' of object '#<Object>'",
      'Array.prototype.pop =': "TypeError: Cannot assign to read only property 'pop' of object '[object Array]'",
      'Object.prototype.toString = (same function)': 'defined',
      'String.prototype.newMethod =': 'defined',
    });
    await expectDaemonServes(daemon);
  });
});

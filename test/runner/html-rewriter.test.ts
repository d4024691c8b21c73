/**
 * Workers' HTMLRewriter in a child (runner/html-rewriter.ts): lol-html, loaded from beside the
 * runner on first use under the children's sandbox, rewriting responses as they stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDaemons, startTestDaemon, writeScripts, type TestDaemon } from '../helpers/daemon.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { wasmMemoryBytes } from '../helpers/proc.js';

const LINKS = 20_000;
let origin: Origin;
let daemon: TestDaemon;

beforeAll(async () => {
  origin = await startOrigin((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    // ~700 KB in small writes, so that tags are split across the chunks the rewriter gets.
    let i = 0;
    const more = () => {
      while (i < LINKS) {
        const piece = `<li><a href="/page/${i}" class="x">link ${i}</a></li>\n`;
        i++;
        if (!res.write(piece)) return void res.once('drain', more);
      }
      res.end('</ul></body></html>');
    };
    res.write('<!doctype html><html><body><ul>\n');
    more();
  });
  const scripts = {
    'page.mjs': `
      const PAGE = '<!DOCTYPE html><html><head><title>Old title</title></head><body>' +
        '<a href="/one">one</a><!-- drop me --><p id="greeting">hello</p><img src="a.png"></body></html>';
      export default {
        async fetch(request) {
          const doctypes = [];
          const source = new Response(PAGE, { status: 203, headers: { 'content-type': 'text/html', 'content-length': String(PAGE.length), 'x-kept': 'yes' } });
          const out = new HTMLRewriter()
            .on('a[href]', { element(el) { el.setAttribute('href', 'https://example.com' + el.getAttribute('href')); el.setAttribute('rel', 'nofollow'); } })
            .on('title', { text(chunk) { if (chunk.text) chunk.replace('New title'); } })
            .on('p#greeting', { async element(el) { await scheduler.wait(5); el.append(' <b>world</b>', { html: true }); } })
            .on('img', { element(el) { el.remove(); } })
            .onDocument({
              doctype(d) { doctypes.push(d.name); },
              comments(c) { c.remove(); },
              end(end) { end.append('<!-- ' + doctypes.join(',') + ' -->', { html: true }); },
            })
            .transform(source);
          return out;
        },
      };`,
    'links.mjs': `
      export default {
        async fetch() {
          let seen = 0;
          const res = await fetch('ORIGIN/');
          return new HTMLRewriter()
            .on('a', { element(el) { seen++; el.setAttribute('href', 'https://cdn.example' + el.getAttribute('href')); } })
            .onDocument({ end(end) { end.append('<!-- ' + seen + ' links -->', { html: true }); } })
            .transform(res);
        },
      };`.replace('ORIGIN', `http://127.0.0.1:${origin.port}`),
    'inline.mjs': `
      export default {
        async fetch() {
          let page = '<ul>';
          for (let i = 0; i < 10000; i++) page += '<li><a href="/p/' + i + '">' + i + '</a></li>';
          let seen = 0;
          const out = new HTMLRewriter().on('a', { element(el) { seen++; el.setAttribute('data-n', String(seen)); } }).transform(new Response(page));
          const text = await out.text();
          return new Response(seen + ' ' + (text.match(/data-n=/g) || []).length);
        },
      };`,
    'many.mjs': `
      const PAGE = '<a x="1"></a>'.repeat(30000);
      let kept = null;
      export default {
        async fetch(request) {
          if (new URL(request.url).pathname === '/kept') {
            try { kept.getAttribute('x'); return new Response('no error'); }
            catch (error) { return new Response(error.name + ': ' + error.message); }
          }
          let seen = 0;
          await new HTMLRewriter().on('a', { element(el) { seen++; kept = el; } }).transform(new Response(PAGE)).text();
          return new Response(String(seen));
        },
      };`,
    'lazy.mjs': `
      export default {
        async fetch(request) {
          if (new URL(request.url).pathname === '/plain') return new Response('plain');
          return new HTMLRewriter().on('b', { element(el) { el.tagName = 'strong'; } }).transform(new Response('<b>bold</b>'));
        },
      };`,
    'errors.mjs': `
      export default {
        async fetch(request) {
          const path = new URL(request.url).pathname;
          const html = () => new Response('<div><span>x</span></div>', { headers: { 'content-type': 'text/html' } });
          if (path === '/selector') {
            try { new HTMLRewriter().on('div[', { element() {} }); return new Response('no error'); }
            catch (error) { return new Response(error.name + ': ' + error.message); }
          }
          if (path === '/not-a-response') {
            try { new HTMLRewriter().transform('<p>'); return new Response('no error'); }
            catch (error) { return new Response(error.name + ': ' + error.message); }
          }
          if (path === '/free-twice') {
            let second = 'no error';
            await new HTMLRewriter().on('span', { element(el) { el.free(); try { el.free(); } catch (error) { second = error.name + ': ' + error.message; } } }).transform(html()).text();
            return new Response(second);
          }
          if (path === '/throws') {
            const out = new HTMLRewriter().on('span', { element() { throw new Error('handler gave up'); } }).transform(html());
            try { await out.text(); return new Response('no error'); }
            catch (error) { return new Response('caught: ' + error.message); }
          }
          return new HTMLRewriter().on('span', { element(el) { el.setInnerContent('fine'); } }).transform(html());
        },
      };`,
  };
  daemon = await startTestDaemon(writeScripts(scripts), { egressAllow: '127.0.0.1/32' });
});
afterAll(async () => {
  await closeDaemons();
  await origin.close();
});

describe('HTMLRewriter', () => {
  it('rewrites elements, text, comments and the document end as Workers does, keeping status and headers but not Content-Length', async () => {
    const res = await daemon.fetchText('page');
    expect(res.status).toBe(203);
    expect(res.headers['x-kept']).toBe('yes');
    expect(res.headers['content-type']).toBe('text/html');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.text).toBe(
      '<!DOCTYPE html><html><head><title>New title</title></head><body>' +
        '<a href="https://example.com/one" rel="nofollow">one</a><p id="greeting">hello <b>world</b></p></body></html><!-- html -->',
    );
  });

  it('runs async handlers of concurrent transforms in one instance without mixing them up', async () => {
    // Two suspended at once used to corrupt lol-html's stack: a missing tag, or a body that failed.
    const first = await daemon.fetchText('page');
    const results = await Promise.all(Array.from({ length: 12 }, () => daemon.fetchText('page')));
    for (const res of results) expect(res).toMatchObject({ status: 203, text: first.text });
    const instances = daemon.broker.instances().filter((i) => i.worker === 'page');
    expect(instances).toHaveLength(1);
  });

  it('rewrites a fetched page as it streams, across chunk boundaries', async () => {
    const res = await daemon.fetchText('links');
    expect(res.status).toBe(200);
    expect(res.text.match(/href="https:\/\/cdn\.example\/page\/\d+"/g)).toHaveLength(LINKS);
    expect(res.text).not.toContain('href="/page/');
    expect(res.text.endsWith(`<!-- ${LINKS} links -->`)).toBe(true);
  });

  it('throws a TypeError the tenant can catch for a bad selector or a non-Response, and errors the body when a handler throws', async () => {
    const selector = await daemon.fetchText('errors', '/selector');
    expect(selector.text).toMatch(/^TypeError: HTMLRewriter\.on\("div\["\): \S/);
    expect((await daemon.fetchText('errors', '/not-a-response')).text).toBe('TypeError: HTMLRewriter.transform(): expects a Response');
    expect((await daemon.fetchText('errors', '/throws')).text).toBe('caught: handler gave up');
    // The tenant can free a token itself (the glue's free() is on it); a second free says why it failed.
    expect((await daemon.fetchText('errors', '/free-twice')).text).toBe(
      'TypeError: This content token is no longer valid. Content tokens are only valid during the execution of the relevant content handler.',
    );
    // The instance goes on rewriting.
    expect(await daemon.fetchText('errors', '/')).toMatchObject({ status: 200, text: '<div><span>fine</span></div>' });
  });

  it('rewrites a page that arrives in one chunk in time linear in its size', async () => {
    // Its output used to go on token by token: 10,000 links made a stream queue that went
    // quadratic (~4 s of CPU, past the tests' 2 s limit); now ~0.1-0.3 s.
    expect(await daemon.fetchText('inline')).toMatchObject({ status: 200, text: '10000 10000' });
  });

  it('frees what each handler call held: an instance rewriting page after page keeps its WebAssembly memory', async () => {
    // lol-html's glue hands each handler a token holding ~40 bytes of WebAssembly memory and never
    // freed one: each page of 30,000 links grew the instance by ~1.1 MiB, never given back.
    expect(await daemon.fetchText('many')).toMatchObject({ status: 200, text: '30000' });
    const instance = [...daemon.pool.live].find((i) => i.worker === 'many')!;
    const first = wasmMemoryBytes(instance.pid!);
    expect(first).toBeGreaterThan(0);
    for (let i = 0; i < 4; i++) expect(await daemon.fetchText('many')).toMatchObject({ status: 200, text: '30000' });
    expect([...daemon.pool.live].find((i) => i.worker === 'many')).toBe(instance);
    expect(wasmMemoryBytes(instance.pid!) - first).toBeLessThan(1024 * 1024);
    // A token the tenant kept past its handler throws as on Workers, freed or not.
    expect((await daemon.fetchText('many', '/kept')).text).toBe(
      'TypeError: This content token is no longer valid. Content tokens are only valid during the execution of the relevant content handler.',
    );
  });

  it("books loading lol-html to the instance's startup, not to the request that read HTMLRewriter first", async () => {
    expect(await daemon.fetchText('lazy', '/plain')).toMatchObject({ status: 200, text: 'plain' });
    const instance = daemon.broker.instances().find((i) => i.worker === 'lazy')!;
    const loaded = instance.startupCpuMs;
    expect(await daemon.fetchText('lazy', '/')).toMatchObject({ status: 200, text: '<strong>bold</strong>' });
    expect(daemon.broker.instances().find((i) => i.worker === 'lazy')).toBe(instance);
    // Reading the glue and compiling 0.9 MB of WebAssembly: tens of ms, on the startup account.
    expect(instance.startupCpuMs).toBeGreaterThan(loaded + 5);
  });
});

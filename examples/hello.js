// Service-worker syntax: the classic Workers form.
addEventListener('fetch', (event) => {
  event.respondWith(new Response('Hello from edgeproc!\n', { headers: { 'content-type': 'text/plain' } }));
});

// Module syntax: echoes the request back as JSON, and the body as it streams in.
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const body = request.body ? await request.text() : null;
    ctx.waitUntil(Promise.resolve().then(() => console.log('echoed', request.method, url.pathname)));
    return Response.json({
      method: request.method,
      url: request.url,
      headers: Object.fromEntries(request.headers),
      body,
    });
  },
};

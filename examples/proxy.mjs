// Outbound fetch: GET /?url=http://… fetches that URL (the daemon performs it) and streams it back.
export default {
  async fetch(request) {
    const target = new URL(request.url).searchParams.get('url');
    if (!target) return new Response('add ?url=http://… to fetch something\n', { status: 400 });
    try {
      const upstream = await fetch(target, { headers: { 'user-agent': 'edgeproc-example' } });
      return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
    } catch (error) {
      return new Response(`could not fetch ${target}: ${error.message}\n`, { status: 502 });
    }
  },
};

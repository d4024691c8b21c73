// Streams a response as it is produced: ten lines, one every 100 ms.
export default {
  fetch() {
    const encoder = new TextEncoder();
    let n = 0;
    const body = new ReadableStream({
      async pull(controller) {
        if (n === 10) return controller.close();
        await new Promise((resolve) => setTimeout(resolve, 100));
        controller.enqueue(encoder.encode(`line ${++n} at ${new Date().toISOString()}\n`));
      },
    });
    return new Response(body, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  },
};

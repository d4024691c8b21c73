/** Polls `condition` until it holds; fails naming `what` after `timeoutMs` (generous: no test asserts timing with it). */
export async function until(condition: () => boolean, what: string, timeoutMs = 10_000, pollMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

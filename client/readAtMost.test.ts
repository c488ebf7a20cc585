import { readAtMost } from './readAtMost';

const stream = (chunks: number[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const n of chunks) controller.enqueue(new Uint8Array(n).fill(7));
      controller.close();
    },
  });

describe('readAtMost', () => {
  it('returns the body when it fits', async () => {
    const bytes = await readAtMost(new Response(stream([3, 4])), 7);
    expect(bytes.length).toBe(7);
    expect(bytes.every((b) => b === 7)).toBe(true);
  });

  it('refuses a declared length above the bound before reading', async () => {
    const res = new Response('x'.repeat(20), { headers: { 'content-length': '20' } });
    await expect(readAtMost(res, 10)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('refuses an undeclared body as soon as it delivers more than the bound', async () => {
    await expect(readAtMost(new Response(stream([6, 6, 6])), 10)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });
});

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Wallet } from 'ethers';
import { claimPayout, fetchPayoutProof } from './claimPayout';

/**
 * A stand-in coordinator on 127.0.0.1 that answers every request with `status` and `body`, except the
 * Sign-In with Ethereum exchange, which it accepts without checking (the client is under test here).
 */
async function fakeCoordinator(
  status: number,
  body: string,
  type = 'application/json',
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const json = (value: unknown) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    const host = `http://${req.headers.host}`;
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    if (req.url === '/v1/auth/siwe/nonce')
      return json({ nonce: 'a1b2c3d4e5f6a7b8', domain: req.headers.host, uri: host, expiresAt });
    if (req.url === '/v1/auth/siwe')
      return json({ token: 't', tokenType: 'Bearer', expiresAt, identity: `eth:0x${'0'.repeat(40)}` });
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('claimPayout', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  it('turns a non-JSON or malformed payout answer into a coded error', async () => {
    const html = await fakeCoordinator(502, '<html>Bad gateway</html>', 'text/html');
    servers.push(html.server);
    await expect(fetchPayoutProof(html.url, 'job_1', Wallet.createRandom().address)).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringMatching(/HTTP 502\) is not JSON/),
    });
    const odd = await fakeCoordinator(200, JSON.stringify({ jobId: 'job_1', escrow: 'nope' }));
    servers.push(odd.server);
    await expect(fetchPayoutProof(odd.url, 'job_1', Wallet.createRandom().address)).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringMatching(/malformed: escrow/),
    });
  });

  it('never puts the RPC URL (an API key in its path) into its errors', async () => {
    const wallet = Wallet.createRandom();
    const proof = {
      jobId: 'job_1',
      escrow: Wallet.createRandom().address,
      chainId: 31337,
      onChainJobId: '1',
      account: wallet.address,
      amountWei: '5',
      proof: [`0x${'ab'.repeat(32)}`],
      score: 1,
      scoreLabel: 'participation',
    };
    const coordinator = await fakeCoordinator(200, JSON.stringify(proof));
    servers.push(coordinator.server);
    // Port 1 on loopback refuses at once: the RPC is unreachable.
    const rpcUrl = 'http://127.0.0.1:1/v3/SECRET-API-KEY';
    const error = await claimPayout({
      coordinator: coordinator.url,
      jobId: 'job_1',
      rpcUrl,
      wallet: wallet as unknown as Wallet,
    }).catch((e: Error) => e);
    expect(error).toMatchObject({ code: 'CHAIN_UNAVAILABLE' });
    expect((error as Error).message).toContain('127.0.0.1:1');
    expect((error as Error).message).not.toContain('SECRET-API-KEY');
  });
});

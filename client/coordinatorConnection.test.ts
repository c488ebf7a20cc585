import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { generateIdentity } from '../shared/identity/keyPair';
import { CoordinatorConnection } from './coordinatorConnection';

/** A bare socket.io server on 127.0.0.1 port 0 (no coordinator: it accepts any handshake). */
async function bareServer(): Promise<{ url: string; io: Server; http: HttpServer }> {
  const http = createServer();
  const io = new Server(http, { transports: ['websocket'] });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, io, http };
}

describe('CoordinatorConnection.onServerMessage', () => {
  const servers: Array<Awaited<ReturnType<typeof bareServer>>> = [];
  let conn: CoordinatorConnection | undefined;

  afterAll(async () => {
    conn?.close();
    for (const s of servers) {
      s.io.close();
      await new Promise((resolve) => s.http.close(resolve));
    }
  });

  it('keeps delivering a server message after a failover replaced the socket (a listener on `socket` would not)', async () => {
    servers.push(await bareServer(), await bareServer());
    const [a, b] = servers;
    conn = new CoordinatorConnection({
      url: a.url,
      alternativeUrls: [b.url],
      identity: generateIdentity(),
      reconnectDelayMs: 20,
    });
    const viaConnection: unknown[] = [];
    const viaFirstSocket: unknown[] = [];
    conn.onServerMessage('heDecrypt', (raw) => viaConnection.push(raw));
    conn.socket.on('he:decrypt', (raw: unknown) => viaFirstSocket.push(raw));
    const received = (count: number) =>
      new Promise<void>((resolve) => {
        const check = () => (viaConnection.length >= count ? resolve() : setTimeout(check, 10));
        check();
      });
    const connectedTo = (server: Server) => new Promise<void>((resolve) => server.once('connection', () => resolve()));

    const atA = connectedTo(a.io);
    conn.connect();
    await atA;
    a.io.emit('he:decrypt', { from: 'a' });
    await received(1);
    expect(viaConnection).toEqual([{ from: 'a' }]);

    // JOB_ELSEWHERE named b: the connection moves there on a new socket.
    const atB = connectedTo(b.io);
    expect(conn.failOver(b.url)).toBe(true);
    await atB;
    b.io.emit('he:decrypt', { from: 'b' });
    await received(2);
    expect(viaConnection).toEqual([{ from: 'a' }, { from: 'b' }]);
    expect(viaFirstSocket).toEqual([{ from: 'a' }]);
  });
});

import type { Server } from 'socket.io';

/** Everything a coordinator's socket.io engine receives, as decoded packets: binary attachments and text frames. */
export interface ReceivedPackets {
  binary: Buffer[];
  text: string[];
}

/** Starts recording every packet `io` receives (already unmasked and decoded by engine.io) into `received`. */
export function recordReceivedPackets(
  io: Server,
  received: ReceivedPackets = { binary: [], text: [] },
): ReceivedPackets {
  io.engine.on('connection', (raw: { on(event: string, listener: (packet: { data?: unknown }) => void): void }) => {
    raw.on('packet', (packet) => {
      if (Buffer.isBuffer(packet.data)) received.binary.push(Buffer.from(packet.data));
      else if (packet.data instanceof ArrayBuffer) received.binary.push(Buffer.from(packet.data));
      else if (typeof packet.data === 'string') received.text.push(packet.data);
    });
  });
  return received;
}

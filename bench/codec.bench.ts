import { contentHash, decodeTensors, encodeTensors } from '../shared/codec/modelCodec';
import { bestOf, round } from './harness';

/** Encode / decode / hash throughput of the model codec on a 10M-parameter (40 MB) payload. */
export function codecBench(params = 10_000_000) {
  const tensors = [
    { name: 'big', shape: [params - 1000], data: new Float32Array(params - 1000).map((_, i) => i * 1e-6) },
    { name: 'small', shape: [1000], data: new Float32Array(1000).fill(0.5) },
  ];
  let bytes: Buffer = Buffer.alloc(0);
  const encodeSeconds = bestOf(3, () => {
    bytes = encodeTensors(tensors);
  });
  const decodeSeconds = bestOf(3, () => void decodeTensors(bytes));
  const decodeZeroCopySeconds = bestOf(3, () => void decodeTensors(bytes, { zeroCopy: true }));
  const hashSeconds = bestOf(3, () => void contentHash(bytes));
  const mb = bytes.length / 1e6;
  return {
    megabytes: round(mb),
    encodeMBps: round(mb / encodeSeconds),
    decodeMBps: round(mb / decodeSeconds),
    decodeZeroCopyWithFiniteCheckMBps: round(mb / decodeZeroCopySeconds),
    sha256MBps: round(mb / hashSeconds),
  };
}

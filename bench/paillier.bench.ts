import { availableParallelism } from 'node:os';
import {
  CrtDecryptor,
  FastEncryptor,
  ParallelDecryptor,
  ParallelEncryptor,
  createPackedPaillierParams,
  decryptSum,
  encryptVector,
  generatePaillierKeys,
  pack,
  quantize,
  sumEncrypted,
  sumErrorBound,
} from '../shared/paillier';
import { bestOf, round } from './harness';

const seconds = (t0: number) => (performance.now() - t0) / 1000;

/**
 * Packed Paillier (shared/paillier) with a 2048-bit key: encryption of one client's update of
 * `parameters` values (16-bit quantisation, clip range 1, up to 100 clients: 88 values per
 * ciphertext), in this thread and in worker threads; ciphertext additions; decryption of the
 * aggregate of `clients` updates (CRT in this thread and in workers); against paillier-bigint's plain
 * per-value encrypt and its decrypt, timed on small samples and extrapolated.
 * About 30 s on the 2-core reference machine.
 */
export async function paillierBench(parameters = 100_000, clients = 3, keyBits = 2048) {
  let t0 = performance.now();
  const { publicKey, privateKey } = await generatePaillierKeys(keyBits);
  const keygenSeconds = seconds(t0);
  const params = createPackedPaillierParams({ keyBits, bits: 16, clipRange: 1, maxClients: 100 });
  const updates = Array.from({ length: clients }, (_, c) =>
    Float32Array.from({ length: parameters }, (_, i) => Math.sin(i * 0.37 + c) * 0.9),
  );

  const quantizePackSeconds = bestOf(3, () => pack(quantize(updates[0], params).values, params));

  // In this thread: the encryptor's one-off setup (h_s and the fixed-base table), then the update.
  t0 = performance.now();
  const encryptor = new FastEncryptor(publicKey);
  const encryptorSetupSeconds = seconds(t0);
  t0 = performance.now();
  const first = await encryptVector(publicKey, updates[0], params, { encryptor });
  const encryptSeconds = seconds(t0);
  const ciphertexts = first.ciphertexts.length;

  // Worker threads (one per core): setup happens inside the workers, so time a warm-up call apart.
  const threads = availableParallelism();
  t0 = performance.now();
  const parallel = new ParallelEncryptor(publicKey, { threads });
  let parallelSeconds: number;
  let parallelSetupSeconds: number;
  const encrypted = [first];
  try {
    await parallel.encryptAll([1n]);
    parallelSetupSeconds = seconds(t0);
    t0 = performance.now();
    encrypted.push(await encryptVector(publicKey, updates[1 % clients], params, { encryptor: parallel }));
    parallelSeconds = seconds(t0);
    for (let c = 2; c < clients; c++)
      encrypted.push(await encryptVector(publicKey, updates[c], params, { encryptor: parallel }));
  } finally {
    await parallel.close();
  }

  // The conservative exponent (keyBits + 128 bits: no short-exponent assumption), on a sample.
  const sample = first.ciphertexts.slice(0, 100).map((_, i) => BigInt(i) << 1000n);
  const conservative = new FastEncryptor(publicKey, { randomBits: keyBits + 128 }, encryptor.base);
  t0 = performance.now();
  conservative.encryptAll(sample);
  const conservativeSecondsPerCiphertext = seconds(t0) / sample.length;

  // Homomorphic additions: one ciphertext multiplication mod n² per ciphertext and extra client.
  const vectors = encrypted.slice(0, clients).map((e) => e.ciphertexts);
  let aggregate: bigint[] = [];
  const sumSeconds = bestOf(3, () => {
    aggregate = sumEncrypted(publicKey, vectors);
  });
  const additions = ciphertexts * (clients - 1);

  // Decryption of the aggregate, and the error against the plaintext sum.
  t0 = performance.now();
  const total = await decryptSum(privateKey, aggregate, params, clients, parameters, {
    decryptor: new CrtDecryptor(privateKey),
  });
  const decryptSeconds = seconds(t0);
  const decryptor = new ParallelDecryptor(privateKey, { threads });
  let parallelDecryptSeconds: number;
  try {
    t0 = performance.now();
    await decryptSum(privateKey, aggregate, params, clients, parameters, { decryptor });
    parallelDecryptSeconds = seconds(t0);
  } finally {
    await decryptor.close();
  }
  let maxError = 0;
  for (let i = 0; i < parameters; i++) {
    let exact = 0;
    for (const u of updates) exact += u[i];
    maxError = Math.max(maxError, Math.abs(total[i] - exact));
  }

  // paillier-bigint as it is: one value per ciphertext, g^m · r^n with two full exponentiations.
  const plainSample = 16;
  t0 = performance.now();
  for (let i = 0; i < plainSample; i++) publicKey.encrypt(BigInt(i + 1) * 12345n);
  const plainEncryptValuesPerSecond = plainSample / seconds(t0);
  t0 = performance.now();
  for (let i = 0; i < 10; i++) privateKey.decrypt(aggregate[i]);
  const plainDecryptSecondsPerCiphertext = seconds(t0) / 10;

  const valuesPerSecond = parameters / encryptSeconds;
  const parallelValuesPerSecond = parameters / parallelSeconds;
  return {
    keyBits,
    parameters,
    clients,
    bits: params.bits,
    slotsPerCiphertext: params.slotsPerCiphertext,
    ciphertexts,
    keygenSeconds: round(keygenSeconds),
    quantizePackSeconds: round(quantizePackSeconds),
    /** One-off per key: h_s (one full exponentiation) and the fixed-base table. */
    encryptorSetupSeconds: round(encryptorSetupSeconds),
    /** Quantise + pack + encrypt one update, in this thread, setup excluded. */
    encryptSeconds: round(encryptSeconds),
    encryptValuesPerSecond: round(valuesPerSecond),
    encryptCiphertextsPerSecond: round(ciphertexts / encryptSeconds),
    threads,
    parallelSetupSeconds: round(parallelSetupSeconds),
    parallelEncryptSeconds: round(parallelSeconds),
    parallelEncryptValuesPerSecond: round(parallelValuesPerSecond),
    /** randomBits = keyBits + 128, one thread, extrapolated from 100 ciphertexts. */
    conservativeEncryptSecondsEstimate: round(conservativeSecondsPerCiphertext * ciphertexts),
    ciphertextAdditionsPerSecond: round(additions / sumSeconds),
    /** Decrypt + unpack + dequantise the aggregate (CRT), in this thread and in worker threads. */
    decryptAggregateSeconds: round(decryptSeconds),
    parallelDecryptAggregateSeconds: round(parallelDecryptSeconds),
    /** paillier-bigint's decrypt of the same aggregate, extrapolated from 10 ciphertexts. */
    plainDecryptAggregateSecondsEstimate: round(plainDecryptSecondsPerCiphertext * ciphertexts),
    maxSumError: round(maxError),
    sumErrorBound: round(sumErrorBound(params, clients)),
    /** paillier-bigint encrypt, one value per ciphertext, on a sample of 16. */
    plainEncryptValuesPerSecond: round(plainEncryptValuesPerSecond),
    plainEncryptSecondsEstimate: round(parameters / plainEncryptValuesPerSecond),
    speedupVsPlain: round(valuesPerSecond / plainEncryptValuesPerSecond),
    parallelSpeedupVsPlain: round(parallelValuesPerSecond / plainEncryptValuesPerSecond),
  };
}

if (require.main === module) {
  paillierBench().then(
    (result) => process.stdout.write(`${JSON.stringify(result, null, 2)}\n`),
    (err) => {
      process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
}

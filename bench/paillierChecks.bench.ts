/**
 * What the paillier key holder's and the coordinator's per-update checks cost (2048-bit key, 16-bit
 * values, up to 100 clients: 88 values per ciphertext), for one client's update of `parameters`
 * values: parsing the fixed-width ciphertexts (with the [1, n²) range check), the unit check done
 * as one gcd per ciphertext vs batched (one modular multiplication per ciphertext and one gcd,
 * shared/paillier/units.ts), the SHA-256 and Ed25519 check of the signed submission, and the
 * multiplication into the product the key holder now computes itself. Also the bytes a decryption
 * sends the key holder: one update per contributor.
 *
 * Run: node -r tsx/cjs bench/paillierChecks.bench.ts [--parameters N]   (about 20 s; bench/paillier-checks.json)
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { gcd } from 'bigint-crypto-utils';
import { generateIdentity } from '../shared/identity/keyPair';
import { SignatureVerifier } from '../shared/identity/signing';
import {
  ciphertextDigest,
  ciphertextsFromBytes,
  ciphertextsToBytes,
  ciphertextWidth,
  createPackedPaillierParams,
  encryptVector,
  firstNonUnit,
  generatePaillierKeys,
  signSubmission,
  verifySubmission,
} from '../shared/paillier';
import { bestOf, round } from './harness';

export async function paillierChecksBench(parameters = 100_000, keyBits = 2048) {
  const { publicKey } = await generatePaillierKeys(keyBits);
  const params = createPackedPaillierParams({ keyBits, bits: 16, clipRange: 1, maxClients: 100 });
  const width = ciphertextWidth(publicKey.n);
  const values = Float32Array.from({ length: parameters + 1 }, (_, i) => Math.sin(i * 0.37) * 0.9);
  const { ciphertexts } = await encryptVector(publicKey, values, params);
  const bytes = ciphertextsToBytes(ciphertexts, width);
  const n = publicKey.n;
  const n2 = publicKey._n2;
  const identity = generateIdentity();
  const ref = { jobId: 'bench', round: 1, attempt: 0 };
  const signature = signSubmission(identity, ref, bytes);
  const verifier = new SignatureVerifier();
  const ms = (s: number) => round(s * 1000);

  const parseSeconds = bestOf(3, () => void ciphertextsFromBytes(bytes, width, { modulus: n2 }));
  // One gcd per ciphertext: timed on a sample (it is the slow one) and scaled to the whole update.
  const sample = ciphertexts.slice(0, Math.min(200, ciphertexts.length));
  const gcdSampleSeconds = bestOf(2, () => {
    for (const c of sample) if (gcd(c % n, n) !== 1n) throw new Error('not a unit');
  });
  const gcdEachSeconds = (gcdSampleSeconds * ciphertexts.length) / sample.length;
  const batchedUnitSeconds = bestOf(3, () => {
    if (firstNonUnit(ciphertexts, n) !== null) throw new Error('not a unit');
  });
  const signatureSeconds = bestOf(5, () => {
    if (!verifySubmission(verifier, identity.clientId, ref, ciphertextDigest(bytes), signature)) throw new Error('bad');
  });
  // Start from a real product (multiplying into 1n would be nearly free and flatter the figure).
  const product = [...ciphertexts];
  const multiplySeconds = bestOf(3, () => {
    for (let i = 0; i < product.length; i++) product[i] = (product[i] * ciphertexts[i]) % n2;
  });
  return {
    keyBits,
    parameters,
    ciphertexts: ciphertexts.length,
    updateBytes: bytes.length,
    decryptRequestBytes: { clients10: bytes.length * 10, clients100: bytes.length * 100 },
    perUpdateMs: {
      parseAndRangeCheck: ms(parseSeconds),
      unitCheckGcdPerCiphertext: ms(gcdEachSeconds),
      unitCheckBatched: ms(batchedUnitSeconds),
      submissionSignature: ms(signatureSeconds),
      multiplyIntoProduct: ms(multiplySeconds),
    },
    batchedUnitCheckSpeedup: round(gcdEachSeconds / batchedUnitSeconds),
  };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--parameters');
  const parameters = i > 0 ? Number(process.argv[i + 1]) : 100_000;
  const t0 = performance.now();
  const out = {
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      node: process.version,
      loadAverage1mAtStart: loadavg()[0],
    },
    startedAt: new Date(),
    ...(await paillierChecksBench(parameters)),
    durationSeconds: round((performance.now() - t0) / 1000),
  };
  const path = join(__dirname, 'paillier-checks.json');
  writeFileSync(path, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(out, null, 2)}\nwrote ${path}\n`);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${String(err?.stack ?? err)}\n`);
    process.exit(1);
  });
}

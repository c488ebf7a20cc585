import { TributaryError } from '../errors';
import type { HeParameterSet } from './parameters';

/**
 * BGV and BFV ciphertexts as SEAL 4.1 serializes them (compression none), checked and added in JavaScript.
 *
 * Why not in SEAL: node-seal hands a buffer to WebAssembly element by element (6-7 ms per 64 KiB
 * ciphertext here, 2 ms through its base64 path), so loading 10 clients × 25 ciphertexts would cost
 * the coordinator more than a whole plaintext round; and a truncated or inconsistent buffer can abort
 * the WebAssembly module rather than throw (seen with node-seal 5.1.7), which would take every `he`
 * job of the process down. A ciphertext of a fixed parameter set is a fixed byte layout: a prefix
 * that is the same for every valid ciphertext (header, parms_id, size 2, the scheme's NTT form (BGV
 * keeps ciphertexts in NTT form, BFV not), scale 1, the data array's header) followed by size × k × N little-endian 64-bit coefficients, the ones of
 * prime j in [0, q_j). `checkCiphertexts` compares the prefix byte for byte and range-checks every
 * coefficient (what SEAL's `is_valid_for` checks, and more strictly), and refuses transparent
 * ciphertexts (c1 = 0, whose plaintext anyone can read). `CiphertextSum.add` is the homomorphic
 * addition of both schemes (component-wise addition mod q of both polynomials: BFV, Fan & Vercauteren
 * 2012, section 4; BGV alike, and in NTT form too since the NTT is linear), which is what SEAL's
 * Evaluator.add computes; heVector.test.ts checks both agree bit for bit.
 */

const TWO_32 = 2 ** 32;

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('he: ciphertext arithmetic assumes a little-endian machine');
}

/** Where the coefficients sit in one serialized ciphertext, and the moduli they are reduced by. */
export interface CiphertextLayout {
  readonly set: HeParameterSet;
  readonly bytes: number;
  readonly prefix: Uint8Array;
  /** Coefficients per ciphertext: 2 polynomials × k primes × N. */
  readonly coefficients: number;
  /** Per coefficient index block of N: the prime's low and high 32 bits. */
  readonly qLo: readonly number[];
  readonly qHi: readonly number[];
}

const layouts = new Map<string, CiphertextLayout>();

/** The ciphertext layout of a parameter set. */
export function ciphertextLayout(set: HeParameterSet): CiphertextLayout {
  let layout = layouts.get(set.name);
  if (!layout) {
    const prefix = Uint8Array.from(Buffer.from(set.ciphertextPrefixHex, 'hex'));
    const k = set.coeffModulus.length;
    const coefficients = 2 * k * set.polyModulusDegree;
    if (prefix.length + 8 * coefficients !== set.ciphertextBytes) {
      throw new TributaryError('INTERNAL', `he: parameter set ${set.name} has an inconsistent ciphertext layout`);
    }
    layout = Object.freeze({
      set,
      bytes: set.ciphertextBytes,
      prefix,
      coefficients,
      qLo: set.coeffModulus.map((q) => Number(q & 0xffffffffn)),
      qHi: set.coeffModulus.map((q) => Number(q >> 32n)),
    });
    layouts.set(set.name, layout);
  }
  return layout;
}

function invalid(message: string, details: Record<string, unknown>): TributaryError {
  return new TributaryError('HE_CIPHERTEXT_INVALID', message, { details });
}

/** Copies ciphertext `index`'s coefficients into `words` (2 × Uint32 per coefficient, little-endian). */
function readCoefficients(layout: CiphertextLayout, payload: Uint8Array, index: number, words: Uint32Array): void {
  const start = index * layout.bytes + layout.prefix.length;
  new Uint8Array(words.buffer, words.byteOffset, words.byteLength).set(
    payload.subarray(start, start + 8 * layout.coefficients),
  );
}

/**
 * Checks `payload` is exactly `count` valid ciphertexts of the layout's set; throws
 * HE_CIPHERTEXT_INVALID (details: index of the first bad ciphertext and why) and changes nothing.
 * `scratch` (2 × coefficients Uint32) avoids an allocation per call.
 */
export function checkCiphertexts(
  layout: CiphertextLayout,
  payload: Uint8Array,
  count: number,
  scratch: Uint32Array = new Uint32Array(2 * layout.coefficients),
): void {
  if (payload.length !== count * layout.bytes) {
    throw invalid(
      `Expected ${count} ciphertexts of ${layout.bytes} bytes (${count * layout.bytes} bytes), got ${payload.length} bytes.`,
      { expectedBytes: count * layout.bytes, receivedBytes: payload.length },
    );
  }
  const n = layout.set.polyModulusDegree;
  const k = layout.qLo.length;
  const prefix = Buffer.from(layout.prefix.buffer, layout.prefix.byteOffset, layout.prefix.length);
  for (let c = 0; c < count; c++) {
    const base = c * layout.bytes;
    const head = Buffer.from(payload.buffer, payload.byteOffset + base, prefix.length);
    if (!head.equals(prefix)) {
      let i = 0;
      while (head[i] === prefix[i]) i++;
      throw invalid(
        `Ciphertext ${c} does not start like a ${layout.set.name} ciphertext (byte ${i} differs: header, parameters, size or NTT form).`,
        { index: c, byte: i },
      );
    }
    readCoefficients(layout, payload, c, scratch);
    let c1Zero = true;
    for (let block = 0; block < 2 * k; block++) {
      const qLo = layout.qLo[block % k];
      const qHi = layout.qHi[block % k];
      let nonZero = 0;
      for (let i = 2 * block * n, end = 2 * (block + 1) * n; i < end; i += 2) {
        const lo = scratch[i];
        const hi = scratch[i + 1];
        if (hi > qHi || (hi === qHi && lo >= qLo)) {
          throw invalid(`Ciphertext ${c}: coefficient ${i / 2} is not reduced modulo its prime.`, {
            index: c,
            coefficient: i / 2,
          });
        }
        nonZero |= lo | hi;
      }
      if (block >= k && nonZero !== 0) c1Zero = false;
    }
    if (c1Zero) {
      throw invalid(`Ciphertext ${c} is transparent (its second polynomial is zero): it would not hide anything.`, {
        index: c,
      });
    }
  }
}

/**
 * Additions a lazy sum takes between reductions: each low word adds below 2^32, so the low sums stay
 * below 2^52 and every float64 step is exact.
 */
const LAZY_ADDITIONS = 2 ** 20;

/**
 * The running homomorphic sum of equally long ciphertext vectors (the coordinator's aggregate, the key
 * holder's own sum). `add` checks the whole payload first (checkCiphertexts) and only then adds it, so
 * a refused payload leaves the sum unchanged. Lazy reduction: each coefficient's low and high 32-bit
 * words are summed separately in float64 (exact, no carries or comparisons per addition) and reduced
 * mod q only when the bytes are asked for (or every LAZY_ADDITIONS additions); the result is the same
 * as adding mod q at every step (heVector.test.ts compares it with SEAL's Evaluator.add bit for bit).
 */
export class CiphertextSum {
  private readonly lo: Float64Array[];
  private readonly hi: Float64Array[];
  private readonly scratch: Uint32Array;
  private added = 0;
  /** Additions since the last reduction (a reduced sum counts as one). */
  private pending = 0;

  constructor(
    private readonly layout: CiphertextLayout,
    readonly count: number,
  ) {
    this.lo = Array.from({ length: count }, () => new Float64Array(layout.coefficients));
    this.hi = Array.from({ length: count }, () => new Float64Array(layout.coefficients));
    this.scratch = new Uint32Array(2 * layout.coefficients);
  }

  /** How many vectors were added. */
  get size(): number {
    return this.added;
  }

  /** Checks `payload` (count ciphertexts) and adds it component-wise (reduced mod q lazily). */
  add(payload: Uint8Array): void {
    const { layout } = this;
    checkCiphertexts(layout, payload, this.count, this.scratch);
    if (this.pending >= LAZY_ADDITIONS) this.reduce();
    const src = this.scratch;
    const m = layout.coefficients;
    for (let c = 0; c < this.count; c++) {
      readCoefficients(layout, payload, c, src);
      const lo = this.lo[c];
      const hi = this.hi[c];
      for (let i = 0; i < m; i++) {
        lo[i] += src[2 * i];
        hi[i] += src[2 * i + 1];
      }
    }
    this.added++;
    this.pending++;
  }

  /** Reduces every coefficient to [0, q) with its low word in [0, 2^32). */
  private reduce(): void {
    const { layout } = this;
    const n = layout.set.polyModulusDegree;
    const k = layout.qLo.length;
    for (let c = 0; c < this.count; c++) {
      const lo = this.lo[c];
      const hi = this.hi[c];
      for (let block = 0; block < 2 * k; block++) {
        const qLo = layout.qLo[block % k];
        const qHi = layout.qHi[block % k];
        const q = qHi * TWO_32 + qLo;
        for (let i = block * n; i < (block + 1) * n; i++) {
          let l = lo[i];
          let h = hi[i];
          let carry = Math.floor(l / TWO_32);
          l -= carry * TWO_32;
          h += carry;
          // The value is h·2^32 + l < 2^20·q; the float quotient is off by at most one, fixed below.
          const times = Math.floor((h * TWO_32 + l) / q);
          h -= times * qHi;
          l -= times * qLo;
          carry = Math.floor(l / TWO_32);
          l -= carry * TWO_32;
          h += carry;
          if (h < 0) {
            h += qHi;
            l += qLo;
            if (l >= TWO_32) {
              l -= TWO_32;
              h += 1;
            }
          } else if (h > qHi || (h === qHi && l >= qLo)) {
            h -= qHi;
            l -= qLo;
            if (l < 0) {
              l += TWO_32;
              h -= 1;
            }
          }
          lo[i] = l;
          hi[i] = h;
        }
      }
    }
    this.pending = Math.min(this.pending, 1);
  }

  /** The sum as `count` serialized ciphertexts (the layout SEAL loads). */
  toBytes(): Uint8Array {
    if (this.added === 0) throw new TributaryError('INTERNAL', 'he: the sum has no ciphertexts yet');
    this.reduce();
    const { layout } = this;
    const out = new Uint8Array(this.count * layout.bytes);
    const w = this.scratch;
    for (let c = 0; c < this.count; c++) {
      out.set(layout.prefix, c * layout.bytes);
      const lo = this.lo[c];
      const hi = this.hi[c];
      for (let i = 0; i < layout.coefficients; i++) {
        w[2 * i] = lo[i];
        w[2 * i + 1] = hi[i];
      }
      out.set(new Uint8Array(w.buffer, w.byteOffset, w.byteLength), c * layout.bytes + layout.prefix.length);
    }
    return out;
  }
}

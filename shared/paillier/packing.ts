import { TributaryError } from '../errors';

/**
 * Packing of quantised values into Paillier plaintexts (BatchCrypt, Zhang et al., USENIX ATC 2020,
 * section 4.2): one plaintext of a `keyBits`-bit key holds many values, each in its own slot, so
 * one encryption and one ciphertext multiplication serve all of them.
 *
 *     plaintext = Σ_j v_j · 2^(j·slotBits),     slot 0 in the least significant bits
 *     slotBits  = bits + headroomBits,          headroomBits = ceil(log2(maxClients))
 *
 * A value is below 2^bits (quantize.ts uses 0..2^bits - 2), so the sum of up to maxClients values is
 * at most maxClients·(2^bits - 1) ≤ 2^slotBits - 2^headroomBits < 2^slotBits: adding packed
 * plaintexts (homomorphically: multiplying ciphertexts) adds slot by slot and never carries into
 * the next slot.
 *
 * slotsPerCiphertext = floor((keyBits - 2) / slotBits), so every plaintext, and every sum of up to
 * maxClients of them, is below 2^(keyBits-2) < n (the key's n has exactly keyBits bits, n ≥ 2^(keyBits-1)):
 * the sum never wraps modulo n.
 *
 * slotBits is at most 53 so that a slot's sum is an exact double when unpacked.
 */
export interface PackingLayoutOptions {
  /** Bit length of the Paillier modulus n. 512..16384. @default 2048 */
  keyBits?: number;
  /** Bits per quantised value (values are below 2^bits). 2..32. @default 16 */
  bits?: number;
  /** Most vectors that will ever be summed into one aggregate. Integer >= 1. */
  maxClients: number;
}

export interface PackingLayout {
  readonly keyBits: number;
  readonly bits: number;
  readonly maxClients: number;
  /** ceil(log2(maxClients)): room for the carries of a sum of maxClients values. */
  readonly headroomBits: number;
  /** bits + headroomBits. */
  readonly slotBits: number;
  /** floor((keyBits - 2) / slotBits). */
  readonly slotsPerCiphertext: number;
  /** slotsPerCiphertext · slotBits: every valid (aggregate) plaintext is below 2^plaintextBits. */
  readonly plaintextBits: number;
}

export const DEFAULT_KEY_BITS = 2048;
export const DEFAULT_QUANTIZATION_BITS = 16;
export const MIN_KEY_BITS = 512;
export const MAX_KEY_BITS = 16384;
/** Largest slot: a slot's sum must stay an exact double (2^53). */
export const MAX_SLOT_BITS = 53;

function invalid(message: string): TributaryError {
  return new TributaryError('CONFIG_INVALID', `paillier: ${message}`);
}

/** ceil(log2(n)) for an integer n >= 1, exactly. */
export function ceilLog2(n: number): number {
  let bits = 0;
  while (2 ** bits < n) bits++;
  return bits;
}

/** Validates the options and returns the frozen layout. Throws CONFIG_INVALID with the reason. */
export function createPackingLayout(options: PackingLayoutOptions): PackingLayout {
  const keyBits = options.keyBits ?? DEFAULT_KEY_BITS;
  const bits = options.bits ?? DEFAULT_QUANTIZATION_BITS;
  const { maxClients } = options;
  if (!Number.isInteger(keyBits) || keyBits < MIN_KEY_BITS || keyBits > MAX_KEY_BITS) {
    throw invalid(
      `keyBits must be an integer in [${MIN_KEY_BITS}, ${MAX_KEY_BITS}] (2048 or more for real use); got ${String(keyBits)}`,
    );
  }
  if (!Number.isInteger(bits) || bits < 2 || bits > 32) {
    throw invalid(`bits must be an integer in [2, 32]; got ${String(bits)}`);
  }
  if (!Number.isSafeInteger(maxClients) || maxClients < 1) {
    throw invalid(`maxClients must be an integer >= 1; got ${String(maxClients)}`);
  }
  const headroomBits = ceilLog2(maxClients);
  const slotBits = bits + headroomBits;
  if (slotBits > MAX_SLOT_BITS) {
    throw invalid(
      `a slot needs bits + ceil(log2(maxClients)) = ${bits} + ${headroomBits} = ${slotBits} bits, more than ${MAX_SLOT_BITS}; ` +
        'lower bits or maxClients',
    );
  }
  const slotsPerCiphertext = Math.floor((keyBits - 2) / slotBits);
  return Object.freeze({
    keyBits,
    bits,
    maxClients,
    headroomBits,
    slotBits,
    slotsPerCiphertext,
    plaintextBits: slotsPerCiphertext * slotBits,
  });
}

/** Number of plaintexts (and ciphertexts) for a vector of `length` values. */
export function packedLength(layout: PackingLayout, length: number): number {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `paillier: vector length must be an integer >= 0; got ${String(length)}`,
    );
  }
  return Math.ceil(length / layout.slotsPerCiphertext);
}

/**
 * Packs levels (each an integer in [0, 2^bits - 1]) into plaintexts, `slotsPerCiphertext` per
 * plaintext; the last plaintext's unused slots are 0.
 */
export function pack(values: ArrayLike<number>, layout: PackingLayout): bigint[] {
  const { slotsPerCiphertext: slots, bits } = layout;
  const shift = BigInt(layout.slotBits);
  const limit = 2 ** bits;
  const out: bigint[] = new Array(packedLength(layout, values.length));
  for (let k = 0; k < out.length; k++) {
    const start = k * slots;
    const end = Math.min(start + slots, values.length);
    let acc = 0n;
    // Highest slot first, so each shift moves the slots already placed up by one slot.
    for (let i = end - 1; i >= start; i--) {
      const v = values[i];
      if (!(Number.isInteger(v) && v >= 0 && v < limit)) {
        throw new TributaryError('VALIDATION_FAILED', `paillier: level ${i} is ${String(v)}, outside [0, 2^${bits})`);
      }
      acc = (acc << shift) | BigInt(v);
    }
    out[k] = acc;
  }
  return out;
}

/**
 * Unpacks (aggregate) plaintexts into `length` slot sums (exact integers, as doubles).
 * Throws VALIDATION_FAILED when a plaintext has bits above the packed slots or a non-zero slot past
 * `length`: such a plaintext was not produced by `pack` with this layout (or by summing such).
 */
export function unpack(plaintexts: readonly bigint[], layout: PackingLayout, length: number): Float64Array {
  const count = packedLength(layout, length);
  if (plaintexts.length !== count) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `paillier: ${length} values need ${count} plaintexts with ${layout.slotsPerCiphertext} slots each; got ${plaintexts.length}`,
    );
  }
  const { slotsPerCiphertext: slots, slotBits } = layout;
  const shift = BigInt(slotBits);
  const limit = 1n << BigInt(layout.plaintextBits);
  const out = new Float64Array(length);
  for (let k = 0; k < count; k++) {
    let acc = plaintexts[k];
    if (acc < 0n || acc >= limit) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `paillier: plaintext ${k} has ${acc.toString(2).length} bits, more than the ${layout.plaintextBits} packed bits`,
      );
    }
    const start = k * slots;
    for (let j = 0; j < slots; j++) {
      const slot = Number(BigInt.asUintN(slotBits, acc));
      acc >>= shift;
      if (start + j < length) out[start + j] = slot;
      else if (slot !== 0) {
        throw new TributaryError(
          'VALIDATION_FAILED',
          `paillier: slot ${start + j} is past the vector's ${length} values but is ${slot}, not 0`,
        );
      }
    }
  }
  return out;
}

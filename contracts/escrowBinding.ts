/**
 * The escrow binding: what ties a Tributary job to the escrow job that pays for it, so that only the
 * escrow job's buyer can post (or cancel) the job it funds. Shared by the coordinator (verifies), the
 * buyer SDK, the demo and the tests (sign), and `tributary audit` (recomputes the spec hash).
 *
 * 1. **Spec hash.** `canonicalSpecHash(spec)` = keccak256 of the RFC 8785 (JCS) JSON of the *parsed*
 *    spec (every default filled in, as the coordinator stores it), with `chain.jobId` and
 *    `chain.authorization` left out and the escrow address lowercased. The buyer puts this hash in
 *    the escrow job (`createJob(terms.specHash)`) before the escrow job id exists, which is why the id
 *    is left out (the typed-data signature covers it instead). Why this form is stable: JCS fixes key
 *    order (UTF-16 code-unit order), number text (ECMAScript's shortest round-trip form) and string
 *    escaping, so the same value always gives the same bytes, whatever the key order of the request
 *    or of a store's document; hashing the parsed spec means two requests that differ only by
 *    spelling out a default hash alike, and the buyer signs the values the job actually runs with
 *    (a default such as `secureAggregation` is part of what it pays for). The coordinator hashes the
 *    spec it stored and never re-parses it, so a later change of defaults cannot change a stored
 *    job's hash; an SDK whose defaults differ from the coordinator's gets ESCROW_SPEC_MISMATCH
 *    instead of a job that runs other parameters than the buyer signed.
 * 2. **Binding signature.** The buyer signs EIP-712 typed data `EscrowBinding { escrow, escrowJobId,
 *    coordinator, specHash }` in the domain `{ name: "Tributary", version: "1", chainId }` (ethers v6
 *    `signTypedData`; wallets display every field). It travels in the spec as
 *    `chain.authorization.signature`. The coordinator accepts the job only if the escrow job exists,
 *    names this coordinator, carries this spec hash, and its buyer is the signer (`checkEscrowBinding`),
 *    at creation and again at activation.
 * 3. **Cancel.** The buyer cancels with a `CancelJob { escrow, escrowJobId, coordinator, jobId }`
 *    signature in the same domain; `jobId` is the Tributary job id, so a cancel of one job is never
 *    valid for another bound to the same escrow job.
 */
import { getAddress, keccak256, toUtf8Bytes, verifyTypedData, type Signer, type TypedDataField } from 'ethers';
import { z } from 'zod';
import { TributaryError } from '../shared/errors';
import {
  ChainSpecSchema,
  EscrowSignatureSchema,
  JobSpecSchema,
  type ChainSpec,
  type JobSpec,
  type JobSpecInput,
} from '../shared/schemas/jobSpec';
import { NATIVE, type EscrowClient, type JobState } from './escrow';

/** A parsed spec as the hash sees it: `chain.jobId` and `chain.authorization` may be absent (they are not hashed). */
export type HashedSpec = Omit<JobSpec, 'chain'> & {
  chain?: Omit<ChainSpec, 'jobId' | 'authorization'> & Partial<Pick<ChainSpec, 'jobId' | 'authorization'>>;
};

/** A job spec input before it is bound: its `chain` has no escrow job id or authorization yet. */
export type UnboundJobSpecInput = Omit<JobSpecInput, 'chain'>;

/**
 * RFC 8785 (JSON Canonicalization Scheme) text of a JSON value: object keys sorted by UTF-16 code
 * units (§3.2.3), numbers and strings serialised as ECMAScript's JSON.stringify does (§3.2.2, which
 * JCS adopts), no whitespace. Properties whose value is `undefined` are left out, as JSON.stringify
 * does; anything that is not JSON (a non-finite number, a bigint, a function) throws.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`canonical JSON has no form for ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    // Default sort compares UTF-16 code units, which is exactly JCS's order.
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new TypeError(`canonical JSON has no form for a ${typeof value}`);
}

/** The value `canonicalSpecHash` hashes: the spec without `chain.jobId` / `chain.authorization`, escrow lowercased. */
export function canonicalSpecForm(spec: HashedSpec): Record<string, unknown> {
  const { chain, ...rest } = spec;
  if (!chain) return rest;
  const { jobId: _jobId, authorization: _authorization, ...terms } = chain;
  return { ...rest, chain: { ...terms, escrow: terms.escrow.toLowerCase() } };
}

/** The canonical Tributary spec hash (bytes32, 0x-prefixed) of a parsed spec; see the module comment. */
export function canonicalSpecHash(spec: HashedSpec): string {
  return keccak256(toUtf8Bytes(canonicalJson(canonicalSpecForm(spec))));
}

/**
 * Parses a spec input the way the coordinator will (defaults filled in), ignoring `chain.jobId` and
 * `chain.authorization`, which the hash leaves out. Throws JOB_SPEC_INVALID with zod's first issue.
 */
export function parseSpecForHash(input: unknown): HashedSpec {
  if (typeof input !== 'object' || input === null)
    throw new TributaryError('JOB_SPEC_INVALID', 'Expected a job spec object.');
  const { chain, ...rest } = input as Record<string, unknown>;
  const parsed = JobSpecSchema.safeParse(rest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TributaryError('JOB_SPEC_INVALID', `Invalid job spec: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  if (chain === undefined) return parsed.data;
  const terms = ChainSpecSchema.omit({ jobId: true, authorization: true }).safeParse(
    typeof chain === 'object' && chain !== null
      ? Object.fromEntries(Object.entries(chain).filter(([k]) => k !== 'jobId' && k !== 'authorization'))
      : chain,
  );
  if (!terms.success) {
    const issue = terms.error.issues[0];
    throw new TributaryError('JOB_SPEC_INVALID', `Invalid job spec: chain.${issue?.path.join('.')}: ${issue?.message}`);
  }
  return { ...parsed.data, chain: terms.data };
}

// ---------------------------------------------------------------------------------------------
// EIP-712 typed data

/** The EIP-712 domain of Tributary escrow signatures on `chainId`. */
export function escrowSigningDomain(chainId: number | bigint) {
  return { name: 'Tributary', version: '1', chainId };
}

/** `EscrowBinding`: the buyer's consent that this spec runs on this coordinator for this escrow job. */
export const ESCROW_BINDING_TYPES: Record<string, TypedDataField[]> = {
  EscrowBinding: [
    { name: 'escrow', type: 'address' },
    { name: 'escrowJobId', type: 'uint256' },
    { name: 'coordinator', type: 'address' },
    { name: 'specHash', type: 'bytes32' },
  ],
};

/** `CancelJob`: the buyer's request to cancel one Tributary job bound to its escrow job. */
export const CANCEL_JOB_TYPES: Record<string, TypedDataField[]> = {
  CancelJob: [
    { name: 'escrow', type: 'address' },
    { name: 'escrowJobId', type: 'uint256' },
    { name: 'coordinator', type: 'address' },
    { name: 'jobId', type: 'string' },
  ],
};

/** The fields the binding signature covers. */
export interface EscrowBinding {
  chainId: number;
  escrow: string;
  escrowJobId: bigint | string;
  coordinator: string;
  /** canonicalSpecHash of the spec. */
  specHash: string;
}

/** The fields a cancel signature covers. */
export interface CancelJobRequest {
  chainId: number;
  escrow: string;
  escrowJobId: bigint | string;
  coordinator: string;
  /** The Tributary job id (`job_...`). */
  jobId: string;
}

/** Something that signs EIP-712 typed data (an ethers Wallet, a JsonRpcSigner, a browser wallet's signer). */
export type TypedDataSigner = Pick<Signer, 'signTypedData'>;

function bindingValue(b: EscrowBinding) {
  return { escrow: b.escrow, escrowJobId: BigInt(b.escrowJobId), coordinator: b.coordinator, specHash: b.specHash };
}

function cancelValue(c: CancelJobRequest) {
  return { escrow: c.escrow, escrowJobId: BigInt(c.escrowJobId), coordinator: c.coordinator, jobId: c.jobId };
}

/** Signs an escrow binding (EIP-712); the result goes in `spec.chain.authorization.signature`. */
export function signEscrowBinding(signer: TypedDataSigner, binding: EscrowBinding): Promise<string> {
  return signer.signTypedData(escrowSigningDomain(binding.chainId), ESCROW_BINDING_TYPES, bindingValue(binding));
}

/** The address that signed `binding` (checksummed). Throws ESCROW_BINDING_INVALID for a malformed signature. */
export function verifyEscrowBinding(binding: EscrowBinding, signature: string): string {
  return recover('escrow binding', () =>
    verifyTypedData(escrowSigningDomain(binding.chainId), ESCROW_BINDING_TYPES, bindingValue(binding), signature),
  );
}

/** Signs a cancel request (EIP-712) for `POST /v1/jobs/:id/cancel`. */
export function signCancelJob(signer: TypedDataSigner, request: CancelJobRequest): Promise<string> {
  return signer.signTypedData(escrowSigningDomain(request.chainId), CANCEL_JOB_TYPES, cancelValue(request));
}

/** The address that signed `request` (checksummed). Throws ESCROW_BINDING_INVALID for a malformed signature. */
export function verifyCancelJob(request: CancelJobRequest, signature: string): string {
  return recover('cancel request', () =>
    verifyTypedData(escrowSigningDomain(request.chainId), CANCEL_JOB_TYPES, cancelValue(request), signature),
  );
}

function recover(what: string, verify: () => string): string {
  try {
    return getAddress(verify());
  } catch (err) {
    throw new TributaryError(
      'ESCROW_BINDING_INVALID',
      `The ${what} signature is not a valid secp256k1 signature (expected 65 bytes as 0x-prefixed hex): ${(err as Error).message.slice(0, 200)}`,
    );
  }
}

/** The binding a chain job's spec claims, for the coordinator at `coordinator`. */
export function escrowBindingOf(spec: HashedSpec & { chain: ChainSpec }, coordinator: string): EscrowBinding {
  const { chain } = spec;
  return {
    chainId: chain.chainId,
    escrow: chain.escrow,
    escrowJobId: chain.jobId,
    coordinator,
    specHash: canonicalSpecHash(spec),
  };
}

/** The cancel request of Tributary job `jobId` (its spec's `chain`) on the coordinator at `coordinator`. */
export function cancelRequestOf(jobId: string, chain: ChainSpec, coordinator: string): CancelJobRequest {
  return { chainId: chain.chainId, escrow: chain.escrow, escrowJobId: chain.jobId, coordinator, jobId };
}

/** Body of the cancel route (`POST /v1/jobs/:id/cancel`): the buyer's CancelJob signature. */
export const CancelJobBodySchema = z.object({ signature: EscrowSignatureSchema }).strict();
export type CancelJobBody = z.infer<typeof CancelJobBodySchema>;

/**
 * Checks a chain job's spec against its escrow job as read from the chain, for the coordinator at
 * `coordinator`. Throws, in this order: ESCROW_BINDING_INVALID (no authorization, or the escrow job
 * names another coordinator), ESCROW_SPEC_MISMATCH (the escrow job pays for another spec), then
 * ESCROW_BINDING_INVALID (the signer is not the escrow job's buyer). Returns the binding.
 */
export function checkEscrowBinding(
  spec: HashedSpec & { chain: ChainSpec },
  onChain: Pick<JobState, 'buyer' | 'coordinator' | 'specHash'>,
  coordinator: string,
): EscrowBinding {
  const { chain } = spec;
  const where = `escrow job ${chain.jobId} of ${chain.escrow} (chain ${chain.chainId})`;
  const signature = chain.authorization?.signature;
  if (!signature) {
    throw new TributaryError(
      'ESCROW_BINDING_INVALID',
      `chain.authorization is missing: a paid job needs the EIP-712 EscrowBinding signature of ${where}'s buyer (${onChain.buyer}).`,
    );
  }
  if (getAddress(onChain.coordinator) !== getAddress(coordinator)) {
    throw new TributaryError(
      'ESCROW_BINDING_INVALID',
      `${where} names coordinator ${onChain.coordinator}; this coordinator is ${getAddress(coordinator)}.`,
    );
  }
  const binding = escrowBindingOf(spec, coordinator);
  if (binding.specHash !== onChain.specHash.toLowerCase()) {
    throw new TributaryError(
      'ESCROW_SPEC_MISMATCH',
      `${where} pays for spec hash ${onChain.specHash}; this spec's canonical hash is ${binding.specHash}.`,
      { details: { expected: onChain.specHash, received: binding.specHash } },
    );
  }
  const signer = verifyEscrowBinding(binding, signature);
  if (signer !== getAddress(onChain.buyer)) {
    throw new TributaryError(
      'ESCROW_BINDING_INVALID',
      `chain.authorization is signed by ${signer}; ${where} was created by ${getAddress(onChain.buyer)}, who alone may bind it.`,
    );
  }
  return binding;
}

// ---------------------------------------------------------------------------------------------
// Buyer side: create the escrow job for a spec and sign the binding

export interface BindJobParams {
  /** The escrow deployment (any runner: it is reconnected as `buyer`). */
  escrow: EscrowClient;
  /** The buyer: creates and funds the escrow job and signs the binding. */
  buyer: Signer;
  /** The job spec without `chain`. */
  spec: UnboundJobSpecInput;
  chainId: number;
  /** The coordinator's chain address (its `TRIBUTARY_COORDINATOR_KEY`). */
  coordinator: string;
  arbiter: string;
  budget: bigint;
  /** ERC-20 address or NATIVE. @default NATIVE */
  token?: string;
  /** Unix seconds. */
  deadline: bigint | number;
  /** @default 0 (no disputes) */
  challengeWindow?: bigint | number;
  arbitrationWindow?: bigint | number;
  claimPeriod?: bigint | number;
  /** The spec's `chain.budgetWei` (recruit only once the escrow holds this much). @default none */
  budgetWei?: bigint;
}

export interface BoundJob {
  /** The spec to POST: `chain` with the escrow job id and the buyer's signature. */
  spec: JobSpecInput & { chain: ChainSpec };
  escrowJobId: bigint;
  specHash: string;
  /** Receipt hash of `createJob`. */
  txHash: string;
}

/**
 * Everything a buyer does before posting a paid job: hashes the spec (parsed as the coordinator will),
 * creates and funds the escrow job with that hash, and signs the binding for the new escrow job id.
 *
 * @example
 * const { spec } = await bindJobToEscrow({ escrow, buyer, spec: draft, chainId: 31337, coordinator,
 *   arbiter, budget: 10n ** 18n, deadline: now + 86_400n, challengeWindow: 3600 });
 * await fetch(`${url}/v1/jobs`, { method: 'POST', body: JSON.stringify(spec), ... });
 */
export async function bindJobToEscrow(p: BindJobParams): Promise<BoundJob> {
  const chainTerms = {
    escrow: p.escrow.address,
    chainId: p.chainId,
    ...(p.budgetWei !== undefined ? { budgetWei: p.budgetWei.toString() } : {}),
  };
  const specHash = canonicalSpecHash(parseSpecForHash({ ...p.spec, chain: chainTerms }));
  const { jobId, receipt } = await p.escrow.connect(p.buyer).createJob({
    specHash,
    token: p.token ?? NATIVE,
    budget: p.budget,
    coordinator: p.coordinator,
    arbiter: p.arbiter,
    deadline: p.deadline,
    challengeWindow: p.challengeWindow ?? 0,
    ...(p.arbitrationWindow !== undefined ? { arbitrationWindow: p.arbitrationWindow } : {}),
    ...(p.claimPeriod !== undefined ? { claimPeriod: p.claimPeriod } : {}),
  });
  const signature = await signEscrowBinding(p.buyer, {
    chainId: p.chainId,
    escrow: p.escrow.address,
    escrowJobId: jobId,
    coordinator: p.coordinator,
    specHash,
  });
  return {
    spec: { ...p.spec, chain: { ...chainTerms, jobId: jobId.toString(), authorization: { signature } } },
    escrowJobId: jobId,
    specHash,
    txHash: receipt.hash,
  };
}

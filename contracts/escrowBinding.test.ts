import { keccak256, toUtf8Bytes, Wallet, ZeroAddress } from 'ethers';
import { codeOf } from '../test/support/codeOf';
import { JobSpecSchema, type JobSpec, type JobSpecInput } from '../shared/schemas/jobSpec';
import {
  canonicalJson,
  canonicalSpecHash,
  cancelRequestOf,
  checkEscrowBinding,
  escrowBindingOf,
  parseSpecForHash,
  signCancelJob,
  signEscrowBinding,
  verifyCancelJob,
  verifyEscrowBinding,
} from './escrowBinding';

const escrow = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
const buyer = Wallet.createRandom();
const stranger = Wallet.createRandom();
const coordinator = Wallet.createRandom().address;

const input = (over: Partial<JobSpecInput> = {}): JobSpecInput => ({
  name: 'bound',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
  input: { shape: [6], numClasses: 2 },
  rounds: 3,
  chain: { escrow, jobId: '4', chainId: 31337, budgetWei: '1000' },
  ...over,
});

/** A parsed spec whose binding is signed by `signer`, as the coordinator stores it. */
async function signedSpec(signer = buyer, over: Partial<JobSpecInput> = {}): Promise<JobSpec> {
  const spec = JobSpecSchema.parse(input(over));
  const signature = await signEscrowBinding(signer, escrowBindingOf({ ...spec, chain: spec.chain! }, coordinator));
  return { ...spec, chain: { ...spec.chain!, authorization: { signature } } };
}

describe('canonicalJson (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units at every depth, drops undefined, and writes numbers as ECMAScript does', () => {
    expect(canonicalJson({ b: [3, { z: 1, a: null }], a: 'x', c: undefined })).toBe(
      '{"a":"x","b":[3,{"a":null,"z":1}]}',
    );
    // RFC 8785 §3.2.3: "\u20ac" (€) sorts after "\r" and after "1", uppercase before lowercase.
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '1': 3, a: 4, B: 5 })).toBe('{"\\r":2,"1":3,"B":5,"a":4,"€":1}');
    expect(canonicalJson([1e21, 1e-7, 0.1, -0, 333333333.3333333])).toBe('[1e+21,1e-7,0.1,0,333333333.3333333]');
    expect(canonicalJson('é\n"')).toBe('"é\\n\\""');
  });

  it('refuses values JSON cannot carry', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 1n, () => 1, new Date(0)])
      expect(() => canonicalJson({ x: bad })).toThrow(TypeError);
  });
});

describe('canonicalSpecHash', () => {
  it('is keccak256 of the canonical JSON of the parsed spec without chain.jobId and chain.authorization', async () => {
    const spec = await signedSpec();
    const { chain, ...rest } = spec;
    const expected = keccak256(
      toUtf8Bytes(
        canonicalJson({ ...rest, chain: { escrow: escrow.toLowerCase(), chainId: 31337, budgetWei: '1000' } }),
      ),
    );
    expect(canonicalSpecHash(spec)).toBe(expected);
    expect(chain!.authorization).toBeDefined();
  });

  it('does not depend on key order, spelled-out defaults, the escrow job id, the authorization or address case', () => {
    const base = canonicalSpecHash(JobSpecSchema.parse(input()));
    const reordered = JSON.parse(JSON.stringify(input()), (_k, v) =>
      v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v,
    );
    expect(canonicalSpecHash(JobSpecSchema.parse(reordered))).toBe(base);
    const defaults = JobSpecSchema.parse(input());
    expect(canonicalSpecHash(JobSpecSchema.parse({ ...input(), secureAggregation: 'secagg', seed: 0 }))).toBe(base);
    expect(canonicalSpecHash({ ...defaults, chain: { ...defaults.chain!, jobId: '99' } })).toBe(base);
    expect(canonicalSpecHash({ ...defaults, chain: { ...defaults.chain!, escrow: escrow.toLowerCase() } })).toBe(base);
    // What the buyer hashes before the escrow job exists (no jobId) is what the coordinator hashes.
    const { jobId: _jobId, ...withoutId } = input().chain!;
    expect(canonicalSpecHash(parseSpecForHash({ ...input(), chain: withoutId }))).toBe(base);
  });

  it('changes with anything the job runs or pays with', () => {
    const base = canonicalSpecHash(JobSpecSchema.parse(input()));
    const variants: Partial<JobSpecInput>[] = [
      { rounds: 4 },
      { secureAggregation: 'none' },
      { minClients: 4 },
      { learningRate: 0.02 },
      { chain: { escrow, jobId: '4', chainId: 1, budgetWei: '1000' } },
      { chain: { escrow, jobId: '4', chainId: 31337, budgetWei: '1001' } },
      { chain: { escrow, jobId: '4', chainId: 31337 } },
      { chain: { escrow: stranger.address, jobId: '4', chainId: 31337, budgetWei: '1000' } },
      { access: { mode: 'public' } },
    ];
    const hashes = variants.map((v) => canonicalSpecHash(JobSpecSchema.parse(input(v))));
    expect(new Set([base, ...hashes]).size).toBe(variants.length + 1);
  });

  it('parseSpecForHash refuses an invalid spec with JOB_SPEC_INVALID', () => {
    expect(codeOf(() => parseSpecForHash({ ...input(), rounds: 0 }))).toBe('JOB_SPEC_INVALID');
    expect(codeOf(() => parseSpecForHash({ ...input(), chain: { escrow: 'nope', chainId: 1 } }))).toBe(
      'JOB_SPEC_INVALID',
    );
    expect(codeOf(() => parseSpecForHash(null))).toBe('JOB_SPEC_INVALID');
  });
});

describe('EIP-712 binding and cancel signatures', () => {
  it('recover the signer, and any other value of a signed field recovers someone else', async () => {
    const spec = await signedSpec();
    const binding = escrowBindingOf({ ...spec, chain: spec.chain! }, coordinator);
    const signature = spec.chain!.authorization!.signature;
    expect(verifyEscrowBinding(binding, signature)).toBe(buyer.address);
    for (const changed of [
      { chainId: 1 },
      { escrow: stranger.address },
      { escrowJobId: 5n },
      { coordinator: stranger.address },
      { specHash: keccak256('0x01') },
    ])
      expect(verifyEscrowBinding({ ...binding, ...changed }, signature)).not.toBe(buyer.address);
    expect(codeOf(() => verifyEscrowBinding(binding, '0x1234'))).toBe('ESCROW_BINDING_INVALID');
  });

  it('a cancel of one job is not a cancel of another, nor a binding', async () => {
    const spec = await signedSpec();
    const request = cancelRequestOf('job_a', spec.chain!, coordinator);
    const signature = await signCancelJob(buyer, request);
    expect(verifyCancelJob(request, signature)).toBe(buyer.address);
    expect(verifyCancelJob({ ...request, jobId: 'job_b' }, signature)).not.toBe(buyer.address);
    const binding = escrowBindingOf({ ...spec, chain: spec.chain! }, coordinator);
    expect(verifyEscrowBinding(binding, signature)).not.toBe(buyer.address);
  });
});

describe('checkEscrowBinding', () => {
  const onChainFor = (spec: JobSpec) => ({ buyer: buyer.address, coordinator, specHash: canonicalSpecHash(spec) });

  it("accepts the buyer's signature over this spec for this coordinator", async () => {
    const spec = await signedSpec();
    expect(checkEscrowBinding({ ...spec, chain: spec.chain! }, onChainFor(spec), coordinator).specHash).toBe(
      canonicalSpecHash(spec),
    );
  });

  it('refuses, with a code, a missing authorization, another coordinator, another spec, and a stranger', async () => {
    const spec = await signedSpec();
    const onChain = onChainFor(spec);
    const chain = spec.chain!;
    const { authorization: _a, ...unsigned } = chain;
    expect(codeOf(() => checkEscrowBinding({ ...spec, chain: unsigned }, onChain, coordinator))).toBe(
      'ESCROW_BINDING_INVALID',
    );
    expect(
      codeOf(() => checkEscrowBinding({ ...spec, chain }, { ...onChain, coordinator: ZeroAddress }, coordinator)),
    ).toBe('ESCROW_BINDING_INVALID');
    // The buyer's signature on a spec the stranger changed: the escrow pays for another spec.
    expect(codeOf(() => checkEscrowBinding({ ...spec, rounds: 50, chain }, onChain, coordinator))).toBe(
      'ESCROW_SPEC_MISMATCH',
    );
    // The stranger signs the buyer's exact spec itself.
    const forged = await signedSpec(stranger);
    expect(codeOf(() => checkEscrowBinding({ ...forged, chain: forged.chain! }, onChain, coordinator))).toBe(
      'ESCROW_BINDING_INVALID',
    );
    // The buyer's binding presented to another coordinator.
    expect(
      codeOf(() =>
        checkEscrowBinding({ ...spec, chain }, { ...onChain, coordinator: stranger.address }, stranger.address),
      ),
    ).toBe('ESCROW_BINDING_INVALID');
  });
});

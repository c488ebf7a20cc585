import { CONTRACT_NAMES, compileContracts, staleArtifacts } from './build';

test('committed artifacts match a fresh compile (run: node -r tsx/cjs contracts/build.ts)', () => {
  expect(staleArtifacts()).toEqual([]);
});

test('artifacts carry abi, bytecode, the pinned solc version and a source hash', () => {
  const a = compileContracts();
  for (const name of CONTRACT_NAMES) {
    expect(a[name].contractName).toBe(name);
    expect(a[name].bytecode).toMatch(/^0x[0-9a-f]{200,}$/);
    expect(a[name].solcVersion).toMatch(/^0\.8\.37\+commit\./);
    expect(a[name].sourceHash).toMatch(/^[0-9a-f]{64}$/);
  }
  const errors = (a.TributaryEscrow.abi as { type: string; name: string }[])
    .filter((x) => x.type === 'error')
    .map((x) => x.name);
  expect(errors).toEqual(
    expect.arrayContaining(['RoundConflict', 'InvalidProof', 'AlreadyClaimed', 'PayoutExceedsBudget']),
  );
});

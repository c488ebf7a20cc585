/**
 * A local chain for contract tests and benchmarks: a real anvil node, an ethers provider tuned for
 * instant mining (no response cache, 10 ms polling) and anvil's unlocked dev accounts as signers.
 */
import { HDNodeWallet, JsonRpcProvider, Network, type JsonRpcSigner } from 'ethers';
import { startAnvil, type Anvil } from '../test/support/anvil';

export interface LocalChain {
  anvil: Anvil;
  provider: JsonRpcProvider;
  /** anvil's 10 dev accounts, each funded with 10 000 ETH. */
  signers: JsonRpcSigner[];
  /** Timestamp of the latest block. */
  now(): Promise<bigint>;
  /** Moves chain time forward by `seconds` and mines a block. */
  increaseTime(seconds: bigint | number): Promise<void>;
  stop(): Promise<void>;
}

export async function startLocalChain(): Promise<LocalChain> {
  const anvil = await startAnvil();
  const provider = new JsonRpcProvider(anvil.url, Network.from(31337), {
    staticNetwork: true,
    cacheTimeout: -1,
    pollingInterval: 10,
  });
  const accounts = (await provider.send('eth_accounts', [])) as string[];
  const signers = await Promise.all(accounts.map((a) => provider.getSigner(a)));
  return {
    anvil,
    provider,
    signers,
    async now() {
      const block = await provider.getBlock('latest');
      return BigInt(block!.timestamp);
    },
    async increaseTime(seconds) {
      await provider.send('evm_increaseTime', [Number(seconds)]);
      await provider.send('evm_mine', []);
    },
    async stop() {
      provider.destroy();
      await anvil.stop();
    },
  };
}

/** anvil's default mnemonic: public, for local test chains only. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk';

/** The private key of anvil dev account `index` (each starts with 10 000 ETH on a fresh anvil). */
export function anvilDevKey(index: number): string {
  return HDNodeWallet.fromPhrase(ANVIL_MNEMONIC, undefined, `m/44'/60'/0'/0/${index}`).privateKey;
}

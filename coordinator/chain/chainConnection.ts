import { Wallet, type JsonRpcProvider } from 'ethers';
import { EscrowClient } from '../../contracts/escrow';
import { pinnedProvider, readChainId } from '../../contracts/rpc';
import { withTimeout } from './backoff';

export interface ChainConnectionOptions {
  rpcUrl: string;
  /** The coordinator's key (never logged). */
  privateKey: string;
  /** Receipt polling interval, in ms. */
  pollingMs: number;
  /** Longest wait for one RPC read, in ms. */
  requestTimeoutMs: number;
  /** Longest wait for a transaction's receipt, in ms. */
  txTimeoutMs: number;
  /** Told of every transaction: its kind (the first word of its description), duration and outcome (metrics). */
  onTransaction?: (kind: string, seconds: number, outcome: 'ok' | 'reverted' | 'failed') => void;
}

/**
 * The coordinator's link to the chain: one provider and one signer, created lazily (the RPC may be
 * down at start) and pinned to the chain id read once, so ethers never retries network detection on
 * its own. Writes go one at a time (`exclusive`), so concurrent jobs never race for a nonce.
 */
export class ChainConnection {
  private ready: Promise<{ provider: JsonRpcProvider; wallet: Wallet; chainId: number }> | null = null;
  private writes: Promise<unknown> = Promise.resolve();
  /** The coordinator's address (from the key; no RPC needed). */
  readonly address: string;

  constructor(private readonly options: ChainConnectionOptions) {
    this.address = new Wallet(options.privateKey).address;
  }

  /** The chain id the RPC reports (read once; a failure is retried on the next call). */
  async chainId(): Promise<number> {
    return (await this.connect()).chainId;
  }

  /** The latest block's timestamp (Unix seconds): the clock the escrow's deadline is measured by. */
  async chainTime(): Promise<bigint> {
    const { provider } = await this.connect();
    const block = await this.timed('getBlock', provider.getBlock('latest'));
    if (!block) throw new Error('the RPC returned no latest block');
    return BigInt(block.timestamp);
  }

  /** The escrow at `address`, sending as the coordinator. */
  async escrow(address: string): Promise<EscrowClient> {
    return new EscrowClient(address, (await this.connect()).wallet);
  }

  /** Runs `op` after every earlier write has finished (or timed out), bounded by the transaction timeout. */
  exclusive<T>(what: string, op: () => Promise<T>): Promise<T> {
    const run = this.writes.then(async () => {
      const started = performance.now();
      const report = (outcome: 'ok' | 'reverted' | 'failed') =>
        this.options.onTransaction?.(what.split(' ')[0], (performance.now() - started) / 1000, outcome);
      try {
        const result = await withTimeout(op(), this.options.txTimeoutMs, what);
        report('ok');
        return result;
      } catch (err) {
        report(/revert/i.test(String((err as Error)?.message ?? err)) ? 'reverted' : 'failed');
        throw err;
      }
    });
    this.writes = run.catch(() => undefined);
    return run;
  }

  /** Bounds one chain operation: an RPC that stopped answering must not hang a job's worker. */
  timed<T>(what: string, promise: Promise<T>): Promise<T> {
    return withTimeout(promise, this.options.requestTimeoutMs, what);
  }

  /** `text` without the RPC URL (hosted RPC URLs often carry an API key), for logs and REST. */
  redact(text: string): string {
    return text.split(this.options.rpcUrl).join('<rpc-url>');
  }

  close(): void {
    const ready = this.ready;
    this.ready = null;
    void ready?.then(
      ({ provider }) => provider.destroy(),
      () => undefined,
    );
  }

  private connect() {
    if (this.ready) return this.ready;
    const ready = (async () => {
      const chainId = await this.timed('eth_chainId', readChainId(this.options.rpcUrl));
      const provider = pinnedProvider(this.options.rpcUrl, chainId, this.options.pollingMs);
      return { provider, wallet: new Wallet(this.options.privateKey, provider), chainId };
    })();
    // A failed connect is forgotten, so the next call tries again.
    ready.catch(() => {
      if (this.ready === ready) this.ready = null;
    });
    this.ready = ready;
    return ready;
  }
}

import { JsonRpcProvider, Network } from 'ethers';

/**
 * eth_chainId over plain fetch: an unreachable RPC fails once, instead of ethers' JsonRpcProvider
 * retrying network detection forever (and logging each try). Build the provider afterwards with
 * `pinnedProvider`.
 */
export async function readChainId(url: string, timeoutMs = 10_000): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await res.json()) as { result?: string; error?: { message?: string } };
  if (typeof body.result !== 'string')
    throw new Error(`eth_chainId failed: ${body.error?.message ?? `HTTP ${res.status}`}`);
  return Number(BigInt(body.result));
}

/** The RPC's host for messages: hosted RPC URLs carry an API key in the path or query, never shown. */
export function rpcHost(url: string): string {
  try {
    return new URL(url).host || '<rpc-url>';
  } catch {
    return '<rpc-url>';
  }
}

/**
 * A provider pinned to `chainId` (from readChainId): ethers never re-detects the network, and no
 * read is served from its cache (a worker re-reading the chain must see the latest state).
 */
export function pinnedProvider(url: string, chainId: number, pollingMs: number): JsonRpcProvider {
  return new JsonRpcProvider(url, Network.from(chainId), {
    staticNetwork: true,
    cacheTimeout: -1,
    pollingInterval: pollingMs,
  });
}

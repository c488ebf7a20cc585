import { TributaryError } from '../shared/errors';

/** Where a client role connects: the first coordinator URL, then the cluster's other nodes (if any). */
export interface CoordinatorUrls {
  url: string;
  alternativeUrls?: string[];
}

/**
 * Splits a `--coordinator` value, one URL (a single coordinator or a load balancer) or a cluster's
 * nodes comma-separated, into the URL to dial first and the others the connection may fail over to
 * and follow JOB_ELSEWHERE to (CoordinatorConnection). CONFIG_INVALID when no URL is given.
 */
export function coordinatorUrlsOf(value: string): CoordinatorUrls {
  const [url, ...alternativeUrls] = value
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  if (url === undefined) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `--coordinator: expected a URL or comma-separated URLs, got "${value.slice(0, 200)}".`,
    );
  }
  return { url, ...(alternativeUrls.length > 0 ? { alternativeUrls } : {}) };
}

/**
 * The audience a handshake is signed for: the coordinator's origin (scheme, host and port, as the URL
 * standard normalises them), as in SIWE's domain/URI binding. A handshake captured by one coordinator
 * names that coordinator and is refused by every other one.
 */
export function audienceOf(url: string | URL): string {
  return new URL(url).origin.toLowerCase();
}

/**
 * The origins a coordinator listening on host:port answers to by default: the address itself and, for
 * loopback or wildcard addresses, the loopback names clients use. Operators behind a proxy add their
 * public URL (config `publicUrls`).
 */
export function defaultAudiences(host: string, port: number): string[] {
  const bracket = (h: string) => (h.includes(':') ? `[${h}]` : h);
  const loopback = ['127.0.0.1', 'localhost', '::1', '0.0.0.0', '::'].includes(host);
  const hosts = loopback ? ['127.0.0.1', 'localhost', '::1'] : [host];
  return hosts.map((h) => audienceOf(`http://${bracket(h)}:${port}`));
}

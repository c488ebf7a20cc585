/** Structural bounds of a `layers-json` topology, checked before anything walks it recursively. */
export const TOPOLOGY_LIMITS = {
  /** Deepest nesting of objects and arrays (a Keras topology needs about 8). */
  maxDepth: 32,
  /** Objects, arrays and values in all. */
  maxNodes: 200_000,
  /** Characters of keys and string values plus 2 per other value, about its JSON size (= LIMITS.maxTopologyBytes). */
  maxBytes: 1_000_000,
} as const;

/** What is wrong with a topology's structure, or null when it is within TOPOLOGY_LIMITS. */
export function topologyBoundsProblem(topology: unknown): string | null {
  // Iterative (an explicit stack), so a hostile nesting depth cannot overflow the call stack.
  const stack: Array<{ value: unknown; depth: number }> = [{ value: topology, depth: 1 }];
  let nodes = 0;
  let bytes = 0;
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (++nodes > TOPOLOGY_LIMITS.maxNodes) return `more than ${TOPOLOGY_LIMITS.maxNodes} values`;
    bytes += typeof value === 'string' ? value.length + 3 : 2;
    if (bytes > TOPOLOGY_LIMITS.maxBytes) return `larger than ${TOPOLOGY_LIMITS.maxBytes} bytes`;
    if (value === null || typeof value !== 'object') continue;
    if (depth > TOPOLOGY_LIMITS.maxDepth) return `nested deeper than ${TOPOLOGY_LIMITS.maxDepth} levels`;
    if (Array.isArray(value)) {
      for (const item of value) stack.push({ value: item, depth: depth + 1 });
    } else {
      for (const [key, item] of Object.entries(value)) {
        bytes += key.length + 3;
        stack.push({ value: item, depth: depth + 1 });
      }
    }
  }
  return null;
}

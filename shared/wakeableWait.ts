/**
 * Waits until a condition holds, re-checking it whenever `wake()` is called, or until a timeout: the
 * one waiting primitive of the round runner (quorum), the upload collection (every client answered)
 * and the SecAgg+ session (every asked client replied). No polling: whoever changes the state wakes.
 */
export class WakeableWait {
  private readonly waiters = new Set<() => void>();

  /** Resolves true once `condition()` holds (checked now and at every wake), false after `timeoutMs`. */
  until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    if (condition()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(ok);
      };
      const check = () => {
        if (condition()) finish(true);
      };
      const timer = setTimeout(() => finish(condition()), Math.max(0, timeoutMs));
      this.waiters.add(check);
    });
  }

  /** Re-checks every pending wait's condition. */
  wake(): void {
    for (const check of [...this.waiters]) check();
  }
}

/** Minimal leveled logger writing one line per event to stderr (stdout stays free for --json). */
export interface Logger {
  error(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
}

const ORDER = { silent: 0, error: 1, info: 2, debug: 3 } as const;

export function createLogger(level: keyof typeof ORDER, prefix = 'coordinator'): Logger {
  const at = ORDER[level];
  const write = (lvl: string, message: string, fields?: Record<string, unknown>) =>
    process.stderr.write(
      `${new Date().toISOString()} ${prefix} ${lvl} ${message}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`,
    );
  return {
    error: (m, f) => at >= 1 && write('ERROR', m, f),
    info: (m, f) => at >= 2 && write('INFO', m, f),
    debug: (m, f) => at >= 3 && write('DEBUG', m, f),
  };
}

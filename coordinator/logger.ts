import pino from 'pino';

/** Leveled, structured logger: one JSON line per event on stderr (stdout stays free for --json). */
export interface Logger {
  error(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `bindings` (e.g. a request id) to every line. @default the same logger */
  child?(bindings: Record<string, unknown>): Logger;
}

/**
 * Fields that may hold secrets, replaced by "[redacted]" wherever they appear at the top level or one
 * level down: credentials and keys must never reach a log line even if a caller passes them by mistake.
 * (Updates and other payloads are never logged at all: callers log sizes and hashes.)
 */
export const REDACTED_FIELDS = [
  'authorization',
  'signature',
  'token',
  'apiKey',
  'secret',
  'secretKey',
  'privateKey',
  'coordinatorPrivateKey',
  'ethPrivateKey',
  'jwtSecret',
  'password',
  'cookie',
] as const;

/** A logger with `bindings` on every line (or the logger itself if it cannot bind). */
export function childLogger(logger: Logger, bindings: Record<string, unknown>): Logger {
  return logger.child ? logger.child(bindings) : logger;
}

/**
 * The coordinator's pino logger at `level`, writing synchronously to stderr (so lines are not lost on
 * exit and keep their order with other output). Every line has `time` (ISO), `level`, `name`, `msg`
 * and the fields given; see REDACTED_FIELDS.
 */
export function createLogger(
  level: 'silent' | 'error' | 'info' | 'debug',
  name = 'coordinator',
  destination: pino.DestinationStream = pino.destination({ fd: 2, sync: true }),
): Logger {
  const base = pino(
    {
      name,
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_FIELDS.flatMap((f) => [f, `*.${f}`]), censor: '[redacted]' },
    },
    destination,
  );
  return wrap(base);
}

function wrap(p: pino.Logger): Logger {
  return {
    error: (message, fields) => p.error(fields ?? {}, message),
    info: (message, fields) => p.info(fields ?? {}, message),
    debug: (message, fields) => p.debug(fields ?? {}, message),
    child: (bindings) => wrap(p.child(bindings)),
  };
}

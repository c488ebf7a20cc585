import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Phases the round runner reports (label values of tributary_round_phase_seconds). */
export type RoundPhase =
  | 'quorum'
  | 'train'
  | 'collect'
  | 'secagg'
  | 'decrypt'
  | 'aggregate'
  | 'evaluate'
  | 'commit'
  | (string & {});

/**
 * The coordinator's Prometheus metrics (prom-client), served at GET /metrics. One registry per
 * coordinator, so several coordinators in one process (tests) keep separate counts. Label values
 * are bounded sets (phases, event names, catalog codes, route patterns), never ids or addresses.
 *
 * Call sites: the REST edge records requests, bytes and rate-limit hits itself; the round runner
 * calls roundPhase, the socket edge message/bytes/connectedClients, the chain worker
 * chainTransaction, the contribution scorer scoring.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly phase: Histogram<'phase'>;
  private readonly messages: Counter<'event' | 'code'>;
  private readonly transferred: Counter<'transport' | 'direction'>;
  private readonly chainTx: Counter<'kind' | 'outcome'>;
  private readonly chainLatency: Histogram<'kind'>;
  private readonly scoringTime: Histogram;
  private readonly rateLimited: Counter<'limiter'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpLatency: Histogram<'method' | 'route'>;
  private clientsSource: () => number = () => 0;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'tributary_' });
    this.phase = new Histogram({
      name: 'tributary_round_phase_seconds',
      help: 'Duration of each phase of a round attempt, in seconds.',
      labelNames: ['phase'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'tributary_connected_clients',
      help: 'Clients connected over socket.io right now.',
      registers,
      collect() {
        this.set(self.clientsSource());
      },
    });
    this.messages = new Counter({
      name: 'tributary_messages_total',
      help: 'Socket messages by event and outcome: "ok" when accepted, else the error code.',
      labelNames: ['event', 'code'],
      registers,
    });
    this.transferred = new Counter({
      name: 'tributary_bytes_total',
      help: 'Bytes received (in) and sent (out), by transport.',
      labelNames: ['transport', 'direction'],
      registers,
    });
    this.chainTx = new Counter({
      name: 'tributary_chain_transactions_total',
      help: 'Chain transactions sent, by kind (commit, settle, ...) and outcome.',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.chainLatency = new Histogram({
      name: 'tributary_chain_transaction_seconds',
      help: 'Time from sending a chain transaction to its receipt, in seconds.',
      labelNames: ['kind'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.scoringTime = new Histogram({
      name: 'tributary_scoring_seconds',
      help: 'Contribution scoring time per round, in seconds.',
      buckets: [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers,
    });
    this.rateLimited = new Counter({
      name: 'tributary_rate_limit_hits_total',
      help: 'Requests refused with RATE_LIMITED, by limiter.',
      labelNames: ['limiter'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'tributary_http_requests_total',
      help: 'REST requests by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpLatency = new Histogram({
      name: 'tributary_http_request_seconds',
      help: 'REST request duration by method and route pattern, in seconds.',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }

  /** A round phase took `seconds` (the round runner). */
  roundPhase(phase: RoundPhase, seconds: number): void {
    this.phase.observe({ phase }, seconds);
  }

  /** A socket message was accepted (`code` = "ok") or refused with an error code (the socket edge). */
  message(event: string, code: string): void {
    this.messages.inc({ event, code });
  }

  /** Bytes received or sent. */
  bytes(transport: 'socket' | 'rest', direction: 'in' | 'out', count: number): void {
    if (count > 0) this.transferred.inc({ transport, direction }, count);
  }

  /** Where the connected-clients gauge reads its value (the client directory). */
  connectedClients(source: () => number): void {
    this.clientsSource = source;
  }

  /** A chain transaction finished (receipt, revert or failure) after `seconds` (the chain worker). */
  chainTransaction(kind: string, seconds: number, outcome: 'ok' | 'reverted' | 'failed'): void {
    this.chainTx.inc({ kind, outcome });
    this.chainLatency.observe({ kind }, seconds);
  }

  /** Scoring one round took `seconds` (the contribution scorer). */
  scoring(seconds: number): void {
    this.scoringTime.observe(seconds);
  }

  /** A request was refused by a rate limiter. */
  rateLimitHit(limiter: string): void {
    this.rateLimited.inc({ limiter });
  }

  /** A REST request finished. `route` is the route pattern (e.g. /v1/jobs/:jobId), never the raw URL. */
  httpRequest(method: string, route: string, status: number, seconds: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
    this.httpLatency.observe({ method, route }, seconds);
  }

  /** The Prometheus text exposition and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

import { EventEmitter } from 'node:events';
import type { ServerEventName, ServerPayload } from '../../shared/schemas/protocol';

/** How the round runner reaches a client without knowing about sockets. */
export interface ClientLink {
  readonly clientId: string;
  send<E extends ServerEventName>(event: E, payload: ServerPayload<E>): void;
  /** Closes the connection (the client reconnects and joins again: in a cluster, wherever its job runs now). */
  close?(reason: string): void;
}

export type DirectoryEvent = { type: 'joined' | 'left'; jobId: string; clientId: string; reason?: string };

/**
 * Which authenticated clients are connected and which jobs each has joined. The socket layer writes
 * it; round runners read it and listen for joins (quorum) and leaves (mid-round failures).
 */
export class ClientDirectory {
  private readonly links = new Map<string, ClientLink>();
  private readonly jobsOf = new Map<string, Set<string>>();
  private readonly membersOf = new Map<string, Set<string>>();
  private readonly events = new EventEmitter();

  constructor() {
    this.events.setMaxListeners(0);
  }

  /** Registers a connection. A client that connects again replaces its old connection, which leaves its jobs (it rejoins). */
  connect(link: ClientLink): void {
    const previous = this.links.get(link.clientId);
    if (previous && previous !== link) this.disconnect(link.clientId, previous, 'replaced by a new connection');
    this.links.set(link.clientId, link);
  }

  /** Removes the client from every job it joined, announcing each leave. */
  disconnect(clientId: string, link: ClientLink, reason: string): void {
    // A reconnect may already have replaced this link: only the current link may remove the client.
    if (this.links.get(clientId) !== link) return;
    this.links.delete(clientId);
    for (const jobId of this.jobsOf.get(clientId) ?? []) {
      this.membersOf.get(jobId)?.delete(clientId);
      this.events.emit('change', { type: 'left', jobId, clientId, reason } satisfies DirectoryEvent);
    }
    this.jobsOf.delete(clientId);
  }

  join(clientId: string, jobId: string): void {
    let jobs = this.jobsOf.get(clientId);
    if (!jobs) this.jobsOf.set(clientId, (jobs = new Set()));
    jobs.add(jobId);
    let members = this.membersOf.get(jobId);
    if (!members) this.membersOf.set(jobId, (members = new Set()));
    members.add(clientId);
    this.events.emit('change', { type: 'joined', jobId, clientId } satisfies DirectoryEvent);
  }

  hasJoined(clientId: string, jobId: string): boolean {
    return this.jobsOf.get(clientId)?.has(jobId) ?? false;
  }

  /** Connected members of a job, sorted so seeded sampling is reproducible. */
  members(jobId: string): string[] {
    return [...(this.membersOf.get(jobId) ?? [])].sort();
  }

  link(clientId: string): ClientLink | undefined {
    return this.links.get(clientId);
  }

  get connectedCount(): number {
    return this.links.size;
  }

  onChange(listener: (event: DirectoryEvent) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }
}

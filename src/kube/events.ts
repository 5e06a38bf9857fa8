// Events on RegistryCredentials, as `kubectl describe regcred` shows them. Like client-go's
// recorder, a repeat of the same reason and message bumps the count of the existing Event
// instead of creating another. Events of a cluster-scoped object live in "default".
import type { CoreV1Event } from '@kubernetes/client-node';
import { API_VERSION, KIND, type RegistryCredential } from '../api/types.ts';
import type { Logger } from '../observability/logger.ts';
import { safeMessage } from '../observability/redact.ts';
import type { KubeApi } from './api.ts';

export type EventType = 'Normal' | 'Warning';

/** A namespaced object an Event is about, in the namespace it concerns. */
export interface EventSubject {
  namespace: string;
  kind: 'Secret' | 'ServiceAccount';
  name: string;
}

const EVENT_NAMESPACE = 'default';
const COMPONENT = 'regcred-operator';
const REPEAT_WINDOW_MS = 10 * 60 * 1000;
const MAX_REMEMBERED = 5_000;

interface Recent {
  name: string;
  count: number;
  at: number;
}

export class EventRecorder {
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly host: string;
  private readonly recent = new Map<string, Recent>();

  constructor(api: KubeApi, log: Logger, host: string) {
    this.api = api;
    this.log = log;
    this.host = host;
  }

  /**
   * Never throws: an Event that cannot be written is logged, not fatal. With `about`, the Event
   * goes into that namespace, on that object (a tenant sees failures that concern them without
   * rights on the cluster-scoped RegistryCredential); otherwise on the RegistryCredential.
   */
  async record(
    cred: RegistryCredential,
    type: EventType,
    reason: string,
    rawMessage: string,
    about?: EventSubject,
  ): Promise<void> {
    const message = safeMessage(rawMessage, 1024);
    const where = about ? `${about.namespace}/${about.kind}/${about.name}` : '';
    const key = `${cred.metadata.uid}\u0000${where}\u0000${type}\u0000${reason}\u0000${message}`;
    const namespace = about?.namespace ?? EVENT_NAMESPACE;
    const now = new Date();
    const seen = this.recent.get(key);
    try {
      if (seen && now.getTime() - seen.at < REPEAT_WINDOW_MS) {
        seen.count += 1;
        seen.at = now.getTime();
        await this.api.patchEvent(namespace, seen.name, {
          count: seen.count,
          lastTimestamp: now,
        });
        return;
      }
      const name = `${cred.metadata.name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
      const event: CoreV1Event = {
        metadata: { name, namespace },
        involvedObject: about
          ? { apiVersion: 'v1', kind: about.kind, name: about.name, namespace: about.namespace }
          : {
              apiVersion: API_VERSION,
              kind: KIND,
              name: cred.metadata.name,
              uid: cred.metadata.uid,
              resourceVersion: cred.metadata.resourceVersion,
            },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: COMPONENT, host: this.host },
        reportingComponent: COMPONENT,
        reportingInstance: this.host,
      };
      await this.api.createEvent(event);
      this.remember(key, { name, count: 1, at: now.getTime() });
    } catch (error) {
      this.recent.delete(key);
      this.log.warn('could not record Event', {
        registryCredential: cred.metadata.name,
        reason,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  private remember(key: string, entry: Recent): void {
    if (this.recent.size >= MAX_REMEMBERED) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
    this.recent.set(key, entry);
  }
}

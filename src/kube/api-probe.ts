// Notices an API server that stopped answering while every watch stays quietly open (a hung
// server, or a network that drops packets): an open watch cannot tell that from a quiet cluster
// until its silence watchdog fires, minutes later. One cheap GET /version at a time, each with a
// deadline; /healthz fails once none has succeeded for longer than the budget.
import { type KubeConfig, VersionApi } from '@kubernetes/client-node';
import { type Clock, sleep, systemClock } from '../clock.ts';
import { safeMessage } from '../observability/redact.ts';
import { requestOptions } from './api.ts';
import type { InformerHealth } from './informer.ts';

export interface ApiServerProbeOptions {
  /** Unhealthy once the API server has not answered for this long. */
  unhealthyAfterMs: number;
  /** Pause between probes (default: a fifth of the budget, at most 10 s). */
  intervalMs?: number;
  clock?: Clock;
}

export class ApiServerProbe {
  readonly #version: VersionApi;
  readonly #unhealthyAfterMs: number;
  readonly #intervalMs: number;
  readonly #clock: Clock;
  #stopping: AbortController | undefined;
  #running: Promise<void> | undefined;
  /** When the first probe of the current run of failures started. */
  #brokenSince: number | undefined;
  /** When the probe in flight started, if one is. */
  #inFlightSince: number | undefined;
  #lastError: string | undefined;

  constructor(kc: KubeConfig, opts: ApiServerProbeOptions) {
    this.#version = kc.makeApiClient(VersionApi);
    this.#unhealthyAfterMs = opts.unhealthyAfterMs;
    this.#intervalMs =
      opts.intervalMs ?? Math.min(10_000, Math.max(200, opts.unhealthyAfterMs / 5));
    this.#clock = opts.clock ?? systemClock;
  }

  start(): void {
    if (this.#running) return;
    this.#stopping = new AbortController();
    this.#running = this.#run(this.#stopping.signal);
  }

  async stop(): Promise<void> {
    this.#stopping?.abort();
    await this.#running;
  }

  health(): InformerHealth {
    const now = this.#clock.now();
    // A probe still waiting for an answer counts from when it was sent.
    const since = this.#brokenSince ?? this.#inFlightSince;
    const broken = since !== undefined && now - since > this.#unhealthyAfterMs;
    return {
      synced: true,
      healthy: !broken,
      lastError: broken
        ? (this.#lastError ?? `the API server has not answered for ${now - (since ?? now)} ms`)
        : undefined,
      brokenSince: broken && since !== undefined ? new Date(since) : undefined,
    };
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = this.#clock.now();
      this.#inFlightSince = started;
      try {
        // The generated client takes (params, options): options first would be ignored.
        await this.#version.getCode(
          {},
          requestOptions(AbortSignal.any([signal, AbortSignal.timeout(this.#unhealthyAfterMs)])),
        );
        this.#brokenSince = undefined;
        this.#lastError = undefined;
      } catch (error) {
        if (signal.aborted) return;
        this.#brokenSince ??= started;
        this.#lastError = safeMessage(
          `GET /version: ${error instanceof Error ? error.message : String(error)}`,
          256,
        );
      } finally {
        this.#inFlightSince = undefined;
      }
      await sleep(this.#intervalMs, signal, this.#clock);
    }
  }
}

// Entry point: flags/env → wiring; signals and graceful shutdown.
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, loadConfig, type OperatorConfig, usage } from './config.ts';
import { closeServer, serveHealth, serveMetrics } from './observability/http.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { Operator } from './operator.ts';

const SHUTDOWN_CAP_MS = 30_000;

function loadKubeConfig(config: OperatorConfig): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

export async function run(argv: string[]): Promise<number> {
  let config: OperatorConfig;
  try {
    const loaded = loadConfig(argv, process.env, hostname());
    if (loaded === 'help') {
      process.stdout.write(`${usage()}\n`);
      return 0;
    }
    config = loaded;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`regcred-operator: ${error.message}\n\n${usage()}\n`);
      return 2;
    }
    throw error;
  }
  const log: Logger = createLogger(config.logLevel);
  const metrics = new Metrics();
  const kc = loadKubeConfig(config);
  const operator = new Operator({ config, kc, log, metrics });

  const metricsServer = config.metricsAddress
    ? await serveMetrics(config.metricsAddress, metrics)
    : undefined;
  const healthServer = config.healthAddress
    ? await serveHealth(config.healthAddress, {
        healthy: () => {
          const h = operator.health();
          return { ok: h.healthy, detail: h.detail };
        },
        ready: () => {
          const h = operator.health();
          return { ok: h.synced, detail: h.synced ? 'caches synced' : 'caches not synced yet' };
        },
      })
    : undefined;

  let stopping: Promise<number> | undefined;
  const shutdown = (signal: string): Promise<number> => {
    stopping ??= (async () => {
      log.info('shutting down', { signal });
      await operator.stop(SHUTDOWN_CAP_MS);
      await Promise.all([closeServer(metricsServer), closeServer(healthServer)]);
      log.info('stopped');
      return 0;
    })();
    return stopping;
  };
  const exited = new Promise<number>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        void shutdown(signal).then(resolve);
      });
    }
  });

  log.info('starting', {
    namespace: config.namespace,
    sourceNamespaces: config.sourceNamespaces,
    workers: config.workers,
    leaderElect: config.leaderElect,
  });
  await operator.startCaches();
  operator.startWorkers();
  log.info('workers started');
  return exited;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `regcred-operator: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(1);
  },
);

// Entry point: flags/env → wiring; signals and graceful shutdown.
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, loadConfig, type OperatorConfig, usage } from './config.ts';
import { shareConnections } from './kube/connections.ts';
import { LeaderElector } from './kube/leader-election.ts';
import { closeServer, operatorProbes, serveHealth, serveMetrics } from './observability/http.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { Operator } from './operator.ts';

const SHUTDOWN_CAP_MS = 30_000;

function loadKubeConfig(config: OperatorConfig): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  return shareConnections(kc);
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
    ? await serveHealth(
        config.healthAddress,
        operatorProbes(() => operator.health()),
      )
    : undefined;

  let elector: LeaderElector | undefined;
  let stopping: Promise<number> | undefined;
  const shutdown = (reason: string, code: number): Promise<number> => {
    stopping ??= (async () => {
      log.info('shutting down', { reason });
      // Stop writing first; only then hand the lease over, so two replicas never write at once.
      await operator.stop(SHUTDOWN_CAP_MS);
      await elector?.release();
      await Promise.all([closeServer(metricsServer), closeServer(healthServer)]);
      log.info('stopped');
      return code;
    })();
    return stopping;
  };
  const exited = new Promise<number>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        void shutdown(signal, 0).then(resolve);
      });
    }
    if (config.leaderElect) {
      elector = new LeaderElector(kc, {
        namespace: config.namespace,
        name: config.leaseName,
        identity: config.identity,
        log,
        // The leadership signal aborts at the renew deadline: no write after it.
        onStartedLeading: (leadership) => {
          operator.startWorkers(leadership);
          log.info('workers started');
        },
        // Exit so the Deployment restarts us as a clean standby.
        onStoppedLeading: () => void shutdown('lost leadership', 1).then(resolve),
        onLeaderStatus: (leading) =>
          metrics.leaderStatus.set({ name: config.leaseName }, leading ? 1 : 0),
      });
    }
  });

  log.info('starting', {
    namespace: config.namespace,
    sourceNamespaces: config.sourceNamespaces,
    workers: config.workers,
    leaderElect: config.leaderElect,
  });
  const shuttingDown = (): boolean => stopping !== undefined;
  try {
    await operator.startCaches();
  } catch (error) {
    // A signal before the caches synced stops them on purpose: that is a clean exit.
    if (shuttingDown()) return exited;
    throw error;
  }
  // Nor does a signal that arrived while they synced start any work.
  if (shuttingDown()) return exited;
  if (elector) {
    elector.start();
  } else {
    operator.startWorkers();
    log.info('workers started (leader election disabled)');
  }
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

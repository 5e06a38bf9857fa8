// What the production Deployment (config/manager/manager.yaml) sets for the operator's process,
// so tests and the benchmark run it as it runs in a cluster.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface ManagerContainer {
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
}

interface Manifest {
  spec?: { template?: { spec?: { containers?: ManagerContainer[] } } };
}

/** The operator container of config/manager/manager.yaml. */
export function managerContainer(): ManagerContainer {
  const manifest = parseYaml(
    readFileSync(
      join(import.meta.dirname, '..', '..', 'config', 'manager', 'manager.yaml'),
      'utf8',
    ),
  ) as Manifest;
  const container = manifest.spec?.template?.spec?.containers?.[0];
  if (!container) throw new Error('config/manager/manager.yaml has no container');
  return container;
}

/** The literal env values of the operator container (NODE_OPTIONS, MALLOC_*). */
export function deploymentEnv(): Record<string, string> {
  const env = managerContainer().env ?? [];
  return Object.fromEntries(
    env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value ?? '']),
  );
}

/** Only the C allocator's settings (the benchmark sets NODE_OPTIONS itself). */
export function allocatorEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(deploymentEnv()).filter(([name]) => name.startsWith('MALLOC_')),
  );
}

/**
 * The flags the container's command gives node before the script: V8 flags that NODE_OPTIONS
 * refuses (`node --heap-growing-percent=100 dist/main.js` gives ['--heap-growing-percent=100']).
 * None when the container keeps the image's entrypoint.
 */
export function deploymentNodeFlags(): string[] {
  const command = managerContainer().command;
  if (command === undefined) return [];
  const [program, ...rest] = command;
  const script = rest.findIndex((a) => !a.startsWith('-'));
  if (program !== 'node' || script < 0) {
    throw new Error(
      `config/manager/manager.yaml: expected command [node, <flags>..., <script>], got ${JSON.stringify(command)}`,
    );
  }
  return rest.slice(0, script);
}

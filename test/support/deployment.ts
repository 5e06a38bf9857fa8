// What the production Deployment (config/manager/manager.yaml) sets in the operator's
// environment, so tests and the benchmark run the process as it runs in a cluster.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

interface Manifest {
  spec?: {
    template?: {
      spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> };
    };
  };
}

/** The literal env values of the operator container (NODE_OPTIONS, MALLOC_*). */
export function deploymentEnv(): Record<string, string> {
  const manifest = parseYaml(
    readFileSync(
      join(import.meta.dirname, '..', '..', 'config', 'manager', 'manager.yaml'),
      'utf8',
    ),
  ) as Manifest;
  const env = manifest.spec?.template?.spec?.containers?.[0]?.env ?? [];
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

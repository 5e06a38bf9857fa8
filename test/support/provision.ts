// The folders scripts/provision.sh builds and caches (it prints "<component>=<folder>" lines):
// what a suite's setup calls before it starts anything. A warm run only checks files.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

const repoRoot = resolve(import.meta.dirname, '..', '..');

export type ProvisionComponent = 'controlplane' | 'helm' | 'registry' | 'node' | 'e2e' | 'all';

export interface Provisioned {
  controlplane?: string;
  /** The helm CLI's folder (the chart's tests). */
  helm?: string;
  registry?: string;
  kubelet?: string;
  containerd?: string;
  pause?: string;
  /** The runc binary (from the system's package manager). */
  runc?: string;
}

const runs = new Map<string, Promise<Provisioned>>();

/** Runs scripts/provision.sh once per process for each set of components; progress goes to `log`. */
export function provision(
  components: ProvisionComponent[],
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<Provisioned> {
  const key = components.join(' ');
  let run = runs.get(key);
  if (!run) {
    run = runProvision(components, log);
    runs.set(key, run);
    run.catch(() => runs.delete(key));
  }
  return run;
}

function runProvision(
  components: ProvisionComponent[],
  log: (line: string) => void,
): Promise<Provisioned> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('bash', [join(repoRoot, 'scripts', 'provision.sh'), ...components], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      for (const line of chunk.toString().split('\n')) if (line.trim()) log(line);
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) {
        const reason = stderr.split('\n').find((line) => line.includes('error:')) ?? '';
        reject(
          new Error(
            `provisioning ${components.join(', ')} failed (exit ${code})${reason ? `: ${reason.replace(/^\[provision\] error: /, '')}` : ''}; see the [provision] lines above`,
          ),
        );
        return;
      }
      const result: Provisioned = {};
      for (const line of stdout.split('\n')) {
        const at = line.indexOf('=');
        if (at > 0) (result as Record<string, string>)[line.slice(0, at)] = line.slice(at + 1);
      }
      resolveRun(result);
    });
  });
}

/** The folder of one provisioned component, or an error naming what is missing. */
export function folderOf(provisioned: Provisioned, component: keyof Provisioned): string {
  const dir = provisioned[component];
  if (!dir) throw new Error(`scripts/provision.sh did not report ${component}`);
  return dir;
}

// The Deployment starts node with V8 flags that NODE_OPTIONS refuses, in the container's command
// (config/manager/manager.yaml). That command replaces the image's ENTRYPOINT, so it must keep
// running the same script, every flag must be one the pinned Node accepts (an unknown flag stops
// the process before it starts: a crash-looping Pod), and the flags must do what the manifest's
// comment says they do: fewer marks of the old generation under the same heap limit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deploymentEnv, deploymentNodeFlags, managerContainer } from '../support/deployment.ts';

const repoRoot = join(import.meta.dirname, '..', '..');

/** The runtime stage's ENTRYPOINT of the Dockerfile, in its exec form. */
function imageEntrypoint(): string[] {
  const lines = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8').split('\n');
  const last = lines.filter((l) => l.startsWith('ENTRYPOINT ')).at(-1);
  assert.ok(last, 'the Dockerfile has an ENTRYPOINT');
  return JSON.parse(last.slice('ENTRYPOINT '.length)) as string[];
}

// A live set of ~40 MB, then objects that outlive a few scavenges (so they are promoted) and die
// in the old generation: what the operator's in-flight requests do during a fan-out. Prints the
// number of full (mark-compact) collections after the live set is built.
const workload = `
const { PerformanceObserver, constants, performance } = require('node:perf_hooks');
const marks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) marks.push(e.startTime);
  }
}).observe({ entryTypes: ['gc'] });
const live = [];
for (let i = 0; i < 400000; i++) live.push({ i, name: 'live-' + i });
const from = performance.now();
const ring = new Array(200000);
for (let i = 0; i < 6000000; i++) ring[i % ring.length] = { i, name: 'work-' + i, pair: [i, i] };
setTimeout(() => console.log(marks.filter((t) => t > from).length, live.length), 50);
`;

function marksWith(flags: readonly string[]): number {
  const run = spawnSync(process.execPath, [...flags, '-e', workload], {
    env: { ...process.env, NODE_OPTIONS: deploymentEnv().NODE_OPTIONS ?? '' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return Number(run.stdout.trim().split(' ')[0]);
}

describe('the Deployment: node flags on the command line', () => {
  it("runs the image's entrypoint script, with node's flags before it", () => {
    const command = managerContainer().command;
    assert.ok(command, 'config/manager/manager.yaml sets the container command');
    const flags = deploymentNodeFlags();
    assert.ok(flags.length > 0, 'the command gives node flags (else keep the ENTRYPOINT)');
    assert.deepEqual(
      command.filter((a) => !flags.includes(a)),
      imageEntrypoint(),
      'the command is the ENTRYPOINT with flags added',
    );
  });

  it('gives only flags the pinned Node accepts', () => {
    for (const flag of deploymentNodeFlags()) {
      const run = spawnSync(process.execPath, [flag, '-e', '0'], { encoding: 'utf8' });
      assert.equal(run.status, 0, `node ${flag}: ${run.stderr}`);
      assert.equal(run.stderr, '', `node ${flag} warns: ${run.stderr}`);
    }
  });

  it('marks the old generation a third less often or better under the same heap limit', function () {
    this.timeout(120_000);
    const without = marksWith([]);
    const withFlags = marksWith(deploymentNodeFlags());
    assert.ok(without >= 10, `the workload promotes enough to mark often (${without} marks)`);
    // 22-24 marks without, 11 with --heap-growing-percent=100 (Node 24.21, 2 cores).
    assert.ok(
      withFlags * 3 <= without * 2,
      `${withFlags} marks with ${deploymentNodeFlags().join(' ')}, ${without} without`,
    );
  });
});

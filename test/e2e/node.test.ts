import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cluster } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { hostSnapshotFor, type NodeDescription, PAUSE_IMAGE, TestNode } from '../support/node.ts';
import { e2eNode, NODE, SPARE_NODE } from './hooks.ts';
import { createPod, waitRunning } from './pods.ts';

/** Whether `pid` runs (a zombie, killed and not yet reaped by init, does not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function procStat(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ').slice(0, 4).join(' ');
  } catch {
    return `${pid} (gone)`;
  }
}

const NOTHING = { processes: [], mounts: [], cgroups: [], netns: [], interfaces: [] };

describe('the test node (kubelet + containerd)', () => {
  let f: Fixtures;
  before(() => {
    f = new Fixtures(cluster.kc);
  });

  it('joins as system:node:<name> with the pinned kubelet and containerd, and runs a Pod from its local pause image', async () => {
    await e2eNode();
    const node = await f.core.readNode({ name: NODE.name });
    assert.equal(node.status?.nodeInfo?.kubeletVersion, 'v1.37.2');
    assert.match(node.status?.nodeInfo?.containerRuntimeVersion ?? '', /^containerd:\/\/2\.4\.2/);
    const namespace = await f.namespace('node');
    const name = await createPod(f.core, namespace, PAUSE_IMAGE, { pullPolicy: 'Never' });
    const pod = await waitRunning(f.core, namespace, name);
    assert.equal(pod.spec?.nodeName, NODE.name);
    await f.core.deleteNamespace({ name: namespace });
  });

  it('leaves no process, mount, cgroup, netns or interface behind when stopped', async function () {
    this.timeout(120_000);
    const node = await TestNode.start({
      plane: cluster.controlPlane,
      identity: SPARE_NODE,
      log: () => {},
    });
    try {
      const pod = {
        metadata: { name: 'pause', namespace: 'default' },
        spec: {
          nodeName: SPARE_NODE.name,
          hostNetwork: true,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 1,
          tolerations: [{ operator: 'Exists' }],
          containers: [{ name: 'app', image: PAUSE_IMAGE, imagePullPolicy: 'Never' }],
        },
      };
      await f.core.createNamespacedPod({ namespace: 'default', body: pod });
      await waitRunning(f.core, 'default', 'pause');
      const pids = node.pids();
      // kubelet, containerd, a shim, and the sandbox's and the container's pause processes.
      assert.ok(pids.length >= 5, `the node runs its processes: ${pids.join(', ')}`);
      const running = node.describe();
      assert.ok(hostSnapshotFor(running).cgroups.length > 0, 'the Pod has cgroups');
      assert.ok(hostSnapshotFor(running).mounts.length > 0, 'the Pod has mounts');
      await node.stop();
      assert.deepEqual(hostSnapshotFor(running), NOTHING);
      assert.deepEqual(node.leftovers(), NOTHING);
      assert.deepEqual(pids.filter(alive), []);
      assert.equal(existsSync(node.dir), false, `${node.dir} was removed`);
    } finally {
      await node.stop();
      await f.core
        .deleteNamespacedPod({ namespace: 'default', name: 'pause', gracePeriodSeconds: 0 })
        .catch(() => {});
      await f.core.deleteNode({ name: SPARE_NODE.name }).catch(() => {});
    }
  });

  it('leaves nothing behind when it fails to start', async function () {
    this.timeout(120_000);
    const nodeFolders = () =>
      readdirSync('/tmp').filter((entry) => entry.startsWith('regcred-node-'));
    const before = nodeFolders();
    const failing = TestNode.start({
      plane: cluster.controlPlane,
      identity: SPARE_NODE,
      featureGates: { NoSuchFeatureGate: true },
      log: () => {},
    });
    await assert.rejects(failing, /kubelet exited/);
    assert.deepEqual(
      nodeFolders().filter((entry) => !before.includes(entry)),
      [],
      'no node folder is left',
    );
    const kubelets = readdirSync('/proc').filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(SPARE_NODE.name);
      } catch {
        return false;
      }
    });
    assert.deepEqual(kubelets, [], 'no process of that node is left');
    await f.core.deleteNode({ name: SPARE_NODE.name }).catch(() => {});
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`leaves nothing behind when its process gets ${signal}`, async function () {
      this.timeout(180_000);
      const script = join(import.meta.dirname, '..', '..', 'scripts', 'node.ts');
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'ignore'] });
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const line = await new Promise<string>((resolveLine, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolveLine(out.split('\n')[0] ?? '');
        });
        child.on('exit', () =>
          reject(new Error(`scripts/node.ts exited before it was ready: ${out}`)),
        );
      });
      const info = JSON.parse(line) as NodeDescription & { pids: number[]; planePids: number[] };
      assert.ok(info.pids.length >= 5, `the node runs its processes: ${info.pids.join(', ')}`);
      assert.ok(hostSnapshotFor(info).mounts.length > 0, 'the Pod has mounts');
      child.kill(signal);
      assert.equal(await exited, signal === 'SIGINT' ? 130 : 143);
      assert.deepEqual(hostSnapshotFor(info), NOTHING);
      // With what each still running is (its /proc stat line: name and state), to tell a
      // process left behind from one still being torn down.
      assert.deepEqual(
        [...info.pids, ...info.planePids].filter(alive).map(procStat),
        [],
        'a process of the node or its plane outlived the script',
      );
      assert.equal(existsSync(info.dir), false, `${info.dir} was removed`);
    });
  }
});

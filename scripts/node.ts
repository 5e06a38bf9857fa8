// Starts a bare local control plane and a real node (kubelet + containerd) joined to it, runs one
// Pod from the node's local pause image, and prints one JSON line (the node's pids, folder,
// container ids, and what the host had before); stops everything on SIGINT or SIGTERM. For debugging a
// node, and for the node harness's own teardown test.
import { startControlPlane } from '../test/support/controlplane.ts';
import {
  NODE_API_SERVER_FLAGS,
  nodeIdentity,
  PAUSE_IMAGE,
  TestNode,
} from '../test/support/node.ts';
import { waitUntil } from '../test/support/wait.ts';

const log = (line: string) => process.stderr.write(`${line}\n`);
const identity = nodeIdentity();
const plane = await startControlPlane({
  log,
  apiServerFlags: NODE_API_SERVER_FLAGS,
  tokens: [identity.staticToken],
  controllerManager: true,
});
const node = await TestNode.start({ plane, identity, log });
const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'pause', namespace: 'default' },
  spec: {
    nodeName: node.name,
    hostNetwork: true,
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: 1,
    tolerations: [{ operator: 'Exists' }],
    containers: [{ name: 'pause', image: PAUSE_IMAGE, imagePullPolicy: 'Never' }],
  },
};
const created = await plane.kubectl(['create', '-f', '-'], { input: JSON.stringify(pod) });
if (created.code !== 0) throw new Error(`kubectl create pod: ${created.stderr}`);
await waitUntil(
  'the Pod to be Running',
  async () =>
    (await plane.kubectl(['get', 'pod', 'pause', '-o', 'jsonpath={.status.phase}'])).stdout ===
    'Running',
  { timeoutMs: 60_000, intervalMs: 200 },
);
process.stdout.write(
  `${JSON.stringify({ ...node.describe(), pids: node.pids(), planePids: plane.pids() })}\n`,
);
// The harnesses stop the node and the plane and exit on SIGINT/SIGTERM; keep the loop alive.
setInterval(() => {}, 1 << 30);

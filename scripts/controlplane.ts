// Starts a bare local control plane and prints one JSON line (kubeconfig, kubectl, pids, dir);
// stops it on SIGINT or SIGTERM. For debugging, and for the harness's own teardown test.
import { join } from 'node:path';
import { startControlPlane } from '../test/support/controlplane.ts';

const plane = await startControlPlane({ log: (line) => process.stderr.write(`${line}\n`) });
process.stdout.write(
  `${JSON.stringify({
    kubeconfig: plane.kubeconfigPath,
    kubectl: join(plane.binDir, 'kubectl'),
    server: plane.server,
    pids: plane.pids(),
    dir: plane.dir,
  })}\n`,
);
// The harness stops the plane and exits on SIGINT/SIGTERM; keep the event loop alive till then.
setInterval(() => {}, 1 << 30);

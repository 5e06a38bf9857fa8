// Root hooks the e2e suite runs before the integration suite's (control plane and operator):
// provisions what the suite runs (the registry, crane, the node's kubelet, containerd and runc;
// warm, a check of files), failing at once, with the command to run, where it cannot; and shapes
// the control plane the integration hooks start next for a real node: Node authorization,
// NodeRestriction, the node's token, and the Deployment and ReplicaSet controllers.
// The node itself starts on first use (e2eNode()) and stops before the control plane does.
import { cluster } from '../integration/hooks.ts';
import { CONTROLLERS, controlPlaneDefaults } from '../support/controlplane.ts';
import { NODE_API_SERVER_FLAGS, nodeIdentity, TestNode } from '../support/node.ts';
import { provision } from '../support/provision.ts';

/** The suite's node: its name is what Pods put in spec.nodeName (no scheduler runs). */
export const NODE = nodeIdentity('regcred-e2e-node');
/** A second node identity, for tests that start and stop a node of their own. */
export const SPARE_NODE = nodeIdentity('regcred-e2e-spare');

let node: Promise<TestNode> | undefined;

/** The suite's node, started on first use against the suite's control plane. */
export function e2eNode(): Promise<TestNode> {
  node ??= TestNode.start({ plane: cluster.controlPlane, identity: NODE });
  return node;
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    // The first run on a machine builds everything: that can take many minutes.
    this.timeout(60 * 60 * 1000);
    await provision(['e2e']);
    controlPlaneDefaults.apiServerFlags = [...NODE_API_SERVER_FLAGS];
    controlPlaneDefaults.tokens = [NODE.staticToken, SPARE_NODE.staticToken];
    controlPlaneDefaults.controllers = [
      ...CONTROLLERS,
      'deployment-controller',
      'replicaset-controller',
    ];
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(300_000);
    const started = await node?.catch(() => undefined);
    await started?.stop();
  },
};

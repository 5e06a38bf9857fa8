// Root hooks the e2e suite runs before the integration suite's (control plane and operator):
// provisions what the suite runs (the registry, crane, and the node's kubelet, containerd and
// runc; warm, a check of files), failing at once, with the command to run, where it cannot.
import { provision } from '../support/provision.ts';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    // The first run on a machine builds everything: that can take many minutes.
    this.timeout(60 * 60 * 1000);
    await provision(['e2e']);
  },
};

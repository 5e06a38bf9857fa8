// Root hooks the e2e suite runs before the integration suite's (control plane and operator):
// without the registry tools nothing can pass, so fail at once with the command that installs them.
import { assertE2eToolsInstalled } from '../support/registry.ts';

export const mochaHooks = {
  beforeAll(): void {
    assertE2eToolsInstalled();
  },
};

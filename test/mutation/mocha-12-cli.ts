// Preloaded (NODE_OPTIONS=--import) into Stryker and its test-runner workers by
// `npm run test:mutation`. @stryker-mutator/mocha-runner 10.1.1 requires Mocha's CLI internals
// without an extension (`mocha/lib/cli/run-helpers`, `options`, `collect-files`); Mocha 12 ships
// them as `.cjs`, so the plugin fails to load. This resolves exactly those three to their `.cjs`
// files and leaves every other specifier alone. Remove it once the runner resolves them itself
// (stryker-mutator/stryker-js#6205).
import { registerHooks } from 'node:module';

const MOCHA_CLI_INTERNAL = /[\\/]mocha[\\/]lib[\\/]cli[\\/](?:run-helpers|options|collect-files)$/;

registerHooks({
  resolve(specifier, context, nextResolve) {
    return nextResolve(
      MOCHA_CLI_INTERNAL.test(specifier) ? `${specifier}.cjs` : specifier,
      context,
    );
  },
});

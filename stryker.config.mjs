// Mutation testing of the decision logic (issue 22): `npm run test:mutation`. The report is
// written to reports/mutation/ (git-ignored); the run fails below the `break` score.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'mocha',
  // Mocha 12's CLI internals for the runner plugin (see the file); the npm script preloads it
  // into Stryker itself.
  testRunnerNodeArgs: ['--import', './test/mutation/mocha-12-cli.ts'],
  mochaOptions: {
    config: '.mocharc.unit.json',
    spec: ['test/unit/**/*.test.ts'],
    // These two measure wall-clock time (the API server hang, the lease's renew deadline) and
    // fail the dry run on a loaded machine. Neither imports a mutated file, directly or through
    // another module (src/kube/{api-probe,leader-election,api,rest,informer,list-watch}.ts,
    // src/clock.ts, src/observability/*), so no mutant's status can depend on them; `npm run
    // test:unit` still runs them.
    ignore: ['test/unit/api-probe.test.ts', 'test/unit/leader-election.test.ts'],
  },
  // Only the tests that cover a mutant run against it.
  coverageAnalysis: 'perTest',
  mutate: [
    'src/controller/selection.ts',
    'src/controller/desired.ts',
    'src/controller/ownership.ts',
    'src/controller/pull-secret-entries.ts',
    'src/controller/event-mapping.ts',
    'src/api/status.ts',
    'src/api/conditions.ts',
    'src/api/duration.ts',
    'src/credentials/dockerconfigjson.ts',
    'src/credentials/registry-keys.ts',
    'src/controller/workqueue.ts',
    'src/controller/rate-limiter.ts',
    'src/credentials/token-cache.ts',
    'src/credentials/kubelet-keyring.ts',
  ],
  // tsconfig.json stays out of the sandbox: Node strips the types and nothing compiles, and
  // Stryker's tsconfig rewriting needs TypeScript 5's JavaScript API, which TypeScript 7 lacks.
  ignorePatterns: ['tsconfig.json', 'dist', 'coverage', 'reports', 'bench/results', '.dev'],
  // Only mutants in changed code (or covered by changed tests) run again; delete the file for a
  // full run, or pass --force.
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  concurrency: 2,
  timeoutMS: 10000,
  thresholds: { high: 90, low: 85, break: 85 },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};

// Loaded by every mocha suite (`require` in .mocharc.*.json). Mocha runs without `--exit`, so a
// timer, socket or child a test leaves behind keeps the process alive after the last test, and
// a CI run then waits for its own time limit. Once the run is over, this gives the process 30 s
// to end by itself; if it has not, it names what still holds it and exits with a failure (a
// leak is a defect, not something to wait out).
const GRACE_MS = 30_000;

export function mochaGlobalTeardown(): void {
  setTimeout(() => {
    const held = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    process.stderr.write(
      `mocha: the run ended ${GRACE_MS / 1000} s ago and the process is still held by: ${held.join(', ') || 'nothing named'}; exiting with a failure\n`,
    );
    // Mocha sets the exit code to its failure count in an 'exit' listener; this one runs after it.
    process.on('exit', () => {
      process.exitCode = Number(process.exitCode) || 1;
    });
    process.exit(1);
  }, GRACE_MS).unref();
}

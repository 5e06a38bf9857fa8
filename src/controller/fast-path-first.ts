// New namespaces before rotations: while the fast path has namespaces waiting for a worker (a
// burst of new namespaces or ServiceAccounts whose Pods wait for their first pull Secret),
// the full reconciles' fan-outs (a rotation rewriting every Secret, a status reconcile
// catching up) start at most `floor` namespace syncs at once between them, so the API
// server's capacity goes to the namespaces that have nothing yet, not to the ones whose Secret
// still works until its token expires. Without it, the fast path's 16 workers shared one API
// server with a rotation's 16 writes in flight and the other credentials' fan-outs: during a
// rotation of 10,000, 500 new namespaces whose ServiceAccounts appeared within seconds waited
// 0.6 s (p50) to 1.25 s (p99) for their entry (issue #20, scenario 3). Only a backlog slows the
// fan-outs: the fast path keeping up with a steady trickle (nothing waiting) costs them nothing,
// and they never stop (`floor` syncs keep going, so a rotation always progresses).

export class FastPathFirst {
  readonly #backlog: () => number;
  readonly #floor: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  /**
   * `backlog`: the fast path's namespaces waiting for a worker (0 once it is shutting down).
   * `floor`: fan-out syncs allowed at once while there is a backlog.
   */
  constructor(backlog: () => number, floor = 2) {
    this.#backlog = backlog;
    this.#floor = Math.max(1, floor);
  }

  /** Resolves when a fan-out may sync its next namespace; call the function it returns after. */
  async turn(): Promise<() => void> {
    while (this.#running >= this.#floor && this.#backlog() > 0) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.#running++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#running--;
      this.changed();
    };
  }

  /** The backlog may have shrunk (a worker took a namespace, the queue shut down). */
  changed(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }

  /** Fan-out syncs running now (tests). */
  get running(): number {
    return this.#running;
  }

  /** Fan-out syncs waiting for their turn (tests). */
  get waiting(): number {
    return this.#waiting.length;
  }
}

// Conditions and events, node-problem-detector's split: a condition has a status that is
// remembered; an event is due only when that status changes. Callers decide what a transition
// means (first sight may or may not be news); this holds the memory and finds the changes.

export interface Transition<K, S> {
  readonly key: K;
  /** undefined: first sight of this condition. */
  readonly before: S | undefined;
  /** undefined: the condition is gone (see update()). */
  readonly after: S | undefined;
}

export class Conditions<K, S> {
  private readonly status = new Map<K, S>();

  constructor(private readonly same: (a: S, b: S) => boolean = (a, b) => a === b) {}

  /** Sets one condition's status: its transition when it differs from the remembered one, else null. */
  set(key: K, status: S): Transition<K, S> | null {
    const before = this.status.get(key);
    this.status.set(key, status);
    return before !== undefined && this.same(before, status)
      ? null
      : { key, before, after: status };
  }

  /**
   * Sets a whole group at once: the transitions of the given conditions (in their order), then
   * those remembered but absent now, which are forgotten (after: undefined).
   */
  update(current: ReadonlyMap<K, S>): Array<Transition<K, S>> {
    const out: Array<Transition<K, S>> = [];
    for (const [key, status] of current) {
      const t = this.set(key, status);
      if (t) out.push(t);
    }
    for (const [key, before] of this.status)
      if (!current.has(key)) {
        this.status.delete(key);
        out.push({ key, before, after: undefined });
      }
    return out;
  }

  get(key: K): S | undefined {
    return this.status.get(key);
  }

  delete(key: K): void {
    this.status.delete(key);
  }
}

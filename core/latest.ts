// The latest observation of each collector, typed by a map from collector name to observation
// type (the app instantiates it with collectors/observations.ts), so readers need no casts.

export interface Observed<O> {
  /** Wall-clock ms when the observation was taken. */
  readonly at: number;
  readonly observation: O;
}

/** What readers (status, diagnose, remediators) get: lookups by name, typed by the map. */
export interface LatestView<M> {
  get<K extends keyof M>(name: K): Observed<M[K]> | undefined;
}

export class Latest<M> implements LatestView<M> {
  private readonly map = new Map<keyof M, Observed<unknown>>();

  set<K extends keyof M>(name: K, observation: M[K], at = Date.now()): void {
    this.map.set(name, { at, observation });
  }

  get<K extends keyof M>(name: K): Observed<M[K]> | undefined {
    // Sound by construction: set() stores only M[K] under K.
    return this.map.get(name) as Observed<M[K]> | undefined;
  }

  delete(name: keyof M): void {
    this.map.delete(name);
  }
}

// The store interface with every method asynchronous: what a networked store can offer.
import type { Store } from '../types.ts';

export type AsyncStore = { [K in keyof Store]: Store[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<Awaited<R>> : never };

// A small typed event emitter: `on(type, listener)` returns the function that removes
// the listener. Listeners that throw do not stop the others; the exception is reported
// asynchronously so it still shows up in the console.

/** Subscribes to typed events. `E` maps each event name to its value's type. */
export class Emitter<E> {
  #listeners = new Map<keyof E, Set<(value: never) => void>>();

  /** Calls `listener` on every `type` event; returns a function that unsubscribes. */
  on<K extends keyof E>(type: K, listener: (value: E[K]) => void): () => void {
    let set = this.#listeners.get(type);
    if (!set) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener as (value: never) => void);
    return () => this.off(type, listener);
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof E>(type: K, listener: (value: E[K]) => void): void {
    this.#listeners.get(type)?.delete(listener as (value: never) => void);
  }

  /** Resolves with the value of the next `type` event. */
  once<K extends keyof E>(type: K): Promise<E[K]> {
    return new Promise((resolve) => {
      const off = this.on(type, (value) => {
        off();
        resolve(value);
      });
    });
  }

  /** Calls every listener of `type` with `value`. */
  protected emit<K extends keyof E>(type: K, value: E[K]): void {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        (listener as (value: E[K]) => void)(value);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  }
}

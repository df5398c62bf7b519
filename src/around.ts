/** Runs a call inside something: a held lock, a rate-limit check. */
export type Around = <T>(call: () => T | Promise<T>) => Promise<T>;

/**
 * Make `around` usable the two ways locks and rate limits are: as a wrapper,
 * `around(fn)`, which keeps `fn`'s name (task names come from it), and as a
 * method decorator, which wraps the method in place (keeping `this`).
 */
export function wrapperAndDecorator(around: Around): (...params: unknown[]) => any {
  function wrap(...params: unknown[]): any {
    if (params.length === 1) {
      const fn = params[0] as (...args: unknown[]) => unknown;
      const wrapped = function (this: unknown, ...args: unknown[]) {
        return around(() => fn.apply(this, args));
      };
      return Object.defineProperty(wrapped, 'name', { value: fn.name });
    }
    const descriptor = params[2] as PropertyDescriptor;
    descriptor.value = wrap(descriptor.value);
    return descriptor;
  }
  return wrap;
}

// Job arguments travel as JSON (Resque's payload): anything JSON would change or drop
// (undefined, functions, Dates, Maps, class instances, NaN, BigInt, cycles) is refused at
// enqueue with a TypeError that names the argument, rather than arriving altered.
export function assertJsonArgs(name: string, args: unknown): asserts args is unknown[] {
  if (!Array.isArray(args)) throw new TypeError(`enqueue(${JSON.stringify(name)}, args): args must be an array, got ${describe(args)}`);
  const seen = new Set<object>();
  const visit = (v: unknown, path: string): void => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw notJson(name, path, `${v}`);
      return;
    }
    if (typeof v !== 'object') throw notJson(name, path, describe(v));
    if (seen.has(v)) throw notJson(name, path, 'a circular reference');
    seen.add(v);
    if (Array.isArray(v)) v.forEach((x, i) => visit(x, `${path}[${i}]`));
    else {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw notJson(name, path, `a ${proto?.constructor?.name ?? 'non-plain'} object`);
      for (const [k, x] of Object.entries(v)) visit(x, `${path}${/^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`}`);
    }
    seen.delete(v);
  };
  args.forEach((a, i) => visit(a, `args[${i}]`));
}

function notJson(name: string, path: string, what: string): TypeError {
  return new TypeError(`enqueue(${JSON.stringify(name)}): ${path} is ${what}, which is not JSON (job arguments must be JSON values)`);
}

export function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'bigint') return `a BigInt (${v}n)`;
  if (typeof v === 'symbol') return 'a symbol';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

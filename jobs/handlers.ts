// Finding a job's handler in the jobs module, in the shapes people write: named function
// exports, a default-exported object of functions, or classes with a static perform
// (Resque's shape: Resque calls Archive.perform(*args)).
type Handler = (...args: unknown[]) => unknown;

export class UnknownJobError extends Error {
  constructor(name: string, known: string[]) {
    super(`no handler for job ${JSON.stringify(name)} in the jobs module (it has: ${known.length ? known.join(', ') : 'none'})`);
    this.name = 'UnknownJobError';
  }
}

function asHandler(v: unknown): Handler | null {
  if (typeof v !== 'function') return null;
  const perform = (v as { perform?: unknown }).perform;
  if (typeof perform === 'function') return (...args) => (perform as Handler).apply(v, args);
  // A class without a static perform is not callable as a handler.
  if (/^class\b/.test(Function.prototype.toString.call(v))) return null;
  return v as Handler;
}

export class Handlers {
  private readonly table = new Map<string, Handler>();

  constructor(mod: Record<string, unknown>) {
    const def = mod.default;
    if (def && typeof def === 'object') {
      for (const [k, v] of Object.entries(def)) {
        const h = asHandler(v);
        if (h) this.table.set(k, h);
      }
    } else if (typeof def === 'function') {
      const h = asHandler(def);
      if (h && def.name) this.table.set(def.name, h);
    }
    for (const [k, v] of Object.entries(mod)) {
      if (k === 'default') continue;
      const h = asHandler(v);
      if (h) this.table.set(k, h);
    }
  }

  names(): string[] {
    return [...this.table.keys()].sort();
  }

  get(name: string): Handler {
    const h = this.table.get(name);
    if (!h) throw new UnknownJobError(name, this.names());
    return h;
  }
}

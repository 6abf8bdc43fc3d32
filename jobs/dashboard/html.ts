// HTML building for the dashboard: a tagged template that escapes every interpolated value
// unless it is already markup, so a job name, argument or error from the store can only
// ever become text, never a tag or an attribute.

/** Markup that is already safe (built by `html` or `raw`); interpolated as is. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML text and for double- or single-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** Trusted markup, for constants of our own only. */
export const raw = (text: string): Html => new Html(text);

type Part = Html | string | number | boolean | null | undefined | Part[];

function render(part: Part): string {
  if (part === null || part === undefined || part === false) return '';
  if (part instanceof Html) return part.text;
  if (Array.isArray(part)) return part.map(render).join('');
  return escapeHtml(part);
}

/** `html\`<td>${name}</td>\``: strings are escaped, Html and arrays of Html are kept. */
export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return new Html(out);
}

/** A JSON text shortened for a table cell; the whole of it is on the job's page. */
export function shortJson(value: unknown, max = 200): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "4 s", "3 min", "2 h 5 min", "6 d": how long ago (or ahead) a time is, roughly. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 90) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d`;
}

/** A <time> with the ISO instant, shown as how long ago (or in how long) it is. */
export function timeAgo(at: number, now = Date.now()): Html {
  if (!Number.isFinite(at) || at <= 0) return html`<span class="muted">–</span>`;
  const iso = new Date(at).toISOString();
  const text = at <= now ? `${duration(now - at)} ago` : `in ${duration(at - now)}`;
  return html`<time datetime="${iso}" title="${iso}">${text}</time>`;
}

/** Bytes as MiB with one decimal, or a dash when the store does not know. */
export function mib(bytes: number | null | undefined): string {
  return typeof bytes === 'number' && Number.isFinite(bytes) && bytes >= 0 ? `${(bytes / 1048576).toFixed(1)} MiB` : '–';
}

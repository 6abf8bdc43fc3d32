// A "big app" for `unixproc serve`: at module load it builds a fake product catalogue
// of about 200 MB of JS heap (many small objects, strings and arrays, parsed from JSON
// text the way an app loads a data file), plus two indexes over it, and then serves
// small JSON answers that read a little of it. Under `unixproc serve` the master builds
// the catalogue once and every worker shares it copy-on-write; a node:cluster or PM2
// worker builds its own copy.
//
//   unixproc serve demo/big.ts -w 2                  (default export: a request listener)
//   node --max-old-space-size=1024 dist/demo/big.js [port]   (a plain node:http server)
//
// Routes: /product/<n> one product; /search?tag=<tag> the first 10 products with that
// tag; anything else: a few products picked round-robin per process, so that a
// benchmark with one fixed URL still walks through the catalogue.
// Env: BIG_APP_PRODUCTS (default 300000) sizes the catalogue.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';

interface Product {
  id: number;
  sku: string;
  name: string;
  brand: string;
  category: string;
  description: string;
  price: number;
  currency: string;
  stock: number;
  rating: number;
  tags: string[];
  attributes: Record<string, string>;
  related: number[];
}

const loadStart = process.hrtime.bigint();
const COUNT = Number(process.env.BIG_APP_PRODUCTS ?? 300_000);

// A deterministic generator: every process (master, cluster worker, PM2 worker) builds
// exactly the same catalogue.
let seed = 0x9e3779b9;
function rand(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 0x1_0000_0000;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'qu', 'ba', 'do', 'fe', 'gi', 'ho', 'ju', 'pa', 'xi'];
const word = (n: number): string => Array.from({ length: n }, () => pick(SYLLABLES)).join('');
const WORDS = Array.from({ length: 4000 }, () => word(2 + Math.floor(rand() * 3)));
const BRANDS = Array.from({ length: 300 }, () => word(3));
const CATEGORIES = Array.from({ length: 120 }, () => `${word(2)}/${word(3)}`);
const TAGS = Array.from({ length: 500 }, () => word(2));
const COLOURS = ['red', 'green', 'blue', 'black', 'white', 'grey', 'teal', 'amber'];
const SIZES = ['XS', 'S', 'M', 'L', 'XL'];
const sentence = (n: number): string => Array.from({ length: n }, () => pick(WORDS)).join(' ');

function productJson(id: number): string {
  const p: Product = {
    id,
    sku: `SKU-${id.toString(36).toUpperCase().padStart(6, '0')}-${Math.floor(rand() * 1e6)}`,
    name: `${pick(WORDS)} ${pick(WORDS)} ${pick(WORDS)}`,
    brand: pick(BRANDS),
    category: pick(CATEGORIES),
    description: sentence(12 + Math.floor(rand() * 20)),
    price: Math.round(rand() * 100_000) / 100,
    currency: 'EUR',
    stock: Math.floor(rand() * 500),
    rating: Math.round(rand() * 50) / 10,
    tags: Array.from({ length: 2 + Math.floor(rand() * 5) }, () => pick(TAGS)),
    attributes: { colour: pick(COLOURS), size: pick(SIZES), material: pick(WORDS), origin: pick(WORDS) },
    related: Array.from({ length: 4 }, () => Math.floor(rand() * COUNT)),
  };
  return JSON.stringify(p);
}

// Parsed from JSON text in chunks, as a catalogue read from a file would be: flat strings
// and fresh objects, nothing left for a worker to flatten or rewrite on first use.
const catalogue: Product[] = [];
const CHUNK = 2000;
for (let start = 0; start < COUNT; start += CHUNK) {
  const parts: string[] = [];
  for (let id = start; id < Math.min(COUNT, start + CHUNK); id++) parts.push(productJson(id));
  for (const p of JSON.parse(`[${parts.join(',')}]`) as Product[]) catalogue.push(p);
}
const bySku = new Map<string, Product>(catalogue.map((p) => [p.sku, p]));
const byTag = new Map<string, number[]>();
for (const p of catalogue) {
  for (const t of p.tags) {
    let ids = byTag.get(t);
    if (!ids) byTag.set(t, (ids = []));
    ids.push(p.id);
  }
}

export const loadStats = {
  products: catalogue.length,
  skus: bySku.size,
  tags: byTag.size,
  heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 1048576),
  loadMs: Math.round(Number(process.hrtime.bigint() - loadStart) / 1e6),
  loadedBy: process.pid,
};

const summary = (p: Product) => ({ id: p.id, sku: p.sku, name: p.name, price: p.price, rating: p.rating });
let cursor = 0;

function send(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

export default function big(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const [path, query = ''] = url.split('?', 2) as [string, string?];
  if (path.startsWith('/product/')) {
    const p = catalogue[Number(path.slice(9))];
    if (!p) return send(res, 404, { pid: process.pid, error: 'no such product' });
    return send(res, 200, { pid: process.pid, product: p, related: p.related.map((id) => summary(catalogue[id]!)) });
  }
  if (path === '/search') {
    const tag = new URLSearchParams(query).get('tag') ?? '';
    const ids = byTag.get(tag) ?? [];
    return send(res, 200, { pid: process.pid, tag, total: ids.length, items: ids.slice(0, 10).map((id) => summary(catalogue[id]!)) });
  }
  // A few products spread over the whole catalogue, a different few each time.
  cursor = (cursor + 7919) % catalogue.length;
  const items = [0, 1, 2, 3].map((k) => summary(catalogue[(cursor + k * 75_011) % catalogue.length]!));
  send(res, 200, { pid: process.pid, loadedBy: loadStats.loadedBy, products: catalogue.length, items });
}

// Run directly, it is its own plain node:http server.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
  http.createServer(big).listen(port, '127.0.0.1', () => {
    process.stderr.write(`${JSON.stringify({ event: 'big.listening', port, ...loadStats })}\n`);
  });
}

// The HTTP paths of the public protocol, paced to stay within its per-IP rate limits
// (PROTOCOL section 4): a request over a limit waits for its turn instead of being refused,
// and a 429 all the same (another tab, another client on this IP) waits Retry-After.

export const LIMITS = { quote: 3, kline: 5, category: 2, symbols: 2 };
export const KLINE_WINDOW = { '1m': 600, '5m': 300, '15m': 300, '30m': 300, '1h': 300,
  '1d': 300, '1M': 100 };
export const SYMBOL_PAGE_SIZE = 100;

const WINDOW_MS = 1000;
const MARGIN_MS = 60;
const TRIES = 5;
const TIMEOUT_MS = 15000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** At most `limit` starts per key in any second, as the server counts them. */
class Pacer {
  constructor() {
    this.starts = new Map();
  }

  async turn(key, limit) {
    for (;;) {
      const now = performance.now();
      const recent = (this.starts.get(key) ?? []).filter((t) => now - t < WINDOW_MS + MARGIN_MS);
      if (recent.length < limit) {
        recent.push(now);
        this.starts.set(key, recent);
        return;
      }
      this.starts.set(key, recent);
      await sleep(WINDOW_MS + MARGIN_MS - (now - recent[0]));
    }
  }
}

export class Api {
  constructor(base) {
    this.base = base;
    this.pacer = new Pacer();
  }

  async get(path, params, key, limit) {
    const url = new URL(path, this.base);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    for (let attempt = 1; ; attempt++) {
      await this.pacer.turn(key, limit);
      const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
      const body = await response.json().catch(() => null);
      if (response.ok) return body;
      const message = body?.msg ?? `${response.status} ${response.statusText}`;
      if (response.status !== 429 || attempt >= TRIES) throw new ApiError(response.status, message);
      await sleep(1000 * Math.max(1, Number(response.headers.get('Retry-After')) || 1));
    }
  }

  /** `[{id, name}]`. */
  async categories() {
    const body = await this.get('getCategory.php', {}, 'category', LIMITS.category);
    return body.data.list;
  }

  /** Every product of a category, `[{code, name}]`, a page of 100 at a time. */
  async symbols(category) {
    const products = [];
    for (let page = 1; ; page++) {
      const body = await this.get('getSymbolList.php',
        { category, page, pageSize: SYMBOL_PAGE_SIZE }, 'symbols', LIMITS.symbols);
      const { total, list } = body.data;
      products.push(...list);
      if (list.length === 0 || products.length >= total) return products;
    }
  }

  /** K-line rows as the server sends them, `[open_ms, o, h, l, c, "time", volume]`;
   * with `endMs`, those opening at or before it. */
  async klines(code, interval, rows, endMs = null) {
    const params = { code, time: interval, rows };
    if (endMs !== null) params.end = endMs;
    return this.get('redis.php', params, `kline|${code}`, LIMITS.kline);
  }
}

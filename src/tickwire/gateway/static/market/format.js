// How numbers and times are shown. Quotes carry no precision, so each product's is learnt
// from the decimals of the prices it has sent (a price is sent at its product's precision).

const NONE = '—';
const PRICE_KEYS = ['Price', 'Open', 'High', 'Low', 'LastClose', 'BP1', 'SP1'];
const MAX_DECIMALS = 10;

export function decimalsOf(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return 0;
  const text = String(x);
  const exp = text.indexOf('e-');
  if (exp >= 0) return Math.min(MAX_DECIMALS, Number(text.slice(exp + 2)) +
    Math.max(0, text.slice(0, exp).split('.')[1]?.length ?? 0));
  const dot = text.indexOf('.');
  return dot < 0 ? 0 : Math.min(MAX_DECIMALS, text.length - dot - 1);
}

const precisions = new Map();

/** The most decimals seen in any price of this product so far (its precision). */
export function precisionOf(quote) {
  let seen = precisions.get(quote.StockCode) ?? 0;
  for (const key of PRICE_KEYS) seen = Math.max(seen, decimalsOf(quote[key]));
  precisions.set(quote.StockCode, seen);
  return seen;
}

export function precisionFor(code) {
  return precisions.get(code) ?? 2;
}

const fixedFormats = new Map();

export function fixed(x, decimals) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return NONE;
  let format = fixedFormats.get(decimals);
  if (!format) {
    format = new Intl.NumberFormat('en-US',
      { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    fixedFormats.set(decimals, format);
  }
  return format.format(x);
}

export function signed(x, decimals) {
  const text = fixed(x, decimals);
  return typeof x === 'number' && x > 0 ? `+${text}` : text;
}

export function percent(x) {
  return typeof x === 'number' && Number.isFinite(x) ? `${signed(x, 2)}%` : NONE;
}

const compactFormat = new Intl.NumberFormat('en-US',
  { notation: 'compact', maximumFractionDigits: 2 });

export function compact(x) {
  return typeof x === 'number' && Number.isFinite(x) ? compactFormat.format(x) : NONE;
}

/** `HH:MM:SS` of a quote's `Time` (`YYYY-MM-DD HH:MM:SS`, the service's time zone). */
export function clock(time) {
  return typeof time === 'string' && time.length >= 19 ? time.slice(11, 19) : NONE;
}

/** 'up', 'down' or '' for the sign of a change. */
export function direction(x) {
  return typeof x !== 'number' || x === 0 ? '' : x > 0 ? 'up' : 'down';
}

const sizeFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 6 });

/** A trade or book size: in full below 100,000 (crypto sizes have many decimals). */
export function size(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return NONE;
  return Math.abs(x) >= 1e5 ? compact(x) : sizeFormat.format(x);
}

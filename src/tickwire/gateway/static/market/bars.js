// K-line bars as the chart holds them, from redis.php's rows and from pushes. Pure.

const INTERVAL_MS = { '1m': 60e3, '5m': 300e3, '15m': 900e3, '30m': 1800e3, '1h': 3600e3,
  '1d': 86400e3 };

/** The service time zone's offset from UTC in ms: its wall-clock `text`
 * (`YYYY-MM-DD HH:MM:SS`) minus the same instant `ms`. */
export function offsetMs(text, ms) {
  const [y, mo, d, h, mi, s] = text.split(/[- :]/).map(Number);
  return Date.UTC(y, mo - 1, d, h, mi, s) - ms;
}

/** Open time (Unix ms) of the `interval` bar holding `ms`, bars aligned to a zone `offset`
 * ms from UTC (PROTOCOL section 6: an hour on the hour, a day at 00:00, a month on the 1st). */
export function barOpen(ms, interval, offset) {
  const local = ms + offset;
  if (interval === '1M') {
    const day = new Date(local);
    return Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), 1) - offset;
  }
  const step = INTERVAL_MS[interval];
  return Math.floor(local / step) * step - offset;
}

/** `[open_ms, o, h, l, c, "time", volume]` as a bar. */
export function fromRow(row) {
  return { openMs: row[0], open: row[1], high: row[2], low: row[3], close: row[4],
    volume: row[6], offset: offsetMs(row[5], row[0]) };
}

/** redis.php's rows in either order (the server's `kline_order`) as bars, oldest first. */
export function barsOf(rows) {
  return rows.map(fromRow).sort((a, b) => a.openMs - b.openMs);
}

/** The bars with those of `fresh` in place of the same open time, in time order. */
export function merge(bars, fresh) {
  const byOpen = new Map(bars.map((bar) => [bar.openMs, bar]));
  for (const bar of fresh) byOpen.set(bar.openMs, bar);
  return [...byOpen.values()].sort((a, b) => a.openMs - b.openMs);
}

// The product's candlestick chart with its volume: history from redis.php, older pages as
// the view scrolls left (`end=`), the forming bar moved by every push and, a moment after
// each bar ends, the server's own bar put in place of the one drawn from pushes.

import { CandlestickSeries, HistogramSeries, createChart }
  from './vendor/lightweight-charts.standalone.production.mjs';
import { KLINE_WINDOW } from './api.js';
import { barOpen, barsOf, merge, offsetMs } from './bars.js';
import { setText } from './dom.js';
import { fixed, precisionFor } from './format.js';
import { colors, onThemeChange } from './theme.js';

export const INTERVALS = Object.keys(KLINE_WINDOW);
const EDGE_BARS = 10;          // this close to the oldest bar, the page before is fetched
const SETTLE_MS = 2500;        // after a bar ends, when the server's own is fetched
const SETTLE_ROWS = 3;

function chartOptions(c) {
  return {
    autoSize: true,
    layout: { attributionLogo: false, background: { color: c.bg }, textColor: c.muted,
      fontFamily: c.font },
    grid: { vertLines: { color: c.line }, horzLines: { color: c.line } },
    rightPriceScale: { borderColor: c.line },
    timeScale: { borderColor: c.line, timeVisible: true, secondsVisible: false },
  };
}

function candleOptions(c) {
  return { upColor: c.up, downColor: c.down, wickUpColor: c.up, wickDownColor: c.down,
    borderVisible: false };
}

export class PriceChart {
  constructor(container, note, api, pageRows) {
    this.api = api;
    this.note = note;
    this.pageRows = pageRows;
    this.bars = [];
    this.generation = 0;
    const c = colors();
    this.chart = createChart(container, chartOptions(c));
    this.candles = this.chart.addSeries(CandlestickSeries, candleOptions(c));
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
    this.volume = this.chart.addSeries(HistogramSeries, { priceScaleId: 'volume',
      priceFormat: { type: 'volume' }, lastValueVisible: false, priceLineVisible: false });
    this.chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      if (range && range.from < EDGE_BARS) this.older();
    });
    onThemeChange((colours) => {
      this.chart.applyOptions(chartOptions(colours));
      this.candles.applyOptions(candleOptions(colours));
      this.draw();
    });
  }

  rows() {
    return Math.min(this.pageRows, KLINE_WINDOW[this.interval]);
  }

  /** Draws `interval` bars of `code` from the latest window. */
  async load(code, interval) {
    const generation = ++this.generation;
    Object.assign(this, { code, interval, bars: [], offset: null, total: null,
      ready: false, paging: false, exhausted: false });
    clearTimeout(this.settleTimer);
    this.draw();
    setText(this.note, 'Loading…');
    let rows;
    try {
      rows = await this.api.klines(code, interval, this.rows());
    } catch (error) {
      if (generation === this.generation) setText(this.note, `No bars: ${error.message}`);
      return;
    }
    if (generation !== this.generation) return;
    this.bars = barsOf(rows);
    this.offset = this.bars.at(-1)?.offset ?? null;
    this.exhausted = rows.length < this.rows();
    this.ready = true;
    this.setPrecision();
    this.draw();
    this.chart.timeScale().scrollToRealTime();
    this.describe();
  }

  /** The page of bars before the oldest drawn, when the view nears it. */
  async older() {
    if (!this.ready || this.paging || this.exhausted || this.bars.length === 0) return;
    const generation = this.generation;
    const oldest = this.bars[0].openMs;
    this.paging = true;
    let rows;
    try {
      rows = await this.api.klines(this.code, this.interval, this.rows(), oldest - 1);
    } catch {
      if (generation === this.generation) this.paging = false;  // tried again on scroll
      return;
    }
    if (generation !== this.generation) return;
    const before = barsOf(rows).filter((bar) => bar.openMs < oldest);
    this.exhausted = rows.length < this.rows() || before.length === 0;
    this.bars = before.concat(this.bars);
    this.paging = false;
    this.draw();
    this.describe();
  }

  describe() {
    const shown = this.bars.length;
    setText(this.note, shown === 0 ? 'No bars yet.'
      : `${shown} bars${this.exhausted ? ', all there are' : ': scroll left for older'}.`);
  }

  setPrecision() {
    const digits = precisionFor(this.code);
    this.digits = digits;
    this.candles.applyOptions({ priceFormat: { type: 'price', precision: digits,
      minMove: 10 ** -digits } });
    this.chart.applyOptions({ localization: { priceFormatter: (p) => fixed(p, digits) } });
  }

  time(bar) {
    return (bar.openMs + this.offset) / 1000;  // drawn in the service's wall-clock time
  }

  draw() {
    const c = colors();
    this.candles.setData(this.bars.map((bar) => ({ time: this.time(bar), open: bar.open,
      high: bar.high, low: bar.low, close: bar.close })));
    this.volume.setData(this.bars.map((bar) => ({ time: this.time(bar), value: bar.volume,
      color: bar.close >= bar.open ? c['volume-up'] : c['volume-down'] })));
  }

  drawLast() {
    const bar = this.bars.at(-1);
    const c = colors();
    this.candles.update({ time: this.time(bar), open: bar.open, high: bar.high, low: bar.low,
      close: bar.close });
    this.volume.update({ time: this.time(bar), value: bar.volume,
      color: bar.close >= bar.open ? c['volume-up'] : c['volume-down'] });
  }

  /** A push of this chart's product: the forming bar moves, or a new one begins. */
  push(q) {
    if (q.StockCode !== this.code || !this.ready || typeof q.Price !== 'number') return;
    const ms = Number(q.LastTime) * 1000;
    if (!Number.isFinite(ms)) return;
    this.offset ??= offsetMs(q.Time, ms);
    if (precisionFor(this.code) !== this.digits) this.setPrecision();
    const traded = this.total === null || q.TotalVol < this.total ? 0 : q.TotalVol - this.total;
    this.total = q.TotalVol;
    const open = barOpen(ms, this.interval, this.offset);
    const last = this.bars.at(-1);
    if (last && open < last.openMs) return;
    if (last && open === last.openMs) {
      last.high = Math.max(last.high, q.Price);
      last.low = Math.min(last.low, q.Price);
      last.close = q.Price;
      last.volume += traded;
    } else {
      this.bars.push({ openMs: open, open: q.Price, high: q.Price, low: q.Price,
        close: q.Price, volume: traded, offset: this.offset });
      if (last) this.settleSoon();
    }
    this.drawLast();
  }

  /** The bars just ended, as the server has them, in place of those drawn from pushes. */
  settleSoon() {
    clearTimeout(this.settleTimer);
    const generation = this.generation;
    this.settleTimer = setTimeout(async () => {
      let rows;
      try {
        rows = await this.api.klines(this.code, this.interval, SETTLE_ROWS);
      } catch {
        return;
      }
      if (generation !== this.generation) return;
      const fresh = barsOf(rows);
      const forming = this.bars.at(-1);
      const server = fresh.at(-1);
      if (server && forming && server.openMs === forming.openMs) {
        // the server's forming bar so far, with what pushes added since it answered
        server.high = Math.max(server.high, forming.high);
        server.low = Math.min(server.low, forming.low);
        server.close = forming.close;
      }
      this.bars = merge(this.bars, fresh);
      this.draw();
    }, SETTLE_MS);
  }

  /** What is drawn, as redis.php rows without the time string: for the tests. */
  drawn() {
    const volumes = new Map(this.volume.data().map((v) => [v.time, v.value]));
    return this.candles.data().map((bar) => [Math.round(bar.time * 1000 - this.offset),
      bar.open, bar.high, bar.low, bar.close, volumes.get(bar.time)]);
  }
}

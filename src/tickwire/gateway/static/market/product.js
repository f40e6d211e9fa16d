// The product view (`/market#CODE`): price and the day's figures, the chart in seven
// intervals, the depth ladder and the recent trades.

import { INTERVALS, PriceChart } from './chart.js';
import { byId, el, setClass, setText } from './dom.js';
import { clock, compact, direction, fixed, percent, precisionOf, signed, size }
  from './format.js';

const LEVELS = 10;
const TRADES = 20;      // a quote may carry up to 50 recent trades; the newest fit beside the chart
const INTERVAL_KEY = 'tickwire.market.interval';
const INFO_NAMES = { TotalAmount: 'Turnover', LimitUp: 'Limit up', LimitDown: 'Limit down',
  TurnoverRate: 'Turnover rate', QRR: 'Volume ratio', MarketCAP: 'Market cap',
  MarketCIR: 'Circulating cap' };

function levels(side, prefix) {
  if (!Array.isArray(side)) return [];
  return side.slice(0, LEVELS).map((level, i) =>
    ({ price: level[`${prefix}P${i + 1}`], size: level[`${prefix}V${i + 1}`] }));
}

export class ProductView {
  constructor(stream, api, catalogue, pageRows) {
    this.stream = stream;
    this.catalogue = catalogue;
    this.section = byId('product-view');
    this.note = byId('product-note');
    this.body = this.section.querySelector('.product-body');
    this.code = null;
    this.pending = null;
    this.frame = 0;
    const saved = sessionStorage.getItem(INTERVAL_KEY);
    this.interval = INTERVALS.includes(saved) ? saved : INTERVALS[0];
    this.chart = new PriceChart(byId('chart'), byId('chart-note'), api, pageRows);
    this.buttons = INTERVALS.map((interval) => el('button', { type: 'button',
      text: interval, 'data-interval': interval, onclick: () => this.choose(interval) }));
    byId('intervals').replaceChildren(...this.buttons);
    this.buildStats();
    this.buildLadder();
    stream.onQuote((q) => this.quote(q));
    stream.onReopen(() => {
      if (this.code) this.chart.load(this.code, this.interval);  // bars missed meanwhile
    });
  }

  buildStats() {
    this.stats = {};
    const items = [['Open', 'open'], ['High', 'high'], ['Low', 'low'],
      ['Prev. close', 'lastClose'], ['Volume', 'volume'], ['Bid', 'bid'], ['Ask', 'ask']];
    const list = byId('stats');
    for (const [label, key] of items) {
      this.stats[key] = el('dd', { class: 'num' });
      list.append(el('dt', { text: label }), this.stats[key]);
    }
    this.infoNodes = [];
  }

  buildLadder() {
    const row = (side, n) => {
      const cells = [el('td', { class: 'num' }), el('td', { class: 'num' })];
      return { tr: el('tr', { class: side }, el('td', { class: 'side',
        text: `${side === 'ask' ? 'Ask' : 'Bid'} ${n}` }), ...cells), cells };
    };
    this.asks = Array.from({ length: LEVELS }, (_, i) => row('ask', i + 1));
    this.bids = Array.from({ length: LEVELS }, (_, i) => row('bid', i + 1));
    const gap = el('tr', { class: 'gap' }, el('td', { colspan: '3' }));
    byId('ladder').tBodies[0].replaceChildren(...[...this.asks].reverse().map((r) => r.tr),
      gap, ...this.bids.map((r) => r.tr));
  }

  show(code) {
    const product = this.catalogue.byCode.get(code);
    this.section.hidden = false;
    this.code = product ? code : null;
    this.body.hidden = !product;
    this.note.hidden = Boolean(product);
    setText(byId('p-name'), product ? product.name : '');
    setText(byId('p-code'), code);
    for (const id of ['p-price', 'p-change', 'p-time']) setText(byId(id), '');
    if (!product) {
      setText(this.note, `No product has the code ${code}.`);
      this.stream.want('product', []);
      return;
    }
    document.title = `${product.name} ${code} · tickwire`;
    this.clear();
    this.stream.want('product', [code]);
    const latest = this.stream.latest.get(code);
    if (latest) this.render(latest);
    this.choose(this.interval);
  }

  hide() {
    this.section.hidden = true;
    this.code = null;
    this.stream.want('product', []);
  }

  choose(interval) {
    this.interval = interval;
    sessionStorage.setItem(INTERVAL_KEY, interval);
    for (const button of this.buttons) {
      button.setAttribute('aria-pressed', String(button.dataset.interval === interval));
    }
    if (this.code) this.chart.load(this.code, interval);
  }

  quote(q) {
    if (q.StockCode !== this.code) return;
    precisionOf(q);
    this.chart.push(q);
    this.pending = q;
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        if (this.pending?.StockCode === this.code) this.render(this.pending);
      });
    }
  }

  clear() {
    for (const node of Object.values(this.stats)) setText(node, '');
    byId('trades').tBodies[0].replaceChildren();
    for (const r of [...this.asks, ...this.bids]) r.tr.hidden = true;
  }

  render(q) {
    const digits = precisionOf(q);
    const move = direction(q.Diff);
    setText(byId('p-price'), fixed(q.Price, digits));
    const change = byId('p-change');
    setText(change, `${signed(q.Diff, digits)} (${percent(q.DiffRate)})`);
    setClass(change, ['up', 'down'], move);
    setText(byId('p-time'), clock(q.Time));
    const s = this.stats;
    setText(s.open, fixed(q.Open, digits));
    setText(s.high, fixed(q.High, digits));
    setText(s.low, fixed(q.Low, digits));
    setText(s.lastClose, fixed(q.LastClose, digits));
    setText(s.volume, compact(q.TotalVol));
    setText(s.bid, fixed(q.BP1, digits));
    setText(s.ask, fixed(q.SP1, digits));
    this.renderInfo(q.Info, digits);
    this.renderLadder(q.Depth, digits);
    this.renderTrades(q.BS, digits);
  }

  renderInfo(info, digits) {
    const entries = info && !Array.isArray(info) ? Object.entries(info) : [];
    for (const node of this.infoNodes) node.remove();
    this.infoNodes = entries.flatMap(([key, value]) => {
      const price = key.startsWith('Limit');
      return [el('dt', { text: INFO_NAMES[key] ?? key }),
        el('dd', { class: 'num', text: price ? fixed(value, digits) : compact(value) })];
    });
    byId('stats').append(...this.infoNodes);
  }

  renderLadder(depth, digits) {
    const asks = levels(depth?.Sell, 'S');
    const bids = levels(depth?.Buy, 'B');
    const biggest = Math.max(0, ...asks.map((l) => l.size), ...bids.map((l) => l.size));
    byId('ladder').hidden = asks.length + bids.length === 0;
    byId('ladder-none').hidden = asks.length + bids.length > 0;
    const fill = (rows, side) => rows.forEach((r, i) => {
      const level = side[i];
      r.tr.hidden = !level;
      if (!level) return;
      setText(r.cells[0], fixed(level.price, digits));
      setText(r.cells[1], size(level.size));
      r.tr.style.setProperty('--w', `${biggest ? (100 * level.size) / biggest : 0}%`);
    });
    fill(this.asks, asks);
    fill(this.bids, bids);
  }

  renderTrades(trades, digits) {
    const list = Array.isArray(trades) ? trades.slice(0, TRADES) : [];
    byId('trades').hidden = list.length === 0;
    byId('trades-none').hidden = list.length > 0;
    byId('trades').tBodies[0].replaceChildren(...list.map((t) => {
      const side = t.direction === 2 ? 'up' : t.direction === 1 ? 'down' : '';
      return el('tr', {}, el('td', { class: 'num muted', text: t.time ?? '' }),
        el('td', { class: `num ${side}`, text: fixed(t.price, digits) }),
        el('td', { class: 'num', text: size(t.size) }),
        el('td', { class: side, text: side === 'up' ? 'buy' : side === 'down' ? 'sell' : '' }));
    }));
  }
}

// The table view: a tab per category, a search over code and name across categories, a
// row per product that ticks with every push. Pushes only mark rows; rows are redrawn once
// per animation frame, so a hundred products ticking cost one layout a frame.

import { byId, el, setClass, setText } from './dom.js';
import { clock, compact, direction, fixed, percent, precisionOf, signed } from './format.js';
import { MAX_CODES } from './stream.js';
import { colors } from './theme.js';

const MAX_ROWS = MAX_CODES - 20;  // leaves room for the product view's code
const FLASH_MS = 700;
const CATEGORY_KEY = 'tickwire.market.category';

class Row {
  constructor(product, category) {
    const link = el('a', { href: `#${encodeURIComponent(product.code)}`, text: product.name });
    const name = el('td', { class: 'name' }, link);
    if (category) name.append(' ', el('span', { class: 'cat', text: category.name }));
    this.cells = {};
    const cell = (key, cls) => (this.cells[key] = el('td', { class: cls }));
    this.tr = el('tr', { 'data-code': product.code }, name,
      el('td', { class: 'code', text: product.code }),
      cell('price', 'num price'), cell('diff', 'num wide'), cell('rate', 'num'),
      cell('bid', 'num wide'), cell('ask', 'num wide'), cell('high', 'num wide'),
      cell('low', 'num wide'), cell('volume', 'num wide'), cell('time', 'num wide'));
    this.tr.addEventListener('click', (event) => {
      if (event.target !== link) location.hash = link.getAttribute('href');
    });
    this.price = null;
  }

  update(q) {
    const c = this.cells;
    const digits = precisionOf(q);
    const move = direction(q.Diff);
    setText(c.price, fixed(q.Price, digits));
    setText(c.diff, signed(q.Diff, digits));
    setText(c.rate, percent(q.DiffRate));
    setText(c.bid, fixed(q.BP1, digits));
    setText(c.ask, fixed(q.SP1, digits));
    setText(c.high, fixed(q.High, digits));
    setText(c.low, fixed(q.Low, digits));
    setText(c.volume, compact(q.TotalVol));
    setText(c.time, clock(q.Time));
    for (const node of [c.diff, c.rate]) setClass(node, ['up', 'down'], move);
    if (this.price !== null && q.Price !== this.price) {
      const flash = colors()[q.Price > this.price ? 'flash-up' : 'flash-down'];
      c.price.animate([{ backgroundColor: flash }, { backgroundColor: 'transparent' }],
        { duration: FLASH_MS, easing: 'ease-out' });
    }
    this.price = q.Price;
  }
}

export class MarketTable {
  constructor(stream, catalogue) {
    this.stream = stream;
    this.catalogue = catalogue;
    this.section = byId('table-view');
    this.tbody = byId('quotes').tBodies[0];
    this.note = byId('table-note');
    this.search = byId('search');
    this.rows = new Map();
    this.dirty = new Set();
    this.frame = 0;
    this.shown = false;
    const saved = sessionStorage.getItem(CATEGORY_KEY);
    this.category = catalogue.byId.get(saved) ?? catalogue.categories[0];
    this.tabs = catalogue.categories.map((category) => el('button', {
      type: 'button', role: 'tab', text: category.name, 'data-id': category.id,
      onclick: () => this.choose(category),
    }));
    byId('tabs').replaceChildren(...this.tabs);
    this.search.addEventListener('input', () => this.render());
    stream.onQuote((q) => this.quote(q));
  }

  choose(category) {
    this.category = category;
    sessionStorage.setItem(CATEGORY_KEY, category.id);
    this.search.value = '';
    this.render();
  }

  show() {
    this.section.hidden = false;
    this.shown = true;
    this.render();
  }

  hide() {
    this.section.hidden = true;
    this.shown = false;
    this.stream.want('table', []);
  }

  /** The products on view: the search's matches in every category, or the tab's. */
  products() {
    const query = this.search.value.trim().toLowerCase();
    if (!query) return { list: this.category?.products ?? [], searching: false };
    const list = this.catalogue.products.filter((p) =>
      p.code.toLowerCase().includes(query) || p.name.toLowerCase().includes(query));
    return { list, searching: true };
  }

  render() {
    const { list, searching } = this.products();
    for (const tab of this.tabs) {
      const selected = !searching && tab.dataset.id === this.category?.id;
      tab.setAttribute('aria-selected', String(selected));
    }
    const shown = list.slice(0, MAX_ROWS);
    this.rows = new Map();
    for (const product of shown) {
      const category = searching ? this.catalogue.byId.get(product.category) : null;
      const row = new Row(product, category);
      this.rows.set(product.code, row);
      const latest = this.stream.latest.get(product.code);
      if (latest) row.update(latest);
    }
    this.tbody.replaceChildren(...[...this.rows.values()].map((row) => row.tr));
    this.note.hidden = list.length > 0 && list.length <= MAX_ROWS;
    setText(this.note, list.length === 0
      ? (searching ? 'No product matches.' : this.emptyText())
      : `Showing the first ${MAX_ROWS} of ${list.length} products: search to narrow.`);
    this.stream.want('table', this.shown ? shown.map((p) => p.code) : []);
  }

  emptyText() {
    return this.category?.loaded === false ? 'Loading…' : 'This category has no products.';
  }

  quote(q) {
    if (!this.rows.has(q.StockCode)) return;
    this.dirty.add(q.StockCode);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    for (const code of this.dirty) {
      const latest = this.stream.latest.get(code);
      if (latest) this.rows.get(code)?.update(latest);
    }
    this.dirty.clear();
  }
}

// The market page: a client of the public protocol only (getCategory.php,
// getSymbolList.php, redis.php and one WebSocket), so it works against any server of it.
// `#CODE` shows a product, no hash the table. `?rows=N` sets the bars fetched a page
// (default the most redis.php gives); `?debug` exposes the page's state as
// `window.tickwireMarket`, for tests.

import { Api, KLINE_WINDOW } from './api.js';
import { Catalogue } from './catalogue.js';
import { byId, setText } from './dom.js';
import { relayoutWhenCjkLoads } from './fonts.js';
import { ProductView } from './product.js';
import { Stream } from './stream.js';
import { MarketTable } from './table.js';

const RETRY_MS = 3000;
const params = new URLSearchParams(location.search);

function socketUrl() {
  const url = new URL('ws', document.baseURI);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

function pageRows() {
  const asked = Number(params.get('rows'));
  const most = Math.max(...Object.values(KLINE_WINDOW));
  return Number.isInteger(asked) && asked >= 1 ? Math.min(asked, most) : most;
}

function hashCode() {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return location.hash.slice(1);  // a stray % is taken as it is
  }
}

function showState(state) {
  const status = byId('status');
  status.dataset.state = state.name;
  if (state.name === 'live') setText(status, 'live');
  else if (state.name === 'connecting') setText(status, 'connecting…');
  else {
    const seconds = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    setText(status, seconds > 0 ? `reconnecting in ${seconds} s` : 'reconnecting…');
  }
}

async function start() {
  relayoutWhenCjkLoads();
  const api = new Api(document.baseURI);
  const stream = new Stream(socketUrl());
  stream.onState(showState);
  setInterval(() => showState(stream.state), 1000);
  const note = byId('table-note');
  const catalogue = new Catalogue();
  for (;;) {
    try {
      await catalogue.loadCategories(api);
      break;
    } catch (error) {
      note.hidden = false;
      setText(note, `Could not list the categories (${error.message}); trying again.`);
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
  const table = new MarketTable(stream, catalogue);
  const product = new ProductView(stream, api, catalogue, pageRows());
  const route = () => {
    const code = hashCode();
    if (code && !catalogue.byCode.has(code) && !catalogue.complete) return;  // not yet
    if (code) {
      table.hide();
      product.show(code);
    } else {
      product.hide();
      document.title = 'Market · tickwire';
      table.show();
    }
  };
  window.addEventListener('hashchange', () => {
    route();
    window.scrollTo(0, 0);
  });
  catalogue.onChange((category) => {
    const code = hashCode();
    if (code && !product.code) route();  // a product whose list had not come
    else if (!code && (category === table.category || table.search.value)) table.render();
  });
  route();
  catalogue.loadProducts(api, table.category?.id, RETRY_MS);
  if (params.has('debug')) {
    window.tickwireMarket = { stream, catalogue, table, product,
      chart: () => ({ code: product.chart.code, interval: product.chart.interval,
        loading: !product.chart.ready || product.chart.paging,
        exhausted: product.chart.exhausted,
        bars: product.chart.drawn() }) };
  }
  document.documentElement.dataset.ready = 'true';
}

start();

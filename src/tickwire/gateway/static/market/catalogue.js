// The categories and their products, from getCategory.php and getSymbolList.php. The
// categories come first; the products of each follow (the tab on view first), and
// `onChange` listeners hear of each category as it fills, so the table shows at once.

export class Catalogue {
  constructor() {
    this.categories = [];
    this.products = [];
    this.byCode = new Map();
    this.byId = new Map();
    this.complete = false;
    this.listeners = [];
  }

  onChange(listener) { this.listeners.push(listener); }

  async loadCategories(api) {
    this.categories = (await api.categories()).map(({ id, name }) =>
      ({ id, name, products: [], loaded: false }));
    this.byId = new Map(this.categories.map((c) => [c.id, c]));
  }

  /** Every category's products, `first` first; a failed list is asked again. */
  async loadProducts(api, first, retryMs) {
    const order = [...this.categories].sort((a, b) => (b.id === first) - (a.id === first));
    for (const category of order) {
      for (;;) {
        try {
          const listed = await api.symbols(category.id);
          category.products = listed.map((p) => ({ code: p.code, name: p.name,
            category: category.id }));
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, retryMs));
        }
      }
      category.loaded = true;
      this.products = this.categories.flatMap((c) => c.products);
      this.byCode = new Map(this.products.map((p) => [p.code, p]));
      this.complete = this.categories.every((c) => c.loaded);
      for (const listener of this.listeners) listener(category);
    }
  }
}

// The colours of market.css (light or dark, as the system says) for what is drawn from
// script: the chart and the price flashes.

const NAMES = ['bg', 'fg', 'muted', 'line', 'up', 'down', 'flash-up', 'flash-down',
  'volume-up', 'volume-down', 'font'];
const dark = matchMedia('(prefers-color-scheme: dark)');
let current = null;

export function colors() {
  if (!current) {
    const style = getComputedStyle(document.documentElement);
    current = {};
    for (const name of NAMES) current[name] = style.getPropertyValue(`--${name}`).trim();
  }
  return current;
}

export function onThemeChange(listener) {
  dark.addEventListener('change', () => {
    current = null;
    listener(colors());
  });
}

// Elements made from data with text nodes only: nothing on this page parses data as HTML.

/** A new element: `props` sets its class, text, listeners (onclick...) and attributes;
 * children are nodes or strings (strings become text nodes). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** Sets a node's text when it differs (a write costs a layout, a read does not). */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Sets a class from a choice of classes, removing the others. */
export function setClass(node, classes, chosen) {
  for (const name of classes) node.classList.toggle(name, name === chosen);
}

export const byId = (id) => document.getElementById(id);

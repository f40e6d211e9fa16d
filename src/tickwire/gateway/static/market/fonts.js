// The page's own CJK font (market.css). Chromium keeps text that it laid out while the
// font was loading in the fallback's empty boxes, even once the font is there; so when it
// has loaded, each text node with CJK in it is put in anew, which lays it out again.

const FAMILY = 'tickwire CJK';
const CJK = /[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]/;

function renewCjkText() {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  while (walker.nextNode()) if (CJK.test(walker.currentNode.data)) found.push(walker.currentNode);
  for (const node of found) node.replaceWith(new Text(node.data));
}

export function relayoutWhenCjkLoads() {
  document.fonts.addEventListener('loadingdone', (event) => {
    if (event.fontfaces.some((face) => face.family.replace(/"/g, '') === FAMILY)) {
      renewCjkText();
    }
  });
}

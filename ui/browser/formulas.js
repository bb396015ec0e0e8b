// Display formulas fit their column: a KaTeX display wider than the space it has (large type, a narrow column) gets
// a smaller font size on its .katex element (the formula's own overall size; the theme sets it in px, so a size on
// an ancestor would not reach it), just small enough to fit; nothing inside KaTeX is touched. Recomputed when
// formulas are re-rendered, fonts load, the window resizes, a tab opens or presentation mode changes (page.js).
(() => {
  // The formula's own width: from the left of its first piece to the right of its last (KaTeX lays out .base boxes).
  function contentWidth(display) {
    let left = Infinity;
    let right = -Infinity;
    for (const piece of display.querySelectorAll('.katex-html > .base, .katex-html > .tag')) {
      const box = piece.getBoundingClientRect();
      left = Math.min(left, box.left);
      right = Math.max(right, box.right);
    }
    return right > left ? right - left : 0;
  }

  let fitted = new WeakMap(); // .katex-display → what it was fitted for (its width, the page's mode, its text)

  // One pass over the formulas that changed since they were fitted: all writes, one layout, all writes.
  function fitAll() {
    const mode = document.body.className;
    const changed = [];
    for (const display of document.querySelectorAll('.katex-display')) {
      const formula = display.querySelector('.katex');
      const room = display.clientWidth;
      const key = `${room}|${mode}|${formula ? formula.textContent : ''}`;
      if (!formula || room === 0 || fitted.get(display) === key) continue; // hidden ones are fitted when shown
      fitted.set(display, key);
      changed.push({ display, formula, room });
    }
    for (const { formula } of changed) formula.style.fontSize = ''; // measure at the page's own size
    const sizes = changed.map(({ display, formula, room }) => {
      const width = contentWidth(display);
      const size = parseFloat(getComputedStyle(formula).fontSize);
      return width > room ? `${((size * room * 0.98) / width).toFixed(2)}px` : '';
    });
    changed.forEach(({ formula }, i) => {
      formula.style.fontSize = sizes[i];
    });
  }

  if (document.fonts) {
    document.fonts.addEventListener('loadingdone', () => {
      fitted = new WeakMap(); // widths change with the fonts: fit everything again
    });
  }
  window.explorerPage.follow(fitAll);
})();

// Plotly figures fit the page: (1) a figure drawn while its tab was hidden (Plotly then falls back to 700 px) is
// resized to its container once it is on screen (after a tab change, a window resize, any re-render); (2) in
// presentation mode (body.presentation) every figure's fonts, explicit margins and height grow by
// --presentation-scale, and return to their own values when it ends. Only figures on screen are touched; a hidden
// one catches up when it is shown. A figure that Gradio redraws gets a new layout object, so it is scaled again.
(() => {
  const enlarged = new WeakMap(); // layout object → the values presentation mode replaced (undefined: unset)
  const tried = new WeakMap(); // layout object → the width a resize was asked for (never asked twice per drawing)
  const busy = new WeakSet(); // figures with a relayout or resize in flight

  const scale = () =>
    parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--presentation-scale')) || 1;
  const presenting = () => document.body.classList.contains('presentation');
  const onScreen = (figure) => figure.offsetParent !== null && figure.getBoundingClientRect().width > 0;

  // Every font size the layout sets, by relayout path ("annotations[2].font.size", "xaxis.tickfont.size", …).
  function fontSizes(value, path, found) {
    if (Array.isArray(value)) {
      value.forEach((item, index) => fontSizes(item, `${path}[${index}]`, found));
    } else if (value && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (key === 'template' || key.startsWith('_')) continue;
        const at = path ? `${path}.${key}` : key;
        if (/font$/i.test(key) && item && typeof item.size === 'number') found[`${at}.size`] = item.size;
        else fontSizes(item, at, found);
      }
    }
    return found;
  }

  // What presentation mode changes: every font size, the base font and the height (set or not), explicit margins.
  function ownValues(figure) {
    const layout = figure.layout;
    const values = fontSizes(layout, '', {});
    values['font.size'] = layout.font?.size;
    values.height = layout.height;
    for (const side of ['l', 'r', 't', 'b']) {
      if (typeof layout.margin?.[side] === 'number') values[`margin.${side}`] = layout.margin[side];
    }
    return values;
  }

  function larger(figure, values) {
    const full = figure._fullLayout;
    const defaults = { 'font.size': full.font.size, height: full.height };
    const update = {};
    for (const [path, value] of Object.entries(values)) update[path] = (value ?? defaults[path]) * scale();
    return update;
  }

  function restored(values) {
    const update = {};
    for (const [path, value] of Object.entries(values)) update[path] = value ?? null;
    return update;
  }

  // Titles side by side (subplot titles) that the larger font makes overlap, or run past the figure's edge, are set
  // smaller again, just enough to clear their neighbours and the edge, and never below their own size. `own` (the values to restore) learns every size set here.
  function untangle(figure, own) {
    const titles = [...figure.querySelectorAll('.infolayer .annotation[data-index]')].map((group) => ({
      index: Number(group.dataset.index),
      box: group.getBoundingClientRect(),
    }));
    const edge = figure.getBoundingClientRect();
    const update = {};
    for (const title of titles) {
      const middle = (title.box.left + title.box.right) / 2;
      let fit = (2 * Math.min(middle - edge.left, edge.right - middle)) / title.box.width; // inside the figure
      for (const other of titles) {
        const sameRow = title.box.bottom > other.box.top && other.box.bottom > title.box.top;
        if (other === title || !sameRow) continue;
        const apart = Math.abs(title.box.left + title.box.right - other.box.left - other.box.right) / 2;
        fit = Math.min(fit, (2 * (apart - 8)) / (title.box.width + other.box.width));
      }
      if (fit >= 1) continue;
      const path = `annotations[${title.index}].font.size`;
      if (!(path in own)) own[path] = undefined;
      const ownSize = own[path] ?? own['font.size'] ?? figure._fullLayout.font.size / scale();
      update[path] = Math.max(ownSize, figure._fullLayout.annotations[title.index].font.size * fit);
    }
    return Object.keys(update).length ? window.Plotly.relayout(figure, update) : undefined;
  }

  function settle(figure, work) {
    busy.add(figure);
    Promise.resolve(work)
      .catch((error) => console.warn('plot update failed', error))
      .finally(() => {
        busy.delete(figure);
        window.explorerPage.changed();
      });
  }

  function sync(figure) {
    if (!figure.layout || !figure._fullLayout || busy.has(figure) || !onScreen(figure)) return;
    const width = Math.round(figure.getBoundingClientRect().width);
    const autosized = !figure.layout.width;
    if (autosized && Math.abs(figure._fullLayout.width - width) > 2 && tried.get(figure.layout) !== width) {
      tried.set(figure.layout, width);
      settle(figure, window.Plotly.Plots.resize(figure));
      return;
    }
    const own = enlarged.get(figure.layout);
    if (presenting() && !own) {
      const values = ownValues(figure);
      enlarged.set(figure.layout, values);
      settle(figure, window.Plotly.relayout(figure, larger(figure, values)).then(() => untangle(figure, values)));
    } else if (!presenting() && own) {
      enlarged.delete(figure.layout);
      settle(figure, window.Plotly.relayout(figure, restored(own)));
    }
  }

  window.explorerPage.follow(() => {
    if (window.Plotly) document.querySelectorAll('.js-plotly-plot').forEach(sync);
  });
})();

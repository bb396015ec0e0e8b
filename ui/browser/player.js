// The frame player: steps a finished run's frames in the page, never calling the server for a frame it holds.
// It runs as the js_on_load of its gr.HTML component (ui/sampling.py), which gives `element`, `props`, `watch`,
// `trigger` and `server`; `props.config` is its one configuration from Python (ui/frames.py `player_config`:
// constants, element ids and texts), `props.value` the frames of a run (ui/frames.py `payload`). One player per page,
// window.explorerFrames, so that a remounted tab keeps its place (keys.js steps it too).
// To Python it talks only through its component: `server.fetch_frames` for frames it does not hold, and the
// component's own `stepped` event after every change of frame, whose js-only listener copies the frame number and
// its text into the slider and the status line (Gradio's own state: Branch, export and "copy link" read them).
// Its configuration: props.config, else (a remount whose props lost it) the same object from the server function
// `player_config`; everything that needs it waits for `F.ready`.
const C = () => F.config;
const F = (window.explorerFrames = window.explorerFrames || {
  data: null,
  index: 0,
  images: {},
  asked: new Set(),
  timer: null,
  notice: '',
  draws: 0,
  lastDraw: 0,
});
F.element = element;
F.canvas = element.querySelector('canvas');
F.noteBox = element.querySelector('.frames-note');
F.server = server;
F.trigger = trigger;
F.ready = (props.config ? Promise.resolve(props.config) : server.player_config()).then((config) => {
  F.config = config;
});
F.addImage = (k, url) => {
  if (F.images[k]) return;
  const img = new Image();
  img.onload = () => {
    if (F.shownFrom(F.index) === k) F.draw();
  };
  img.src = url;
  F.images[k] = img;
};
// The nearest frame the page holds to frame k (k itself when held): drawn while k loads.
F.shownFrom = (k) => {
  for (let d = 0; F.data && d < F.data.total; d++) {
    if (F.images[k - d]) return k - d;
    if (F.images[k + d]) return k + d;
  }
  return null;
};
F.reveal = (on) => {
  const stream = document.getElementById(C().stream_id);
  if (stream) stream.style.display = on ? 'none' : '';
  if (F.element) F.element.style.display = on ? '' : 'none';
};
F.load = (data) => {
  F.busy = false;
  if (!data || !data.key) return;
  const same = F.data && F.data.key === data.key;
  if (!same) {
    F.images = {};
    F.asked = new Set();
  }
  F.notice = data.notice || (same ? F.notice : '');
  F.data = data;
  for (const [k, url] of Object.entries(data.frames)) F.addImage(Number(k), url);
  if (!same) F.hold(data.key);
  F.index = Math.min(Math.max(data.start, 0), data.total - 1);
  if (F.noteBox) F.noteBox.textContent = data.note || '';
  F.reveal(true);
  F.draw();
  F.sync();
};
// The frames the page holds of a run arrive through a server function, not in the component's value (whose
// megabytes the page's framework would copy and compare on the main thread).
F.hold = (key) => {
  if (!F.server) return;
  F.server
    .held_frames(key)
    .then((frames) => {
      if (!F.data || F.data.key !== key || !frames) return;
      for (const [k, url] of Object.entries(frames)) F.addImage(Number(k), url);
    })
    .catch(() => {}); // refused (busy): stepping fetches windows as it goes
};
F.fetch = (k) => {
  if (F.asked.has(k) || !F.server) return;
  const count = C().fetch_window;
  for (let j = k; j < k + count; j++) F.asked.add(j);
  const key = F.data.key;
  F.server
    .fetch_frames([key, k])
    .then((frames) => {
      if (!F.data || F.data.key !== key || !frames) return;
      for (const [j, url] of Object.entries(frames)) F.addImage(Number(j), url);
    })
    .catch(() => {
      for (let j = k; j < k + count; j++) F.asked.delete(j);
    });
};
F.draw = () => {
  const d = F.data;
  const c = F.canvas;
  if (!d || !c) return;
  const k = F.index;
  const from = F.shownFrom(k);
  const img = F.images[from];
  const box = (c.parentElement && c.parentElement.clientWidth) || d.width;
  const gap = C().panel_gap;
  const rows = F.rows(d, box);
  const rowWidth = Math.max(...rows.map((row) => row.reduce((sum, p) => sum + p[2], 0) + gap * (row.length - 1)));
  const scale = Math.max(1, Math.floor(box / rowWidth));
  const font = Math.max(12, Math.min(24, Math.round(5 * scale)));
  const top = font + 8;
  const band = font + 10;
  const w = rowWidth * scale;
  const ph = d.height * scale;
  const h = rows.length * (ph + top);
  if (c.width !== w || c.height !== h + band) {
    c.width = w;
    c.height = h + band;
  }
  const g = c.getContext('2d');
  g.imageSmoothingEnabled = false;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, c.width, c.height);
  g.fillStyle = '#000';
  g.font = font + 'px sans-serif';
  g.textBaseline = 'top';
  const ready = img && img.complete && img.naturalWidth;
  rows.forEach((row, r) => {
    let x = 0;
    const y = r * (ph + top);
    for (const [title, left, width] of row) {
      g.fillStyle = '#000';
      g.fillText(title, x + 2, y + 4, width * scale - 4);
      if (ready) g.drawImage(img, left, 0, width, d.height, x, y + top, width * scale, ph);
      x += (width + gap) * scale;
    }
  });
  c.dataset.scale = String(scale);
  g.fillStyle = '#eee';
  g.fillRect(0, h, w, band);
  g.fillStyle = '#000';
  const waiting = from === k ? '' : ' · shown: frame ' + (from + d.first) + ' while it loads';
  g.fillText(d.captions[k] + waiting, 4, h + 5, w - 8);
  c.dataset.frame = String(k + d.first);
  c.dataset.total = String(d.total);
  c.dataset.which = d.which;
  F.draws += 1;
  F.lastDraw = performance.now();
  if (from !== k) F.fetch(k);
};
// One row of panels; two rows when that draws them larger and the page is in presentation mode (or fullscreen), or
// when one row would draw them under 2× native (e.g. a 2-D run's scatter panels): large enough to judge.
F.rows = (d, box) => {
  const one = [d.panels];
  const gap = C().panel_gap;
  const width = (rows) => Math.max(...rows.map((row) => row.reduce((sum, p) => sum + p[2] + gap, -gap)));
  const shown = (rows) => { const r = box / width(rows); return r >= 1 ? Math.floor(r) : r; }; // drawn px per native
  const wide = document.body.classList.contains('presentation') || document.fullscreenElement;
  if (!(wide || shown(one) < 2) || d.panels.length < 4) return one;
  const half = Math.ceil(d.panels.length / 2);
  const two = [d.panels.slice(0, half), d.panels.slice(half)];
  return shown(two) > shown(one) ? two : one;
};
// The component's `stepped` event: its listener reads `synced` into the slider, the status line and the decoded
// panel, which is cleared once the frame (or the run) shown is not the one it decoded (undefined: left as it is).
F.sync = () => F.trigger('stepped');
F.shownKey = () => (F.data ? F.data.key + ':' + F.index : null);
F.decoding = () => {
  F.decoded = F.shownKey();
};
F.decodedNow = () => {
  if (!F.decoded || F.decoded === F.shownKey()) return undefined;
  F.decoded = null;
  return null;
};
F.synced = () => {
  if (!F.data) return [null, null, undefined];
  const text = F.data.texts[F.index];
  return [F.index + F.data.first, F.notice ? F.notice + '\n\n' + text : text, F.decodedNow()];
};
F.show = (k) => {
  if (!F.data) return;
  F.index = Math.min(Math.max(Math.round(k), 0), F.data.total - 1);
  F.notice = '';
  F.draw();
  F.sync();
};
F.step = (delta) => {
  if (F.data) F.show(F.index + delta);
};
F.showFrame = (frame) => {
  if (F.data && Number.isFinite(Number(frame))) F.show(Number(frame) - F.data.first);
};
F.label = (playing) => {
  const b = document.getElementById(C().play_id);
  if (b) b.textContent = playing ? C().pause_label : C().play_label;
};
F.stop = () => {
  if (F.timer) clearInterval(F.timer);
  F.timer = null;
  F.label(false);
};
F.play = (fps) => {
  if (F.timer) {
    F.stop();
    return;
  }
  if (!F.data) return;
  if (F.index >= F.data.total - 1) F.show(0);
  F.fps = Math.min(Math.max(Number(fps) || C().fps, C().min_fps), C().max_fps);
  F.label(true);
  F.timer = setInterval(() => {
    if (!F.data || F.index >= F.data.total - 1) {
      F.stop();
      return;
    }
    F.step(1);
    if (F.index >= F.data.total - 1) F.stop();
  }, 1000 / F.fps);
};
F.speed = (fps) => {
  if (F.timer) {
    F.stop();
    F.play(fps);
  }
};
F.computing = () => {
  F.decoded = F.decoded && 'computing'; // a run or branch on its way: what was decoded is not shown next
  F.stop();
  F.busy = true;
  F.ready.then(() => F.reveal(false));
};
// After Stop: what the status line says depends on whether a run was computing (it was not kept) or not.
F.stopped = () => {
  if (!F.data) return;
  F.notice = F.busy ? C().stopped : C().finished;
  F.busy = false;
  F.reveal(true);
  F.draw();
  F.sync();
};
if (!F.observer && window.ResizeObserver) {
  F.observer = new ResizeObserver(() => F.draw());
}
if (F.observer) F.observer.observe(element);
watch('value', () => F.ready.then(() => F.load(props.value)));
if (props.value) F.ready.then(() => F.load(props.value));

// The frame in fullscreen: whatever #frame shows (an <img> or a <canvas>) drawn nearest-neighbour, aspect kept, to
// the whole screen, with the frame text (#frame_text) above it. A button beside the picture, the picture's own
// fullscreen button or F (keys.js) opens it, Esc leaves; while it is open it follows every new frame, so ← and →
// keep stepping. When the browser refuses fullscreen (an iframe without allow="fullscreen", a permissions policy), the
// page says so in a message (#fullscreen_refused) instead of failing silently.
(() => {
  const VIEW = 'frame_fullscreen';
  const BUTTON = 'frame_fullscreen_button';
  const REFUSED = 'fullscreen_refused';
  const REFUSED_SECONDS = 12;

  // The message shown when fullscreen was refused, for a few seconds (or until closed).
  function refused() {
    let note = document.getElementById(REFUSED);
    if (!note) {
      note = document.createElement('div');
      note.id = REFUSED;
      note.setAttribute('role', 'alert');
      note.innerHTML = '<span></span><button type="button" aria-label="close">×</button>';
      note.querySelector('button').addEventListener('click', () => note.classList.remove('shown'));
      document.body.appendChild(note);
    }
    const embedded = window.self !== window.top;
    note.querySelector('span').textContent = embedded
      ? 'Fullscreen was refused: this app is embedded in an iframe without allow="fullscreen". The page that ' +
        'embeds it must add allow="fullscreen" to its <iframe> (see the README); or open the app in its own tab.'
      : 'Fullscreen was refused by the browser (a permissions policy or a setting): the frame stays in the page.';
    note.classList.add('shown');
    clearTimeout(note.timer);
    note.timer = setTimeout(() => note.classList.remove('shown'), REFUSED_SECONDS * 1000);
  }
  window.explorerFullscreenRefused = refused;
  // Every refused request (this view's, or F's on the whole page in keys.js) fires fullscreenerror.
  document.addEventListener('fullscreenerror', refused);

  // The picture inside #frame: its largest <img> or <canvas> on screen (icons are small), with its own size.
  function picture() {
    const frame = document.getElementById('frame');
    let best = null;
    for (const element of frame ? frame.querySelectorAll('img, canvas') : []) {
      if (element.getClientRects().length === 0) continue; // not displayed (e.g. the picture streamed during a run)
      const width = element.naturalWidth ?? element.width;
      const height = element.naturalHeight ?? element.height;
      if (width > 0 && height > 0 && (!best || width * height > best.width * best.height)) {
        best = { element, width, height };
      }
    }
    return best;
  }

  function view() {
    let element = document.getElementById(VIEW);
    if (!element) {
      element = document.createElement('div');
      element.id = VIEW;
      element.innerHTML = '<div class="caption"></div><canvas></canvas>';
      document.body.appendChild(element);
    }
    return element;
  }

  // Copy the picture at its native size; CSS scales the canvas to the screen (pixelated, object-fit: contain).
  function draw(element) {
    const caption = document.getElementById('frame_text');
    const text = caption ? caption.innerText.trim() : '';
    const label = element.querySelector('.caption');
    if (label.textContent !== text) label.textContent = text;
    const found = picture();
    if (!found) return;
    const canvas = element.querySelector('canvas');
    if (canvas.width !== found.width || canvas.height !== found.height) {
      canvas.width = found.width;
      canvas.height = found.height;
    }
    const context = canvas.getContext('2d');
    context.imageSmoothingEnabled = false;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.drawImage(found.element, 0, 0, found.width, found.height);
  }

  function follow() {
    const element = document.getElementById(VIEW);
    if (!element || document.fullscreenElement !== element) return;
    draw(element);
    requestAnimationFrame(follow);
  }

  function toggle() {
    const element = view();
    if (document.fullscreenElement === element) {
      document.exitFullscreen();
      return;
    }
    draw(element);
    if (!document.fullscreenEnabled) {
      refused(); // a frame without allow="fullscreen": the request would only log a permissions policy violation
      return;
    }
    element.requestFullscreen().then(() => requestAnimationFrame(follow), refused);
  }

  // The button lives inside #frame, which the sampling view re-renders: put it back whenever it is missing.
  function ensureButton() {
    const frame = document.getElementById('frame');
    if (!frame || document.getElementById(BUTTON)) return;
    const button = document.createElement('button');
    button.id = BUTTON;
    button.type = 'button';
    button.textContent = 'fullscreen (F)';
    button.title = 'Show the frame on the whole screen (Esc leaves; ← → step)';
    button.addEventListener('click', (event) => {
      event.stopPropagation();
      toggle();
    });
    frame.appendChild(button);
  }

  // The picture's own fullscreen button (Gradio's shows the picture at its native size) opens this view instead.
  document.addEventListener(
    'click',
    (event) => {
      if (event.target.closest && event.target.closest('#frame button[aria-label="Fullscreen"]')) {
        event.preventDefault();
        event.stopImmediatePropagation();
        toggle();
      }
    },
    true,
  );

  window.explorerPage.follow(ensureButton);
})();

// The frame in fullscreen: whatever #frame shows (an <img> or a <canvas>) drawn nearest-neighbour, aspect kept, to
// the whole screen, with the frame text (#frame_text) above it. A button beside the picture, the picture's own
// fullscreen button or F (keys.js) opens it, Esc leaves; while it is open it follows every new frame, so ← and →
// keep stepping.
(() => {
  const VIEW = 'frame_fullscreen';
  const BUTTON = 'frame_fullscreen_button';

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
    element.requestFullscreen().then(() => requestAnimationFrame(follow), (error) => console.warn(error));
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

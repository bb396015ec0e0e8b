// Keys that press on-screen buttons: ← and → step through frames, F toggles the frame's fullscreen (Esc leaves it).
// A key acts only when its button is on screen and the focus is not in a text field, and it presses the same button
// a click would, so it follows whatever the sampling view does on a click (also while the frame is fullscreen).
(() => {
  const BUTTONS = { ArrowLeft: 'prev_frame', ArrowRight: 'next_frame', f: 'frame_fullscreen_button' };
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === 'Escape' && document.fullscreenElement) {
      document.exitFullscreen(); // browsers do this themselves; headless and embedded ones may not
      return;
    }
    const target = event.target;
    const tag = (target.tagName || '').toLowerCase();
    if (tag === 'input' || tag === 'textarea' || tag === 'select' || target.isContentEditable) return;
    const id = BUTTONS[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    const button = id && document.getElementById(id);
    if (button && button.offsetParent !== null) {
      event.preventDefault();
      button.click();
    }
  });
})();

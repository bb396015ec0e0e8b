// Keys for talks: ← and → step through frames, F toggles the frame's fullscreen (in presentation mode, on a view
// without frames, the page's), Esc leaves it. They work whatever has the focus (a slider, a button, a checkbox)
// except a text box, and they are heard before any control can keep them (capture phase). ← → step the page's frame
// player (ui/frames.py) directly; presses that come before its frames arrive (a talk link's run is still on its way)
// are kept and applied once they are there.
(() => {
  const STEPS = { ArrowLeft: -1, ArrowRight: 1 };
  const TEXT_TYPES = new Set(['text', 'search', 'email', 'url', 'password', 'number', 'tel', '']);
  let pending = 0; // frames to move once the player holds a run

  function inTextBox(target) {
    if (!target || !target.tagName) return false;
    const tag = target.tagName.toLowerCase();
    if (tag === 'textarea' || tag === 'select' || target.isContentEditable) return true;
    return tag === 'input' && TEXT_TYPES.has((target.getAttribute('type') || '').toLowerCase());
  }

  const onScreen = (element) => element !== null && element.getClientRects().length > 0;
  const framesShown = () => onScreen(document.getElementById('frame'));
  const frameFullscreen = () => !!document.fullscreenElement && document.fullscreenElement.id === 'frame_fullscreen';
  const talkLink = () => new URLSearchParams(window.location.search).has('frame');

  function step(delta) {
    const player = window.explorerFrames;
    if (player && player.data) {
      player.step(delta);
    } else if (talkLink()) {
      pending += delta; // the run of a talk link is on its way
    }
  }

  function applyPending() {
    const player = window.explorerFrames;
    if (pending !== 0 && player && player.data) {
      const delta = pending;
      pending = 0;
      player.step(delta);
    }
  }

  function fullscreen() {
    if (document.fullscreenElement) {
      document.exitFullscreen();
      return true;
    }
    const button = document.getElementById('frame_fullscreen_button');
    if (framesShown() && button) {
      button.click();
      return true;
    }
    if (document.body.classList.contains('presentation')) {
      document.documentElement.requestFullscreen().catch((error) => console.warn(error));
      return true;
    }
    return false;
  }

  window.addEventListener(
    'keydown',
    (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === 'Escape' && document.fullscreenElement) {
        document.exitFullscreen(); // browsers do this themselves; headless and embedded ones may not
        return;
      }
      if (inTextBox(event.target)) return;
      const delta = STEPS[event.key];
      if (delta !== undefined && (framesShown() || frameFullscreen())) {
        event.preventDefault();
        event.stopPropagation(); // a focused slider or radio would move too
        step(delta);
      } else if (event.key.toLowerCase() === 'f' && !event.repeat && fullscreen()) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true,
  );
  window.explorerPage.follow(applyPending);
})();

// Presentation mode's stage (stage.css): the frame's picture may be as high as the screen below its top, so the whole
// frame is in view without scrolling. Sets --stage-room on the root element (removed outside presentation mode).
(() => {
  const MARGIN = 8; // px kept free below the picture
  const MINIMUM = 240; // px: on a very short window the picture stays this high (and the page scrolls)

  function top() {
    const frame = document.getElementById('frame');
    if (!frame || frame.getClientRects().length === 0) return null; // its tab is not open
    const shown = [...frame.querySelectorAll('canvas, img')].find((element) => element.getClientRects().length);
    return (shown || frame).getBoundingClientRect().top + window.scrollY;
  }

  function fit() {
    const root = document.documentElement;
    const at = document.body.classList.contains('presentation') ? top() : null;
    const room = at === null ? '' : `${Math.max(MINIMUM, Math.floor(window.innerHeight - at - MARGIN))}px`;
    if (root.style.getPropertyValue('--stage-room') !== room) root.style.setProperty('--stage-room', room);
  }

  window.explorerPage.follow(fit);
})();

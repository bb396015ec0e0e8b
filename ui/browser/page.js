// One watcher of the page for the scripts that follow it (figures, formulas, the fullscreen button): each gives a
// function that runs once after anything changed (a re-render, a tab opened, a class or style, the window's size,
// fonts loaded), when the browser is idle (at most WAIT ms later): while the page is being built the followers'
// measurements (layouts) do not compete with it. Followers must write only when something differs, or they would
// feed the watcher.
window.explorerPage = (() => {
  const followers = [];
  const WAIT = 250; // ms: the longest a change waits for an idle moment
  const later = window.requestIdleCallback
    ? (run) => window.requestIdleCallback(run, { timeout: WAIT })
    : (run) => window.setTimeout(run, 16);
  let pending = false;

  function changed() {
    if (pending) return;
    pending = true;
    later(() => {
      pending = false;
      for (const follower of followers) {
        try {
          follower();
        } catch (error) {
          console.warn('page follower failed', error);
        }
      }
    });
  }

  function start() {
    const changes = { childList: true, subtree: true, characterData: true, attributes: true };
    new MutationObserver(changed).observe(document.body, { ...changes, attributeFilter: ['class', 'style', 'hidden'] });
    window.addEventListener('resize', changed);
    if (document.fonts) document.fonts.addEventListener('loadingdone', changed);
    changed();
  }
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);

  return {
    follow(follower) {
      followers.push(follower);
      changed();
    },
    changed,
  };
})();

// One watcher of the page for the scripts that follow it (figures, formulas, the fullscreen button): each gives a
// function that runs once per animation frame after anything changed (a re-render, a tab opened, a class or style,
// the window's size, fonts loaded). Followers must write only when something differs, or they would feed the watcher.
window.explorerPage = (() => {
  const followers = [];
  let pending = false;

  function changed() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
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

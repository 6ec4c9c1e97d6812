// Small progressive enhancements; every page works without this file.
document.addEventListener("htmx:configRequest", (event) => {
  const token = document.querySelector('meta[name="csrf-token"]');
  if (token) event.detail.headers["X-CSRFToken"] = token.content;
});

// Live job output (portal B): keep the console scrolled to the end while new output arrives,
// unless the reader scrolled up to look at something; scrolling back down resumes following.
(() => {
  const NEAR_END = 40; // pixels from the bottom that still count as "at the end"
  let follow = true;
  const atEnd = (el) => el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_END;
  document.addEventListener("scroll", (event) => {
    if (event.target instanceof Element && event.target.id === "console") follow = atEnd(event.target);
  }, true);
  const stick = () => {
    const console = document.getElementById("console");
    if (console && follow) console.scrollTop = console.scrollHeight;
  };
  document.addEventListener("htmx:oobAfterSwap", stick);
  document.addEventListener("DOMContentLoaded", stick);
})();

// Forms that ask before they act (data-confirm): the policy forbids inline onsubmit handlers.
// Capture phase, so a refusal also stops htmx's own submit handler on the form.
document.addEventListener("submit", (event) => {
  const message = event.target instanceof HTMLFormElement ? event.target.dataset.confirm : null;
  if (message && !window.confirm(message)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

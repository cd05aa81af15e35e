// Dark mode, loaded in <head> so the page never paints in the wrong theme. It follows the
// system until the person picks a side with the toggle; the choice is remembered in
// localStorage and in a cookie (so the server renders the right class on the next page).
// Picking the side the system already shows forgets the choice: back to following it.
(function () {
  var root = document.documentElement;
  root.classList.add("js");
  var KEY = "dac-theme";
  var media = window.matchMedia("(prefers-color-scheme: dark)");

  function read() {
    var value = null;
    try { value = localStorage.getItem(KEY); } catch (e) { /* storage blocked */ }
    if (!value) {
      var match = document.cookie.match(/(?:^|;\s*)dac_theme=(dark|light)/);
      value = match ? match[1] : null;
    }
    return value === "dark" || value === "light" ? value : null;
  }

  function remember(value) {
    var secure = location.protocol === "https:" ? "; Secure" : "";
    try {
      if (value) localStorage.setItem(KEY, value); else localStorage.removeItem(KEY);
    } catch (e) { /* storage blocked: the cookie still works */ }
    document.cookie = "dac_theme=" + (value || "") + "; Path=/; SameSite=Lax; Max-Age=" + (value ? 31536000 : 0) + secure;
  }

  function sync() {
    var dark = root.classList.contains("dark");
    var buttons = document.querySelectorAll("[data-theme-toggle]");
    for (var i = 0; i < buttons.length; i++) buttons[i].setAttribute("aria-pressed", dark ? "true" : "false");
  }

  // Switch without the colour transitions of buttons and links, which would otherwise fade
  // one by one into the new theme.
  function apply(dark) {
    if (root.classList.contains("dark") === dark) { sync(); return; }
    root.classList.add("theme-switching");
    root.classList.toggle("dark", dark);
    sync();
    window.getComputedStyle(root).color; // force the style change to apply now
    window.setTimeout(function () { root.classList.remove("theme-switching"); }, 0);
  }

  var choice = read();
  apply(choice ? choice === "dark" : media.matches);

  var onSystemChange = function (event) { if (!read()) apply(event.matches); };
  if (media.addEventListener) media.addEventListener("change", onSystemChange);
  else if (media.addListener) media.addListener(onSystemChange);

  document.addEventListener("DOMContentLoaded", sync);
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("[data-theme-toggle]")) return;
    var dark = !root.classList.contains("dark");
    apply(dark);
    remember(dark === media.matches ? null : dark ? "dark" : "light");
  });
})();

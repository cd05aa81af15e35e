// Dark mode: follows the system unless the user picked a side (remembered in localStorage).
(function () {
  var stored = localStorage.getItem("dac-theme");
  var dark = stored ? stored === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.classList.toggle("dark", dark);
  document.addEventListener("click", function (event) {
    if (!event.target.closest("[data-theme-toggle]")) return;
    var nowDark = !document.documentElement.classList.contains("dark");
    document.documentElement.classList.toggle("dark", nowDark);
    localStorage.setItem("dac-theme", nowDark ? "dark" : "light");
  });
})();

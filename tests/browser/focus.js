// The element that has keyboard focus: its order of first arrival (to detect wrapping), a
// short description, whether an outline shows (on it, or on a container within two levels
// that draws the ring with :focus-within), and whether it is on screen at all.
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  if (!el.dataset.tabOrder) el.dataset.tabOrder = String(document.querySelectorAll("[data-tab-order]").length + 1);
  const rect = el.getBoundingClientRect();
  let ring = false;
  for (let node = el, depth = 0; node && depth < 3; node = node.parentElement, depth++) {
    const style = getComputedStyle(node);
    if (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) { ring = true; break; }
  }
  const name = (el.getAttribute("aria-label") || el.textContent || el.id || el.name || "").trim().replace(/\s+/g, " ").slice(0, 40);
  return { order: el.dataset.tabOrder, what: el.tagName.toLowerCase() + " " + JSON.stringify(name), ring: ring, shown: rect.width > 0 && rect.height > 0 };
}

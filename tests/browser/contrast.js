// WCAG 2 contrast of every visible piece of text on the page against the background it is
// drawn on (backgrounds composited up the tree; text over images or gradients is skipped).
// Returns the failures: [{text, ratio, needed, fg, bg, where}]. Colours are resolved through a
// canvas, so oklch() and color-mix() values count exactly as the browser paints them.
() => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const cache = new Map();
  function rgba(color) {
    if (cache.has(color)) return cache.get(color);
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = "rgba(0,0,0,0)";
    ctx.fillStyle = color;
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    const value = [d[0], d[1], d[2], d[3] / 255];
    cache.set(color, value);
    return value;
  }
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat(1);
  };
  const channel = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const ratio = (a, b) => { const [l1, l2] = [luminance(a), luminance(b)].sort((x, y) => y - x); return (l1 + 0.05) / (l2 + 0.05); };

  function background(el) {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage && style.backgroundImage !== "none") return null;
      const color = rgba(style.backgroundColor);
      if (color[3] > 0) layers.push(color);
      if (color[3] >= 1) break;
    }
    let result = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) result = over(layers[i], result);
    return result;
  }

  function hidden(el) {
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.visibility === "hidden" || style.display === "none" || Number(style.opacity) < 1) return true;
      if (node.matches("[disabled], [aria-disabled=true]")) return true;
    }
    const rect = el.getBoundingClientRect();
    return rect.width <= 1 || rect.height <= 1;
  }

  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    if (!text.data.trim()) continue;
    const el = text.parentElement;
    if (!el || seen.has(el) || el.closest("script, style, template, noscript, option, title, svg")) continue;
    seen.add(el);
    if (hidden(el)) continue;
    const bg = background(el);
    if (!bg) continue;
    const style = getComputedStyle(el);
    const fg = over(rgba(style.color), bg);
    const size = parseFloat(style.fontSize);
    const bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const value = ratio(fg, bg);
    if (value + 0.005 < needed) {
      failures.push({
        text: text.data.trim().slice(0, 60),
        ratio: Math.round(value * 100) / 100,
        needed: needed,
        fg: style.color,
        bg: "rgb(" + bg.slice(0, 3).map(Math.round).join(",") + ")",
        where: el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).slice(0, 4).join(".") : ""),
      });
    }
  }
  return failures;
}

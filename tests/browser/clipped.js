// Elements that stick out past the right edge of the screen (cut off, or scrolling the page
// sideways). Content inside a horizontal scroller (a code block, a wide table) is fine.
() => {
  const width = document.documentElement.clientWidth;
  const inScroller = (el) => {
    for (let node = el.parentElement; node; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowX;
      if (overflow === "auto" || overflow === "scroll") return true;
    }
    return false;
  };
  return [...document.body.querySelectorAll("*")]
    .filter((el) => {
      const rect = el.getBoundingClientRect();
      return rect.width > 1 && rect.height > 1 && rect.right > width + 1 && getComputedStyle(el).visibility !== "hidden" && !inScroller(el);
    })
    .map((el) => el.tagName.toLowerCase() + "." + String(el.className).split(" ").slice(0, 3).join(".") + " right=" + Math.round(el.getBoundingClientRect().right));
}

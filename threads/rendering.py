"""Model output to HTML, safely: Markdown with raw HTML escaped, unsafe links dropped, code
highlighted by Pygments. Model output never reaches a page as raw HTML."""

from __future__ import annotations

from html import escape

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True, classstyle=True)


def _highlight(code: str, lang: str, _attrs) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer else escape(code)
    label = escape(lang or "text")
    return f'<pre class="code-block" data-lang="{label}"><code class="highlight">{body}</code></pre>'


# "commonmark" with html=False: any HTML in the text is shown as text. linkify off: no surprises.
_MD = MarkdownIt("commonmark", {"html": False, "highlight": _highlight, "breaks": True}).enable("table").enable("strikethrough")


def render_markdown(text: str) -> str:
    return _MD.render(text or "")


def pygments_css() -> str:
    return HtmlFormatter(style="github-dark").get_style_defs(".highlight")

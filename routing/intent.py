"""Intent detection for chat-message routing (no Django, no I/O, no model).

:func:`analyze` looks at one message and says, independently, whether it

* needs fresh / live information or asks to search (``web``),
* asks for code, a query, a shell command or structured output, or contains
  code / an error trace (``structured``),
* is a factual question with a stable answer, a definition or a math problem
  (``question``),

each with a human-readable reason.  Anything else is ``default`` (creative
writing, rewriting / summarising / translating given text, chat, opinion,
advice, role-play).  :mod:`routing.rules` turns that into a routing decision
(rule order, disabled rules, the long-context rule).

How it works, briefly:

1. *Zones.*  The "instruction" is what the user asks: short messages are all
   instruction; longer ones give their first prose line (or the part before a
   ``summarize this:``-style colon) plus their last prose line.  Pasted
   material (articles, e-mails, code lines) is the "payload": time words inside
   a pasted article must not turn a summarisation request into a news query.
   Code is detected over the whole body (head + tail of very long texts, so
   cost stays bounded).  Text is folded (lower case, Latin accents stripped)
   so multilingual vocabularies match "noticias" and "notícias" alike.
2. *Signals* (hand-written, multilingual regex families in
   :mod:`routing.lexicon`): code lines, error traces, inline code, programming
   vocabulary, output formats; time words and topics whose value changes
   (prices, weather, scores, office holders, releases, news, status, local
   hours ...); question form scored per clause ("I was reading about Rome and
   got curious: how did they ...?"), definitions, math / word problems / unit
   conversions; creative, transform, translate, chat, opinion, advice,
   role-play and brainstorming cues.
3. *Vetoes* for the classic conflicts: creative writing beats topic words
   ("write a song about the weather"), a code request beats the time words it
   contains ("sql for users who signed up this week"), definitions and
   mechanisms beat volatile nouns ("what is the stock market"), math word
   problems beat prices, chat / feelings beat "today", past years and history
   make "who won" a stable question, a translation is never a web query.

All regexes are compiled at import time; a call costs ~0.1-0.2 ms (about 1 ms
for a 32k-character paste, which is analysed head + tail only).
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass

from . import lexicon as L

__all__ = ["Analysis", "analyze", "classify_intent", "INTENTS"]

INTENTS = ("web", "structured", "question", "default")

THIS_YEAR = datetime.date.today().year

# Texts longer than this are analysed as head + tail only (bounded cost).
_HEAD_CHARS = 3000
_TAIL_CHARS = 1000
_SHORT_INSTR = 400
_MAX_LINES = 80  # lines of a long paste inspected (head + tail)


# ---------------------------------------------------------------------------
# Folding: lower-case, strip Latin accents, straighten quotes.  Length-preserving
# (one char in, one char out) so match offsets map back onto the original text.
# ---------------------------------------------------------------------------


def _build_fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for cp in range(0xC0, 0x250):
        ch = chr(cp)
        base = unicodedata.normalize("NFKD", ch)[0]
        if base != ch and base.isascii() and base.isalpha():
            table[cp] = base.lower()
    table.update(
        {
            0x2018: "'", 0x2019: "'", 0x201B: "'", 0x00B4: "'", 0x0060: "`",
            0x201C: '"', 0x201D: '"', 0x201E: '"', 0x00AB: '"', 0x00BB: '"',
            0x2013: "-", 0x2014: "-", 0x00A0: " ", 0x00BF: " ", 0x00A1: " ",
            0xFF1F: "?", 0xFF01: "!", 0x3000: " ", 0x061F: "?", 0x060C: ",", 0x3001: ",", 0x3002: ".",
        }
    )
    return table


_FOLD = _build_fold_table()


def _fold(s: str) -> str:
    return s.lower().translate(_FOLD)


def _top_level_alternatives(pattern: str) -> list[str]:
    """Split a regex on its top-level ``|`` (outside groups, classes and escapes)."""
    parts, depth, in_class, start, i = [], 0, False, 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]" or pattern[i + 1 : i + 3] == "^]":
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _factor(pattern: str) -> str:
    r"""Rewrite ``\bA|\bB|C`` as ``\b(?:A|B)|C``.

    Same language, but CPython's matcher then rejects positions inside words
    with one check instead of trying every alternative there, which makes the
    big vocabulary alternations several times faster.
    """
    alts = _top_level_alternatives(pattern)
    if len(alts) < 2:
        return pattern
    bounded = [a[2:] for a in alts if a.startswith(r"\b")]
    if len(bounded) < 2:
        return pattern
    others = [a for a in alts if not a.startswith(r"\b")]
    return "|".join([r"\b(?:" + "|".join(bounded) + ")", *others])


def _c(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(_factor(pattern), flags)


def _alt(patterns: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    flat: list[str] = []
    for p in patterns:
        flat.extend(_top_level_alternatives(p))
    return re.compile(_factor("|".join(flat)))


def _words(alternation: str) -> re.Pattern[str]:
    """Whole-word alternation that also works for words like ``c++`` or ``.net``."""
    # ASCII boundaries: "用Python写" or "SQLで" must still count as the word python / sql.
    return re.compile(r"(?<![A-Za-z0-9_.#+-])(?:" + alternation + r")s?(?![A-Za-z0-9_#+])")


# ---------------------------------------------------------------------------
# Compiled signal families
# ---------------------------------------------------------------------------

_SEARCH = _alt(L.SEARCH)
_TEMPORAL_STRONG = _alt(L.TEMPORAL_STRONG)
_TEMPORAL_WEAK = _alt(L.TEMPORAL_WEAK)
_VOLATILE = [(_c(p), w) for p, w in L.VOLATILE]
# One pass over the union first: most messages have no volatile topic at all.
_VOLATILE_GATE = _alt([p for p, _ in L.VOLATILE])
_HISTORICAL = _c(L.HISTORICAL)
_EVENT_VOLATILE = _c(
    r"\bwho (?:won|win|wins)\b|\b(?:elections?|scores?|results?|champions?|winners?|super bowl|world cup|olympics|final|win|won|lose|lost|beat|died|deaths?|death toll|killed|casualties)\b"
)
_YEAR = _c(r"(?<![\w.,/-])((?:19|20|21)\d\d)(?![\w.,/%-]|\s*(?:[-+*/x×÷^]|divided|times|plus|minus)\s*\d)")

_TECH_STRONG = _words(L.TECH_STRONG)
_TECH_WEAK = _words(L.TECH_WEAK)
_TECH_LANG_CONTEXT = _c(
    r"\b(?:in|using|with|en|em|mit|con|avec)\s+(?:go|golang|c|r|rust|swift|ruby|dart|lua|elixir|scala|julia|kotlin|assembly|bash|latex"
    r"|react|vue|angular|pandas|excel|google sheets|sheets|flutter|flask|svelte|jest|rails|selenium)(?![\w&+#])"
    r"|\b(?:react|angular|vue) (?:app|component|hook|native|router|state|query|project|props?)\b|\breact'?s? use\w+"
    r"|\b(?:pandas|numpy) (?:dataframe|df|series|array|read_csv|groupby|merge)\b|\bimport (?:pandas|numpy|react|os|sys)\b"
    r"|\b(?:excel|sheets|spreadsheet) (?:formula|function|macro|sheet|cell|column)s?\b|\b(?:in|on) (?:the )?terminal\b|\bterminal command\b"
    r"|\blatex (?:code|document|table|equation|formula)\b|\bcurl (?:-|https?:)|\bassembly (?:language|code)\b"
    r"|(?<!\S)(?:===|!==|==|!=|&&|\|\||=>|::|\+\+|\+=|\*\*)(?!\S)"
    r"|['\"`]\w+['\"`] (?:keyword|statement|operator|method|function|command|flag)\b"
    r"|\bkeyword in (?:python|java|javascript|js|c|c\+\+|c#|go|rust|sql|swift|kotlin)\b"
    r"|\b(?:keyboard )?shortcut\b.{0,40}\b(?:vscode|vs code|intellij|vim|excel|chrome|terminal)\b"
)
_TECH_FALSE = _c(L.TECH_FALSE_FRIENDS)
_TECH_HISTORY = _c(
    r"^(?:who (?:invented|created|made|founded|developed|designed|wrote)|when (?:was|were|did)\b.{0,40}\b(?:created|invented|released|founded|made|developed)|what year was)"
)
_MATHY_TECH = {"function", "functions", "variable", "variables", "integer", "ints", "array", "arrays", "matrix", "vector", "tensor", "log", "value", "values"}

_CODE_ASK = _c(
    r"\b(?:" + L.CODE_VERBS + r")\b(?:\s+\w+){0,6}?\s+(?:a |an |the |some |me |my |this |that |it |\d+ )?(?:[\w+#.-]+ ){0,3}(?:" + L.CODE_OBJECTS + r")\b"
    r"|\b(?:sql|regex|regexp|query|script|function|command|code|snippet|one[- ]?liner|program|formula|macro|cron)\s+(?:to|that|which|for|para|pour|um|zum|per|que|qui)\b"
    r"|\b(?:fix|debug|refactor|optimi[sz]e|clean up|review|explain|comment|document|convert|port|translate|rewrite|test)\b(?:\s+\w+){0,3}?\s+(?:my|this|the|that|it|following)?\s*(?:code|script|function|program|query|regex|sql|class|method|snippet|loop|component|bug|error)\b"
    r"|\b(?:what'?s wrong with|whats wrong with|why (?:does|doesn'?t|is|isn'?t|won'?t|wont|do|did|am i getting)|what does|explain|how does)\b.{0,20}\b(?:this|my|the following)\b.{0,20}\b(?:code|script|function|snippet|line|query|regex|command|program|error|do)\b"
    r"|\b(?:wont|won'?t|doesn'?t|does not|cant|can'?t|not) (?:compile|build|run|work(?:ing)? in (?:python|js|java|c))\b"
    r"|\b(?:what does|explain|what is)\s+`"
)
_FIX_WORDS = _c(
    r"\b(?:fix|debug|refactor|explain|what does|what's wrong|whats wrong|why|error|errors|bug|wrong|doesn'?t work|not working|fails?|failing|crash(?:es|ing)?|throws?|returns?|prints?|output|compile|run|runs|optimi[sz]e|review|improve|convert|translate|test|tests|erklar\w*|explica\w*|corrig\w*|arregl\w*)\b"
)
_FORMAT = _alt(L.FORMAT_REQUEST)
_DATA_FORMAT_WORD = _c(r"\b(?:json|yaml|yml|csv|xml|toml)\b")
_CODE_NOUN = _c(r"\b(?:sql|regex|regexp|script|code|query|function|snippet|command|one[- ]?liner|dockerfile|makefile|cron)\b")
_NOT_WEB_SEARCH = _c(r"\b(?:binary|linear) search\b|\bsearch (?:bar|box|function|algorithm|engine optimi|query|field|input)\b")
_RELEASE_WORD = _c(r"\b(?:version|release|update|changelog|out yet|come out|announced)\b")
_CREATIVE_OBJ = _c(r"\b(?:" + L.CREATIVE_VERBS + r")\b(?:\s+\w+){0,5}?\s+(?:" + L.CREATIVE_NOUNS + r")s?\b")

# Code syntax, line by line (run on the raw, case-preserved body).
_CODE_START = _c(
    r"^\s*(?:def \w+\s*\(|class \w+\s*[:({]|import [\w.]+|from [\w.]+ import|return\b|elif\b|else\s*:|except\b.*:|try\s*:|finally\s*:|raise \w|yield\b|async def|await \w"
    r"|public |private |protected |static |void |package [\w.]+;?|using [\w.]+;|namespace \w|#include|#define|#!/|fn \w+\s*\(|impl\b|pub (?:fn|struct)|let (?:mut )?\w+\s*[:=]|const \w+\s*=|const \[|var \w+\s*=|function\s*\w*\s*\("
    r"|export (?:default|const|function|class)|module\.exports|interface \w+\s*\{|struct \w+\s*\{|enum \w+\s*\{|<\?php|<!doctype|\$ [a-z]|>>> |@\w+(?:\(|$)"
    r"|(?:SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE (?:TABLE|INDEX|VIEW)|ALTER TABLE|DROP TABLE|WITH \w+ AS)\b"
    r"|(?:select|SELECT) (?:\*|distinct|count\(|[\w.]+(?:\s*,\s*[\w.]+)+) (?:from|FROM) \w"
    r"|console\.\w+\(|print\(|printf\(|System\.out|std::|fmt\.|echo [\"$]|if\s*\(.*\)\s*\{?|for\s*\(.*\)|while\s*\(.*\)|switch\s*\(|\}\s*else"
    r"|(?:if|elif|while) [^:\n]*(?:==|!=|<=|>=|<|>| not | in | is )[^:\n]*:\s*$|for \w+(?:\s*,\s*\w+)* in (?:\w+(?:\.\w+)*\(.*\)\s*:|[\w.]+\[.*\]\s*:|[a-z_]\w*\s*:\s*$)|with \w+(?:\.\w+)*\(.*\)(?: as \w+)?:\s*$|(?:else|try|finally)\s*:\s*$"
    r"|[\w.\[\]'\"]+\s*(?:=|\+=|-=|:=)\s*[\w.]+\(.*\)\s*(?:;|#.*|//.*)?$|[\w.]+\s*=\s*(?:\[.*\]|\{.*\}|\d+|'[^']*'|\"[^\"]*\"|True|False|None|null|true|false)\s*(?:;|#.*|//.*)?$)",
    re.M,
)
_CODE_END = _c(r"(?:[;{]|^\s*[}\])]+[;,)]*|\)\s*:|=>\s*\{?)\s*$", re.M)
_CODE_OPS = _c(r"===|!==|==|!=|=>|::|&&|\|\||\+=|-=|\*=|\+\+|<<|>>|\?\?")
# Identifier-ish tokens: method call, empty call, indexing, snake_case, camelCase.
# Each alternative starts with a literal / small class so the scan stays linear and fast.
_CODE_CALL = _c(r"(?<=\w)\.[A-Za-z_]\w*\(|(?<=\w\w\w)\(\)|(?<=\w)\[['\"\d]|(?<=[a-z])_[a-z0-9]|(?<=[a-z][a-z])[A-Z][a-z]")
_NOT_CAMEL = _c(r"^(?:macOS|iOS|iPadOS|tvOS|watchOS|eBay|iPhone|iPad|iMac|youTube|YouTube|PhD|McDonald\w*|LinkedIn|PayPal|iCloud|WhatsApp|TikTok|GitHub|JavaScript|TypeScript|PowerPoint|OneDrive|PlayStation|FedEx|HubSpot|WordPress)$")
_TOKEN_AROUND = _c(r"[\w.]*$")


def _code_call(text: str) -> re.Match[str] | None:
    """First identifier-ish code token, ignoring brand names like iPhone / YouTube."""
    for m in _CODE_CALL.finditer(text):
        if m.group(0)[0].isupper():  # camelCase: check the whole word
            start = m.start() - len(_TOKEN_AROUND.search(text, 0, m.start()).group(0))
            end = m.end()
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            if _NOT_CAMEL.match(text[start:end]):
                continue
        return m
    return None


_INDENT_SYM = _c(r"[=(){}\[\]:;]")
_HTML_TAG = _c(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s+[\w:-]+(?:=(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*\s*/?>")
# Error traces: case-sensitive shapes (raw text) ...
_TRACE = _c(
    r"Traceback \(most recent call last\)|^[ \t]*File \"[^\"\n]+\", line \d+|^[ \t]*at [\w.$<>]+\([^)\n]*\)|(?<=[a-z])(?:Error|Exception)\b(?::|[ \t]+at\b|[ \t]*$)"
    r"|npm ERR!|error\[E\d+\]|\berror (?:TS|CS|C|LNK)\d+|\bE[A-Z]{4,}\b(?=[: ])|NullPointer|Uncaught [A-Z]\w+|\bfatal: |^[ \t]*\^+[ \t]*$"
    r"|\bline \d+, in\b|(?<=\w)\.(?:py|js|ts|java|cpp|c|go|rs|rb|php|kt|cs):\d+",
    re.M,
)
# ... and typical error phrases, matched on lower-cased text.
_TRACE_PHRASES = _c(
    r"\bsegmentation fault\b|\bcore dumped\b|\bundefined reference to\b|\bcannot find (?:module|symbol|package)\b|\bcommand not found\b|\bno such file or directory\b"
    r"|\bpermission denied\b|\baccess denied for user\b|\bmodule not found\b|\bcannot import name\b|\bunexpected token\b|\bunexpected indent\b|\bis not defined\b"
    r"|\bis not a function\b|\bhas no attribute\b|\bnot recognized as an internal or external command\b|\bout of memory\b|\bsyntax ?error\b|\bstack ?trace\b"
    r"|\bexit(?:ed)? (?:with )?(?:code|status) -?\d+|\b(?:error|warning): [\w'\"/.-]+"
)
_INLINE_CODE = _c(
    r"```|`[^`\n]{2,}`|\{\s*\"[\w -]+\"\s*:|\[\s*\{"
    r"|\b(?:sudo|npm|npx|pip3?|git|docker|kubectl|curl|wget|chmod|chown|awk|sed|grep|ssh|scp|brew|apt(?:-get)?|yarn|cargo|go (?:run|build|get)|python3? \S+\.py|node \S+\.js|ls|cd|rm|mkdir)[ \t]+-{0,2}[\w.'\"{/$~-]"
    r"|(?<=\w)\.(?:py|js|ts|jsx|tsx|java|cpp|cc|hpp|cs|go|rs|rb|php|html|css|scss|json|ya?ml|toml|sql|sh|ps1|bat|ipynb|env|lock|gradle|kt|vue|svelte|gitignore)\b|(?<!\S)\.gitignore\b"
    r"|\b(?:print|printf|println|console\.log|System\.out\.print\w*|range|len|enumerate|isinstance|malloc|sizeof|typeof|require|fetch)\((?!\s*\))"
    r"|\blocalhost(?::\d+)?|/api/|\b(?:GET|POST|PUT|DELETE|PATCH) /|\$\{\w+\}|\$[A-Za-z_]\w*|\)[ \t]*=>|\)[ \t]*\{"
)

# Question / math / default cues (folded text).
_WH_START = _c(L.WH_START)
_YESNO_START = _c(
    r"^(?:(?:so|ok(?:ay)?|and|but|also|btw)[,:. ]+)*(?:is|are|was(?! (?:ist|sind|war|waren|bedeutet|heisst|kostet|macht|passiert|kann|sagt|gibt|ware|waere))|were|does|do|did|can|could|will|would|has|have|should|ist|sind|gibt es|est-ce|es verdad|e verdade)\b"
)
_REQ_PREFIX = _c(
    r"^(?:(?:hey|hi|hello|so|ok|okay|please|pls|plz|quick question|question|q|btw)[,:.!]?\s+)*"
    r"(?:(?:can|could|would|will) (?:you|u) (?:please |pls |plz )?(?=\w)|please |pls |plz |i (?:want|need|would like|'d like) (?:you )?to know |i (?:was )?wonder(?:ing)? (?:if |whether )?|do you know |does anyone know |i'?m curious (?:about )?|tell me (?=(?:what|who|when|where|why|how|which|whether|if)\b))?"
)
# Question words of scripts without spaces / with their own punctuation (CJK, Korean, Arabic, Hindi, Hebrew).
_CJK_Q = _c(
    r"什么|谁|哪|为什么|怎么|多少|几[个岁年]|吗[？?]?$|是不是|何|誰|どこ|いつ|なぜ|どう|ですか|か[？?]$|누구|무엇|뭐|어디|언제|왜|어떻게"
    r"|(?:^|\s)(?:ما|ماذا|من|متى|أين|لماذا|كيف|كم|هل|أي|ما هو|ما هي)\s|(?:^|\s)(?:क्या|कौन|कब|कहाँ|क्यों|कैसे|कितना|कितने)(?:\s|$)|(?:^|\s)(?:מה|מי|מתי|איפה|למה|איך|כמה)\s"
)
_QUESTION_CUES = [(_c(p), w, k) for p, w, k in L.QUESTION_CUES]
_QUESTION_GATE = _alt([p for p, _, _ in L.QUESTION_CUES])
_MATH = _alt(L.MATH_CUES)
_WORD_PROBLEM = _c(L.WORD_PROBLEM_CUES)
_NUMBER = _c(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])|(?<![\w.])\d+(?:am|pm|mph|km|kg|%)")
_UNIT_CONV = _alt(L.UNIT_CONVERSION)
_DEFAULT_CUES = [(_c(p), w, k) for p, w, k in L.DEFAULT_CUES]
_DEFAULT_GATE = _alt([p for p, _, _ in L.DEFAULT_CUES])
_CURRENCY_CTX = _c(r"\b(?:" + L.CURRENCIES + r"|exchange rate)\b|[$€£¥]")

_QUOTED = _c(r"(?:(?<=\s)|(?<=^)|(?<=:))(?:\"[^\"\n]{12,}\"|'(?:[^'\n]|(?<=[a-z])'(?=[a-z])){12,}'|“[^”\n]{12,}”)(?=[\s.,!?:;)]|$)")
_COLON_SPLIT = _c(r"^(.{2,160}?)\s*:\s*(\S.{12,})$", re.S)
_INSTR_VERB = _c(
    r"\b(?:summari[sz]e|summary|tl;?dr|translate|traduc\w*|traduz\w*|tradui\w*|ubersetz\w*|rewrite|rephrase|paraphrase|reword|proofread|correct|corrige\w*|fix|improve|edit|polish"
    r"|shorten|simplify|reply|respond|answer|convert|turn|format|parse|extract|explain|explica\w*|erklar\w*|classify|analy[sz]e|continue|make|check|review|resum\w*|zusammenfass\w*"
    r"|sql|write|refactor|debug|what does|what is|meaning|define|grammar|this|these|following|below|above|text|message|email|sentence|paragraph|article|story|code|error)\b"
)
_PAYLOAD_REF = _c(r"\b(?:this|these|the following|following|below|above|attached|esto|este texto|esta|ce texte|ceci|diesen text|das hier|isto|este|questo)\b")
_FRAGMENT_START = _c(r"^(?:latest|newest|recent|breaking|upcoming|any|current|live|today'?s?|tonight'?s?|tomorrow'?s?|yesterday'?s?|tell me|give me|show me|list|check|find|get me|update on|updates on|what'?s new)\b")


# ---------------------------------------------------------------------------
# Result type
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one message looks like.  ``None`` means "that intent does not match"."""

    web: str | None
    structured: str | None
    question: str | None
    default: str

    @property
    def intent(self) -> str:
        """The first matching intent in the default order web > structured > question > default."""
        if self.web:
            return "web"
        if self.structured:
            return "structured"
        if self.question:
            return "question"
        return "default"

    @property
    def reason(self) -> str:
        return getattr(self, self.intent) or self.default

    def matches(self, intent: str) -> str | None:
        """Reason string if ``intent`` matches this text, else ``None``."""
        if intent == "default":
            return self.default
        return getattr(self, intent)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _snippet(raw: str, folded: str, start: int, end: int, words: int = 2, limit: int = 60) -> str:
    """The matched span widened by up to ``words`` words each side, from the original text."""
    src = raw if len(raw) == len(folded) else folded
    s, e = start, end
    for _ in range(words):
        j = src.rfind(" ", 0, max(s - 1, 0))
        if s <= 0 or "\n" in src[max(j, 0):s]:
            break
        s = j + 1 if j >= 0 else 0
    for _ in range(words):
        if e >= len(src):
            break
        j = src.find(" ", e + 1)
        nxt = len(src) if j < 0 else j
        if "\n" in src[e:nxt]:
            break
        e = nxt
    out = " ".join(src[s:e].split()).strip(" ,.;:!?¿¡\"'")
    if len(out) > limit:
        out = out[: limit - 1].rstrip() + "…"
    return out or src[start:end]


def _q(s: str) -> str:
    return f"(\u201c{s}\u201d)"


@dataclass(slots=True)
class _Zones:
    raw: str  # stripped original text (bounded)
    instr_raw: str
    instr: str  # folded instruction
    web_instr: str  # folded instruction without quoted material
    payload: str
    has_payload: bool
    code_lines: list[str]


_LEAD_PUNCT = " \t¿¡\"'([{*•>#-–—`"


def _line_code_score(ln: str) -> int:
    """How code-like one line is (>= 2: treat as code)."""
    ls = 0
    if _CODE_START.search(ln):
        ls += 2
    if _CODE_END.search(ln):
        ls += 1
    if _CODE_OPS.search(ln):
        ls += 1
    if _code_call(ln):
        ls += 1
    if "<" in ln and _HTML_TAG.search(ln):
        ls += 2
    if (ln.startswith("    ") or ln.startswith("\t")) and _INDENT_SYM.search(ln):
        ls += 1
    return ls


def _is_code_line(ln: str) -> bool:
    """`_line_code_score(ln) >= 2`, cheapest checks first: most lines of a long message are prose
    that scores 0 on them, and then the costliest check (an identifier-ish token, +1 at most)
    cannot make the line code."""
    if _CODE_START.search(ln) or ("<" in ln and _HTML_TAG.search(ln)):
        return True
    ls = bool(_CODE_END.search(ln)) + bool(_CODE_OPS.search(ln))
    ls += bool((ln.startswith("    ") or ln.startswith("\t")) and _INDENT_SYM.search(ln))
    return ls >= 2 or (ls == 1 and _code_call(ln) is not None)


def _zones(text: str) -> _Zones:
    body = text if len(text) <= _HEAD_CHARS + _TAIL_CHARS else text[:_HEAD_CHARS] + "\n" + text[-_TAIL_CHARS:]
    raw_lines = body.split("\n")
    if len(raw_lines) > _MAX_LINES:
        raw_lines = raw_lines[: _MAX_LINES - 20] + raw_lines[-20:]
    payload = ""
    code_lines: list[str] = []
    if len(raw_lines) == 1:
        s = body.strip()
        if len(s) < 400 and _is_code_line(s):
            code_lines.append(s)
        m = _COLON_SPLIT.match(s)
        if m and _INSTR_VERB.search(_fold(m.group(1))):
            instr_raw, payload = m.group(1), m.group(2)
        elif len(s) <= _SHORT_INSTR:
            instr_raw = s
        else:
            instr_raw, payload = s[:300] + " \n " + s[-200:], s[300:-200]
    else:
        prose: list[str] = []
        for ln in raw_lines:
            if len(ln.strip()) < 2:
                continue
            if _is_code_line(ln):
                code_lines.append(ln)
            else:
                prose.append(ln.strip())
        parts: list[str] = []
        payload_parts: list[str] = []
        if prose:
            first, rest = prose[0], prose[1:]
            m = _COLON_SPLIT.match(first)
            if m and _INSTR_VERB.search(_fold(m.group(1))):
                parts.append(m.group(1))
                payload_parts.append(m.group(2))
            else:
                parts.append(first[:300])
            if rest:
                last = rest[-1]
                if len(last) <= 300:
                    parts.append(last)
                    payload_parts.extend(rest[:-1])
                else:
                    payload_parts.extend(rest)
        payload_parts.extend(code_lines)
        instr_raw = " \n ".join(parts)
        payload = "\n".join(payload_parts)
    instr_raw = instr_raw.strip(_LEAD_PUNCT)
    instr = _fold(instr_raw)
    web_instr = _QUOTED.sub(" ", instr) if ("'" in instr or '"' in instr) else instr
    has_payload = len(payload) >= 60 or (len(payload) >= 10 and bool(_PAYLOAD_REF.search(instr)))
    return _Zones(body, instr_raw, instr, web_instr, payload, has_payload, code_lines)


def _code_evidence(z: _Zones) -> tuple[float, str]:
    """(score, snippet) for code / traces in the raw body.  >= 3 means "clearly code"."""
    body = z.raw if len(z.raw) <= 2000 else z.raw[:1500] + "\n" + z.raw[-500:]
    best = ""
    score = 0.0
    m = _TRACE.search(body) or _TRACE_PHRASES.search(body.lower())
    if m:
        score += 3.0
        best = m.group(0)
    n = len(z.code_lines)
    if n:
        strongest = max(_line_code_score(ln) for ln in z.code_lines[:20])
        score += 2.0 + min(n - 1, 3) + (1.0 if strongest >= 4 else 0.0)
        best = best or z.code_lines[0].strip()
    im = _INLINE_CODE.search(body)
    if im:
        score += 1.5 if im.group(0) != "```" else 4.0
        best = best or im.group(0).strip()
    if not n:
        cm = _code_call(body)
        if cm:
            score += 1.0
            best = best or _snippet(body, body, cm.start(), cm.end(), words=0, limit=40)
        om = _CODE_OPS.search(body)
        if om and om.group(0) in ("===", "!==", "==", "!=", "=>", "::", "&&", "||", "+=", "++"):
            score += 1.0
            best = best or om.group(0)
    return score, best.strip()[:60]


def _tech_score(instr: str, mathy: bool) -> tuple[float, str, int, int]:
    """(score, first term, start, end) of programming vocabulary in the folded instruction."""
    text = _TECH_FALSE.sub(lambda m: " " * len(m.group(0)), instr) if _TECH_FALSE.search(instr) else instr
    score = 0.0
    first: tuple[str, int, int] | None = None
    seen: set[str] = set()
    for m in _TECH_STRONG.finditer(text):
        w = m.group(0)
        if w in seen or (mathy and w in _MATHY_TECH):
            continue
        seen.add(w)
        score += 2.0
        first = first or (w, m.start(), m.end())
    for m in _TECH_LANG_CONTEXT.finditer(text):
        w = m.group(0)
        if w in seen:
            continue
        seen.add(w)
        score += 2.0
        first = first or (w, m.start(), m.end())
    weak = 0
    for m in _TECH_WEAK.finditer(text):
        w = m.group(0)
        if w in seen or (mathy and w in _MATHY_TECH):
            continue
        seen.add(w)
        weak += 1
        first = first or (w, m.start(), m.end())
    score += 0.75 * min(weak, 4)
    if first is None:
        return 0.0, "", 0, 0
    return score, first[0], first[1], first[2]


_CLAUSE_BREAK = _c(r"[.!?:;]+\s+|\s*\n\s*")
_MAX_CLAUSES = 12


def _clauses(instr: str) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences / clauses of the instruction.

    A clause ending in "?" that starts with a comma-separated lead-in ("In chess,
    can a pawn ...") also yields the part after the first comma.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _CLAUSE_BREAK.finditer(instr):
        if m.start() > pos:
            spans.append((pos, m.end() if instr[m.start()] == "?" else m.start()))
        pos = m.end()
    if pos < len(instr):
        spans.append((pos, len(instr)))
    if len(spans) > _MAX_CLAUSES:
        spans = spans[: _MAX_CLAUSES // 2] + spans[-_MAX_CLAUSES // 2 :]
    extra = []
    for a, b in spans:
        if instr[a:b].rstrip().endswith("?"):
            comma = instr.find(", ", a, b)
            if 0 < comma - a < 40:
                extra.append((comma + 2, b))
    return spans + extra


def _clause_question(raw: str, instr: str, start: int, end: int) -> tuple[float, str, str]:
    """(score, kind, snippet) for how much ``instr[start:end]`` reads as a factual question."""
    clause = instr[start:end]
    pm = _REQ_PREFIX.match(clause)
    off = start + (pm.end() if pm else 0)
    qi = instr[off:end]
    score, kind, snip = 0.0, "", ""
    wh = _WH_START.match(qi)
    if wh:
        score = 1.5 if _YESNO_START.match(qi) else 2.0
        kind, snip = "wh", _snippet(raw, instr, off + wh.start(), off + wh.end(), words=4)
    elif _CJK_Q.search(qi):
        score, kind, snip = 2.0, "wh", raw[start : start + 40]
    cue_best = 0.0
    for rx, w, k in _QUESTION_CUES if _QUESTION_GATE.search(qi) else ():
        m = rx.search(qi)
        if m and w > cue_best:
            cue_best = w
            if w >= 2.0 or not kind:
                kind, snip = k, _snippet(raw, instr, off + m.start(), off + m.end(), words=3)
    score += cue_best
    if qi.rstrip().endswith("?") and score < 2.5:
        score += 0.5
    return score, kind, snip


# ---------------------------------------------------------------------------
# Main entry points
# ---------------------------------------------------------------------------


def analyze(text: str) -> Analysis:
    """Score one message for every intent.  Pure and fast (no I/O, no state)."""
    t = (text or "").strip()
    if not t:
        return Analysis(None, None, None, "Empty message, nothing to route on")
    z = _zones(t)
    instr, wi = z.instr, z.web_instr

    # ---- default-ish cues (creative / transform / chat / opinion / advice) ----
    d_score, d_kind, d_snip, d_start = 0.0, "", "", 0
    for rx, w, kind in _DEFAULT_CUES if _DEFAULT_GATE.search(instr) else ():
        m = rx.search(instr)
        if m and w > d_score:
            d_score, d_kind, d_start = w, kind, m.start()
            d_snip = _snippet(z.instr_raw, instr, m.start(), m.end(), words=1)
    creative = d_kind == "creative"
    transform = d_kind in ("transform", "translate")
    translate = d_kind == "translate"
    personal = d_kind in ("chat", "advice", "opinion", "roleplay")

    # ---- math ----
    n_numbers = len(_NUMBER.findall(instr))
    math_m = _MATH.search(instr)
    unit_m = _UNIT_CONV.search(instr)
    word_problem = n_numbers >= 2 and bool(_WORD_PROBLEM.search(instr))
    mathy = bool(math_m or unit_m or word_problem)
    currency = bool(_CURRENCY_CTX.search(instr))

    # ---- question cues: scored per clause, so "context first, question last" works ----
    q_score, q_kind, q_snip, q_start, q_end = 0.0, "", "", 0, len(instr)
    for c_start, c_end in _clauses(instr):
        sc, kind, snip = _clause_question(z.instr_raw, instr, c_start, c_end)
        if sc > 0 and sc >= q_score:
            q_score, q_kind, q_snip, q_start, q_end = sc, kind, snip, c_start, c_end
    if d_kind == "advice" and not (q_start <= d_start < q_end):
        # "My son asked me why the moon changes shape ... Why does it?": the personal
        # framing is outside the actual question, so it should not win on its own.
        d_score = min(d_score, 2.0)
    if mathy and not (currency and not word_problem):
        m = unit_m or math_m or _WORD_PROBLEM.search(instr)
        q_score = max(q_score, 3.0) + 1.0
        q_kind = "math"
        q_snip = _snippet(z.instr_raw, instr, m.start(), m.end(), words=3) if m else z.instr_raw[:40]
    explanatory = q_kind in ("definition", "explain", "compare", "mechanism", "why", "fact", "math", "quiz")

    # ---- structured ----
    code_score, code_snip = _code_evidence(z)
    if mathy and code_score < 3:
        code_score = 0.0
    tech, tech_term, ts, te = _tech_score(instr, mathy)
    fmt = _FORMAT.search(instr)
    code_ask = _CODE_ASK.search(instr)
    creative_obj = bool(_CREATIVE_OBJ.search(instr)) or creative
    structured: str | None = None
    if code_score >= 3:
        structured = f"Contains code or an error message {_q(code_snip)}"
    elif fmt and not (creative_obj and not _DATA_FORMAT_WORD.search(instr)):
        structured = f"Asks for structured output {_q(_snippet(z.instr_raw, instr, fmt.start(), fmt.end()))}"
    elif creative_obj or (transform and tech < 2) or (d_kind in ("chat", "advice", "opinion") and tech < 2 and code_score < 2):
        structured = None
    elif code_ask and (tech >= 0.75 or code_score >= 1 or _CODE_NOUN.search(instr)):
        structured = f"Asks for code, a query or a command {_q(_snippet(z.instr_raw, instr, code_ask.start(), code_ask.end(), words=1))}"
    elif tech >= 2 and not (_TECH_HISTORY.search(instr) and code_score == 0):
        structured = f"Programming / technical question {_q(_snippet(z.instr_raw, instr, ts, te))}"
    elif code_score >= 2 or (code_score >= 1 and (tech >= 0.75 or _FIX_WORDS.search(instr))):
        structured = f"Contains code {_q(code_snip)}"
    elif tech >= 1.5 and _FIX_WORDS.search(instr):
        structured = f"Programming / technical question {_q(_snippet(z.instr_raw, instr, ts, te))}"

    # ---- web ----
    web: str | None = None
    volatile_answer = False  # True when web matched because the answer changes over time
    search_m = _SEARCH.search(wi)
    if search_m and not _NOT_WEB_SEARCH.search(wi):
        web = f"Explicitly asks to search, look up or cite sources {_q(_snippet(z.instr_raw, instr, search_m.start(), search_m.end()))}"
    else:
        t_m = _TEMPORAL_STRONG.search(wi)
        t_strong = bool(t_m)
        if not t_strong and not mathy:
            for ym in _YEAR.finditer(wi):
                y = int(ym.group(1))
                if THIS_YEAR <= y <= THIS_YEAR + 8:
                    t_m, t_strong = ym, True
                    break
        tw_m = None if t_strong else _TEMPORAL_WEAK.search(wi)
        vol, vol_m = 0.0, None
        if _VOLATILE_GATE.search(wi):
            for rx, w in _VOLATILE:
                m = rx.search(wi)
                if m:
                    vol += w
                    if vol_m is None or w > vol_m[1]:
                        vol_m = (m, w)
        if vol and vol_m and _EVENT_VOLATILE.search(wi):
            past_year = any(int(y.group(1)) < THIS_YEAR for y in _YEAR.finditer(wi))
            if (past_year or _HISTORICAL.search(wi)) and not t_strong:
                vol = 0.0
        if explanatory and not t_strong and tw_m is None and q_kind != "wh":
            vol = 0.0  # "what is the stock market", "how does bitcoin mining work", "difference between weather and climate"
        if mathy and not currency:
            vol, t_strong, tw_m = 0.0, False, None
        code_request = structured is not None and (code_score >= 2 or code_ask or fmt)
        release_info = vol_m is not None and vol >= 2 and _RELEASE_WORD.search(wi)
        blocked = (
            creative_obj  # "write a song about the weather"
            or translate  # the text to translate is not a query
            or (transform and (z.has_payload or not t_strong))  # "summarize this article: <news>"
            or (code_request and not release_info)  # "sql for users who signed up this week"
        )
        if not blocked:
            info_form = bool(q_kind == "wh" or _WH_START.match(wi) or _FRAGMENT_START.match(wi) or wi.rstrip().endswith("?") or len(wi.split()) <= 5)
            if personal and d_score >= 3:
                # chat / advice / opinion: only a clearly volatile topic makes it a web query
                ok = vol >= 2 and d_kind not in ("chat", "roleplay")
            else:
                ok = vol >= 2 or (t_strong and (vol >= 0.5 or info_form)) or (vol >= 1 and tw_m is not None and info_form)
            if ok:
                m = vol_m[0] if vol_m and vol_m[1] >= 1 else (t_m or tw_m or (vol_m[0] if vol_m else None))
                snip = _snippet(z.instr_raw, instr, m.start(), m.end()) if m else z.instr_raw[:50]
                if t_m and vol_m and vol_m[1] >= 1 and abs(t_m.start() - vol_m[0].start()) < 40:
                    a, b = min(t_m.start(), vol_m[0].start()), max(t_m.end(), vol_m[0].end())
                    snip = _snippet(z.instr_raw, instr, a, b, words=1)
                web = f"Asks about something that changes over time {_q(snip)}"
                volatile_answer = True

    # ---- question ----
    question: str | None = None
    addressed_to_assistant = d_kind in ("opinion", "chat", "roleplay") and d_score >= 3
    if (
        q_score >= 2
        and q_score > d_score
        and code_score < 3  # pasted code / traces are not a factual question
        and not creative_obj
        and not addressed_to_assistant
        and not volatile_answer  # the answer changes over time: not "stable"
    ):
        label = {
            "definition": "Asks for a definition",
            "math": "Math, arithmetic or unit-conversion problem",
            "explain": "Asks for an explanation of a stable topic",
            "compare": "Asks for a factual comparison",
            "mechanism": "Asks how something works",
            "why": "Asks why something is the way it is",
            "quiz": "Quiz-style factual question",
        }.get(q_kind, "Factual question with a stable answer")
        question = f"{label} {_q(q_snip)}" if q_snip else label

    # ---- default reason ----
    if d_kind:
        label = {
            "creative": "Creative writing request",
            "transform": "Asks to rewrite, summarize or translate given text",
            "translate": "Translation request",
            "roleplay": "Role-play request",
            "chat": "Conversational message",
            "opinion": "Asks for an opinion",
            "advice": "Personal advice or feelings",
            "brainstorm": "Brainstorming / suggestions request",
        }[d_kind]
        default = f"{label} {_q(d_snip)}"
    else:
        default = f"No live-data, code or factual-question signal; open-ended request {_q(_snippet(z.instr_raw, instr, 0, min(len(instr), 30), words=0, limit=40))}"
    return Analysis(web, structured, question, default)


def classify_intent(text: str) -> tuple[str, str]:
    """``(intent, reason)`` where intent is one of web / structured / question / default."""
    a = analyze(text)
    return a.intent, a.reason

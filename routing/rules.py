"""Routing rules: pick the provider (and model) for one chat message.

Five rules, evaluated in order, first match wins:

==============  ==========  =========================================================
rule            provider    matches when
==============  ==========  =========================================================
``web``         perplexity  the message needs fresh / live information (news, prices,
                            weather, scores, schedules, releases, office holders, ...)
                            or explicitly asks to search, look up or cite sources
``structured``  openai      it asks for structured output (JSON, YAML, CSV, XML, a
                            table), a regex, SQL, shell commands, or to write / fix /
                            explain / refactor code, or it contains code / a trace
``long_context`` gemini     the thread already holds more than 10 messages
``question``    perplexity  a factual question with a stable answer, a definition,
                            a math or unit-conversion problem
``default``     openrouter  everything else (creative writing, brainstorming,
                            opinion, role-play, rewriting / summarising / translating
                            given text, chat, advice).  Always matches.
==============  ==========  =========================================================

Intent detection lives in :mod:`routing.intent` (hand-written multilingual
signals, no trained model); this module only applies order, disabled rules and
model overrides.  It is pure (no Django, no I/O) and fast (~0.15 ms per call
on typical messages, under ~1 ms for a 32k-character paste; long texts are
analysed head + tail).

Org configuration semantics
---------------------------
* ``rule_order``: names of rules in the order to try them.  Rules left out are
  appended in their default relative order (use ``disabled`` to switch a rule
  off).  ``default`` matches everything, so rules placed after it are never
  reached; if it is left out it goes last.  Duplicates are ignored.
* ``disabled``: rules to skip.  ``default`` is the catch-all and cannot be
  disabled: it is ignored there.
* ``models``: per-rule model overrides; missing / empty entries use
  :data:`DEFAULT_MODELS`.
* Unknown rule names in any of the three raise :class:`ValueError`.
* Empty / whitespace-only text always routes to ``default`` (there is nothing
  to route on), whatever the thread length.
* When a disabled rule would have matched first, the reason says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from .intent import Analysis, analyze, classify_intent

__all__ = [
    "RULE_NAMES",
    "RULE_PROVIDERS",
    "DEFAULT_MODELS",
    "RULE_DESCRIPTIONS",
    "LONG_CONTEXT_THRESHOLD",
    "Decision",
    "evaluate",
    "classify_intent",
    "analyze",
    "resolve_order",
]

#: Rule names in default evaluation order.
RULE_NAMES: tuple[str, ...] = ("web", "structured", "long_context", "question", "default")

#: rule -> provider slug.
RULE_PROVIDERS: Mapping[str, str] = MappingProxyType(
    {
        "web": "perplexity",
        "structured": "openai",
        "long_context": "gemini",
        "question": "perplexity",
        "default": "openrouter",
    }
)

#: rule -> default model name.
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "web": "sonar",
        "structured": "gpt-4o-mini",
        "long_context": "gemini-2.5-flash",
        "question": "sonar",
        "default": "openrouter/auto",
    }
)

#: rule -> one-line description (for admin UIs).
RULE_DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "web": "Needs fresh or live information, or asks to search / cite sources",
        "structured": "Code, SQL, regex, shell commands, stack traces or structured output (JSON, CSV, tables)",
        "long_context": "The thread already holds more than 10 messages",
        "question": "Factual question with a stable answer, definition or math problem",
        "default": "Everything else: creative writing, brainstorming, opinion, rewriting, chat, advice",
    }
)

#: ``long_context`` matches when ``message_count`` is strictly greater than this.
LONG_CONTEXT_THRESHOLD = 10


@dataclass(frozen=True, slots=True)
class Decision:
    """The routing outcome for one message."""

    rule: str
    provider: str
    model: str
    reason: str
    #: What the text itself looks like (web / structured / question / default),
    #: independent of order, disabled rules and message count.
    intent: str = "default"
    #: Every rule whose condition held, in evaluation order (the first is ``rule``).
    matched: tuple[str, ...] = ()
    #: Enabled rules in the order they were tried.
    order: tuple[str, ...] = RULE_NAMES

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "provider": self.provider,
            "model": self.model,
            "reason": self.reason,
            "intent": self.intent,
            "matched": list(self.matched),
            "order": list(self.order),
        }


def _check_names(names: Iterable[str], what: str) -> None:
    unknown = sorted({n for n in names if n not in RULE_PROVIDERS})
    if unknown:
        raise ValueError(f"Unknown routing rule(s) in {what}: {', '.join(unknown)}; expected some of {', '.join(RULE_NAMES)}")


def resolve_order(
    rule_order: Iterable[str] | None = None,
    disabled: Iterable[str] = frozenset(),
) -> tuple[str, ...]:
    """The enabled rules in evaluation order (always ends at or before ``default``)."""
    order = list(RULE_NAMES) if rule_order is None else list(rule_order)
    _check_names(order, "rule_order")
    disabled = frozenset(disabled)
    _check_names(disabled, "disabled")
    seen: list[str] = []
    for name in [*order, *RULE_NAMES]:
        if name not in seen:
            seen.append(name)
    enabled = [n for n in seen if n == "default" or n not in disabled]
    return tuple(enabled[: enabled.index("default") + 1])


def _long_context_reason(message_count: int) -> str | None:
    if message_count > LONG_CONTEXT_THRESHOLD:
        return f"The thread already holds {message_count} messages (more than {LONG_CONTEXT_THRESHOLD})"
    return None


def evaluate(
    text: str,
    message_count: int,
    *,
    rule_order: list[str] | None = None,
    disabled: set[str] | frozenset[str] = frozenset(),
    models: dict[str, str] | None = None,
    structured_because: str | None = None,
) -> Decision:
    """Route one message.

    ``message_count`` is the number of messages already in the thread (the
    ``long_context`` rule fires when it is more than 10).  ``structured_because``:
    what in the request itself asks for structured output (the gateway's
    ``response_format`` or ``tools``), which makes the message structured
    whatever its text.  See the module docstring for ``rule_order`` /
    ``disabled`` / ``models`` semantics.
    """
    order = resolve_order(rule_order, disabled)
    if models:
        _check_names(models, "models")
    text = text if isinstance(text, str) else ""
    analysis: Analysis = analyze(text)
    if structured_because and not analysis.structured:
        analysis = replace(analysis, structured=structured_because)
    try:
        count = int(message_count or 0)
    except (TypeError, ValueError):
        count = 0
    if not text.strip():
        count = 0  # nothing to route on: default, whatever the thread length

    def condition(rule: str) -> str | None:
        return _long_context_reason(count) if rule == "long_context" else analysis.matches(rule)

    matched: list[tuple[str, str]] = []
    for rule in order:
        reason = condition(rule)
        if reason:
            matched.append((rule, reason))
    rule, reason = matched[0]  # "default" always matches, and is always in `order`
    if len(order) < len(RULE_NAMES):
        full = resolve_order(rule_order)
        skipped = [r for r in full[: full.index(rule)] if r not in order and condition(r)]
        if skipped:
            reason += f" — skipped disabled rule{'s' if len(skipped) > 1 else ''}: {', '.join(skipped)}"
    model = (models or {}).get(rule) or DEFAULT_MODELS[rule]
    return Decision(
        rule=rule,
        provider=RULE_PROVIDERS[rule],
        model=model,
        reason=reason,
        intent=analysis.intent,
        matched=tuple(r for r, _ in matched),
        order=order,
    )

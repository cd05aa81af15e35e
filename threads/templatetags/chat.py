from django import template
from django.utils.safestring import mark_safe

from threads.rendering import render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    # render_markdown escapes every bit of HTML in the source: the output is safe to mark.
    return mark_safe(render_markdown(text))  # noqa: S308

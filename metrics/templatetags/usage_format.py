"""Number formats of the usage page: `{{ value|ms }}`, `{{ value|usd }}`, `{{ value|num }}`."""

from django import template

from metrics.charts import fmt

register = template.Library()


@register.filter
def ms(value):
    return fmt(value, "ms")


@register.filter
def usd(value):
    return fmt(value, "$")


@register.filter
def num(value):
    return fmt(value)


@register.filter
def pct(value):
    return "–" if value is None else f"{value * 100:.1f}%"

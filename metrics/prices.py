"""Estimated cost of a provider call from the per-model price table in settings.

`DAC_MODEL_PRICES` maps a model name to (USD per 1M input tokens, USD per 1M output tokens);
`DAC_PROVIDER_PRICES` gives a provider-wide price for models not in the table (0 for `demo`
and for self-hosted `openai_compatible` servers); `DAC_MODEL_PRICE_DEFAULT` covers the rest.
The cost is computed when the call is recorded and stored with it, so a later price change
does not rewrite history. It is an estimate: per-request fees (Perplexity search), cached-input
discounts and OpenRouter's pass-through pricing are not modelled.
"""

from __future__ import annotations

from django.conf import settings

Price = tuple[float, float]


def model_price(*, provider: str, model: str) -> Price:
    table: dict[str, Price] = settings.DAC_MODEL_PRICES
    provider_prices: dict[str, Price] = settings.DAC_PROVIDER_PRICES
    if provider in provider_prices and provider in ("demo", "openai_compatible"):
        return provider_prices[provider]  # local or fake: never billed, whatever the model name
    name = (model or "").strip().lower()
    candidates = [name]
    if "/" in name:
        candidates.append(name.rsplit("/", 1)[1])  # openai/gpt-4o-mini, models/gemini-2.5-flash
    for candidate in candidates:
        if candidate in table:
            return table[candidate]
    for candidate in candidates:
        # Dated snapshots (gpt-4o-mini-2024-07-18) take the price of their family; longest wins.
        best = max((key for key in table if candidate.startswith(key + "-")), key=len, default=None)
        if best is not None:
            return table[best]
    if provider in provider_prices:
        return provider_prices[provider]
    return settings.DAC_MODEL_PRICE_DEFAULT


def estimate_cost_usd(*, provider: str, model: str, input_tokens: int | None, output_tokens: int | None) -> float:
    price_in, price_out = model_price(provider=provider, model=model)
    return ((input_tokens or 0) * price_in + (output_tokens or 0) * price_out) / 1_000_000

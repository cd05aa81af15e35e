#!/usr/bin/env python
"""Routing accuracy report for routing.rules.evaluate.

Usage (from the repo root):
    .venv/bin/python scripts/routing_accuracy.py [--file PATH] [--split dev|heldout|all]
                                                 [--hide-heldout-errors] [--width N] [--rounds N]

Prints overall / dev / held-out accuracy, per-rule precision / recall, the
confusion matrix, the misrouted prompts and per-call timing.  Always exits 0.
--file takes a .jsonl or .csv with text, message_count, expected columns.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from routing.rules import RULE_NAMES, evaluate  # noqa: E402
from tests.routing.dataset import PROMPTS_PATH, load_prompts  # noqa: E402


def _short(text: str, width: int) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def _accuracy(rows) -> str:
    if not rows:
        return "n/a (0)"
    ok = sum(1 for p, d in rows if d.rule == p.expected)
    return f"{ok / len(rows):.3f} ({ok}/{len(rows)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", default=str(PROMPTS_PATH))
    ap.add_argument("--split", choices=("dev", "heldout", "all"), default="all", help="which misroutes to list")
    ap.add_argument("--hide-heldout-errors", action="store_true", help="do not print held-out misroutes (tuning discipline)")
    ap.add_argument("--width", type=int, default=90)
    ap.add_argument("--rounds", type=int, default=20, help="timing rounds over the whole set")
    args = ap.parse_args(argv)

    prompts = load_prompts(args.file)
    rows = [(p, evaluate(p.text, p.message_count)) for p in prompts]
    labels = list(RULE_NAMES)

    print(f"Routing accuracy — {len(prompts)} prompts from {args.file}")
    print(f"  overall : {_accuracy(rows)}")
    for split in ("dev", "heldout"):
        print(f"  {split:8}: {_accuracy([r for r in rows if r[0].split == split])}")
    sources = sorted({p.source for p in prompts})
    if len(sources) > 1:
        print("  by source: " + ", ".join(f"{s} {_accuracy([r for r in rows if r[0].source == s])}" for s in sources))

    print("\nPer rule (precision = right among routed there, recall = right among expected there):")
    print(f"  {'rule':14}{'support':>8}{'precision':>11}{'recall':>9}{'dev rec':>9}{'held rec':>9}")
    for rule in labels:
        exp = [r for r in rows if r[0].expected == rule]
        got = [r for r in rows if r[1].rule == rule]
        tp = sum(1 for p, d in exp if d.rule == rule)
        prec = tp / len(got) if got else float("nan")
        rec = tp / len(exp) if exp else float("nan")
        per_split = []
        for split in ("dev", "heldout"):
            e = [r for r in exp if r[0].split == split]
            per_split.append(sum(1 for p, d in e if d.rule == rule) / len(e) if e else float("nan"))
        print(f"  {rule:14}{len(exp):>8}{prec:>11.3f}{rec:>9.3f}{per_split[0]:>9.3f}{per_split[1]:>9.3f}")

    print("\nConfusion matrix (rows = expected, columns = routed):")
    conf = Counter((p.expected, d.rule) for p, d in rows)
    abbrev = {"web": "web", "structured": "struct", "long_context": "long", "question": "quest", "default": "default"}
    print("  " + " " * 14 + "".join(f"{abbrev[c]:>9}" for c in labels))
    for e in labels:
        print(f"  {e:14}" + "".join(f"{conf[(e, g)]:>9}" for g in labels))

    bad = [(p, d) for p, d in rows if d.rule != p.expected]
    if args.split != "all":
        bad = [r for r in bad if r[0].split == args.split]
    hidden = 0
    if args.hide_heldout_errors:
        hidden = sum(1 for p, _ in bad if p.split == "heldout")
        bad = [r for r in bad if r[0].split != "heldout"]
    print(f"\nMisrouted ({len(bad)}{f', {hidden} held-out hidden' if hidden else ''}):")
    for p, d in bad:
        print(f"  [{p.split[:4]}] mc={p.message_count:<3} expected={p.expected:<12} got={d.rule:<12} {_short(p.text, args.width)!r}")
        print(f"         reason: {_short(d.reason, args.width + 20)}")

    # timing: every prompt, several rounds, each call timed on its own
    samples: list[float] = []
    for _ in range(max(1, args.rounds)):
        for p in prompts:
            t0 = time.perf_counter()
            evaluate(p.text, p.message_count)
            samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    big = ("Here is my log, what is wrong? " + "x = compute(a, b)  # value\n" * 1300)[:32000]
    t0 = time.perf_counter()
    for _ in range(20):
        evaluate(big, 3)
    big_us = (time.perf_counter() - t0) / 20 * 1e6
    print(
        f"\nTiming over {len(samples)} calls: mean {statistics.fmean(samples):.1f} µs, "
        f"median {samples[len(samples) // 2]:.1f} µs, p99 {p99:.1f} µs, max {samples[-1]:.1f} µs; "
        f"32k-char message: {big_us:.1f} µs"
    )
    return 0


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass
    sys.exit(0)

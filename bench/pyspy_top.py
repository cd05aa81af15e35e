"""Functions by own and total time from py-spy's raw (collapsed stack) output.

    .venv/bin/python bench/pyspy_top.py /tmp/dac-bench/profile.raw [--top 25] [--markdown]

py-spy `--format raw` writes one line per distinct stack: `frame;frame;...;frame COUNT`, the
root first, each frame `function (file:line)`. Own time: samples where the function is the leaf.
Total time: samples where it is anywhere on the stack (counted once per stack). Line numbers
are dropped so a function is one row; paths are shortened to the project or the package. The
"total" table leaves out the scaffolding every stack shares (thread bootstrap, the executor's
worker loop, uvicorn/click start-up, the event loop's run): `SyncToAsync.thread_handler` stands for
all sync code run in worker threads, and `Runner.run`'s own time is the event loop's C code.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
# Frames on (nearly) every stack that say nothing about the application: left out of "total".
SCAFFOLDING = re.compile(
    r"^(Thread\._bootstrap|Thread\._bootstrap_inner|Thread\.run|_worker|_WorkItem\.run) |"
    r"\((click/core\.py|<frozen runpy>|uvicorn/main\.py|uvicorn/__main__\.py|uvicorn/_compat\.py|uvicorn/server\.py)\)$|"
    r"^Runner\.run |^SyncToAsync\.__call__\.<locals>\.func|^<module> "
)


def short(path: str) -> str:
    for marker in ("/site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{match['func']} ({short(match['file'])})"


def aggregate(lines) -> tuple[int, collections.Counter, collections.Counter, collections.Counter]:
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    samples = 0
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        if frames and frames[0].startswith(("thread (", "process ")):
            threads[frames[0].split(" ")[0] + " " + ("main" if "MainThread" in frames[0] else "other")] += n
            frames = [f for f in frames if not f.startswith(("thread (", "process "))]
        if not frames:
            continue
        samples += n
        names = [frame_name(f) for f in frames]
        own[names[-1]] += n
        for name in set(names):
            total[name] += n
    return samples, own, total, threads


def table(title: str, counter: collections.Counter, samples: int, top: int, markdown: bool) -> str:
    if title == "total":
        counter = collections.Counter({k: v for k, v in counter.items() if not SCAFFOLDING.search(k)})
    rows = counter.most_common(top)
    if markdown:
        out = [f"| {title} | % of samples | function (file) |", "|---:|---:|---|"]
        out += [f"| {i} | {100 * n / samples:.1f} | `{name}` |" for i, (name, n) in enumerate(rows, 1)]
    else:
        out = [title] + [f"{100 * n / samples:6.1f}%  {name}" for name, n in rows]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with open(args.raw) as f:
        samples, own, total, _ = aggregate(f)
    if not samples:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{samples} samples")
    print(table("own", own, samples, args.top, args.markdown))
    print()
    print(table("total", total, samples, args.top, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

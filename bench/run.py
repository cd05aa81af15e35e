"""The gateway benchmark (issue 10): DAC against the upstream alone and against LiteLLM's proxy.

    make bench                              # the full run (~11 min on 2 cores; longer if the DB struggles), prints the table
    make bench ARGS=--quick                 # a ~2 min subset (1 repetition, concurrency 1 and 64, one soak round)
    .venv/bin/python bench/run.py --soak-only      # only 1,000 concurrent streams on one process
    .venv/bin/python bench/run.py --profile        # py-spy profile of DAC's hot path under load
    .venv/bin/python bench/run.py --queries        # DB statements / Redis commands / thread hops per request
    .venv/bin/python bench/run.py --against ../other --targets direct,dac --concurrency 1,64 --no-soak
                                                   # A/B of a change through real servers (dac-against)

One run starts everything and alternates the targets point by point, so they see the same machine:
  direct    the fake upstream (bench/upstream.py) alone: the baseline, and the harness's own cost;
  floor     bench/floor.py, a bare proxy making DAC's round trips and nothing else (a Redis script
            before the call; after it DAC's audit record for the call, the same statement, beside a
            second script): the least a gateway that audits before it answers adds on this
            machine (concurrency 1 only);
  dac       DAC's `POST /v1/chat/completions`, a real uvicorn server (DEBUG off) on the dev database
            (`make db`), everything on: token auth, tenant context, routing pinned by
            `model: "openai_compatible/bench-model"`, quota (limits lifted by bench/setup_dac.py),
            audit, metrics; the org's `openai_compatible` key points at the fake upstream;
  dac-auto  the same with `model: "auto"` (the routing rules run);
  dac-against  with --against DIR: `dac` served from another checkout of DAC (same venv, database
            and upstream), alternated with the rest point by point: an A/B of a change through real
            servers (bench/in_process.py --against is quicker but cannot see what a server adds);
  litellm   LiteLLM's proxy in its own virtualenv outside the repo (installed on first use into
            /tmp/dac-bench-litellm/.venv), `openai/bench-model` at the same upstream, master key
            set (it refuses to start without one), telemetry off, no database, same worker count.
Points: plain and streaming (20 chunks), upstream delay 0 and 100 ms, concurrency 1, 16 and 64,
and, beyond the issue's points, concurrency 256 at 100 ms (`--saturation`: with 64 connections and
a 100 ms upstream no server can pass 640 req/s, which caps the ratio to LiteLLM on a fast machine),
3 repetitions; the median of the repetitions is reported. Each run is bounded in requests and
seconds; every answer is checked (bench/loadgen.py). CPU per request is the servers' utime+stime
delta (/proc/<pid>/stat, all processes of the server) over the run divided by the checked
answers; "DB+Redis" is the same for the postgres and redis-server processes during DAC's runs;
memory is VmHWM (peak RSS) summed over each server's processes.

With 2+ cores and --workers 1 (the default) the servers under test are pinned to the last core
and the harness (load generator, fake upstream) to the first, so the harness never steals the
server's core; PostgreSQL and Redis float. Other processes on the machine are not ours: their
CPU during each run is reported as "foreign" load, and a run with much of it is noisier.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import procinfo  # noqa: E402
from common import expected_text  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
LITELLM_DIR = Path(os.environ.get("DAC_BENCH_LITELLM_DIR", "/tmp/dac-bench-litellm"))
# Pinned: the release line the issue measured (1.108), at its newest release whose `[proxy]`
# extra installs from PyPI alone (1.108.8 and later pin `litellm-enterprise` /
# `litellm-proxy-extras` builds that are not published there). Another release:
# DAC_BENCH_LITELLM_SPEC='litellm[proxy]==1.106.12'.
LITELLM_SPEC = os.environ.get("DAC_BENCH_LITELLM_SPEC", "litellm[proxy]==1.108.7")
# Test values only: DEBUG off refuses the insecure defaults, so the benchmark brings its own.
BENCH_SECRET_KEY = "dac-bench-secret-key-not-for-production-0123456789"
BENCH_ENCRYPTION_KEY = "ZGFjLWJlbmNoLWtleS1ub3QtZm9yLXByb2R1Y3Rpb24="  # b64("dac-bench-key-not-for-production")
CHUNKS = 20
TARGETS = ("direct", "floor", "dac", "dac-auto", "litellm")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None, timeout: float = 5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw)
    finally:
        conn.close()


# --- processes --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict
    port: int
    log_path: Path
    cpus: set[int] | None = None
    cwd: Path = ROOT  # the checkout it runs from
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        cpus = self.cpus

        def pin():
            if cpus:
                os.sched_setaffinity(0, cpus)

        self.log_file = open(self.log_path, "ab")
        self.log_file.write(f"\n--- {time.strftime('%F %T')} {shlex.join(self.cmd)}\n".encode())
        self.log_file.flush()
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=str(self.cwd), stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=pin)

    def wait_ready(self, check, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if check():
                    return
            except (OSError, http.client.HTTPException) as exc:
                last = exc
            time.sleep(0.25)
        raise SystemExit(f"{self.name} not ready after {timeout:.0f} s ({last}); see {self.log_path}")

    def pids(self) -> list[int]:
        return procinfo.tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # the session this script started for it
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.log_file.close()


def read_db_env() -> dict:
    """var/db.env (written by `make db`): `export NAME=value` lines, when dev_db chose a server."""
    values = {}
    path = ROOT / "var" / "db.env"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = shlex.split(line)
            if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
                name, value = parts[1].split("=", 1)
                values[name] = value
    return values


def dac_env(extra: dict | None = None) -> dict:
    env = {**os.environ, **read_db_env()}
    env.update({
        "DJANGO_SETTINGS_MODULE": "dac.settings",
        "DEBUG": "false",
        "SECRET_KEY": BENCH_SECRET_KEY,
        "DAC_ENCRYPTION_KEYS": BENCH_ENCRYPTION_KEY,
        "DAC_HTTPS": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DAC_ALLOW_PRIVATE_BASE_URLS": "true",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def ensure_litellm() -> Path:
    exe = LITELLM_DIR / ".venv" / "bin" / "litellm"
    marker = LITELLM_DIR / ".venv" / ".installed"
    if exe.exists() and marker.exists() and marker.read_text().strip() == LITELLM_SPEC:
        return exe
    log(f"installing {LITELLM_SPEC} into {LITELLM_DIR}/.venv (once; ~1 min)")
    LITELLM_DIR.mkdir(parents=True, exist_ok=True)
    base_python = os.environ.get("DAC_BENCH_LITELLM_PYTHON") or sys.executable
    # A venv of the system interpreter, not of DAC's venv (its packages must not mix with ours).
    real = subprocess.run([base_python, "-c", "import sys; print(getattr(sys, '_base_executable', sys.executable))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([real, "-m", "venv", str(LITELLM_DIR / ".venv")], check=True)
    pip = str(LITELLM_DIR / ".venv" / "bin" / "pip")
    subprocess.run([pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([pip, "install", "--quiet", LITELLM_SPEC], check=True)
    marker.write_text(LITELLM_SPEC)
    return exe


# --- measurement ------------------------------------------------------------------------------


@dataclass
class Point:
    mode: str  # plain | stream
    delay_ms: int
    concurrency: int

    @property
    def key(self) -> str:
        return f"{self.mode}/{self.delay_ms}ms/c{self.concurrency}"


@dataclass
class Cell:
    """All repetitions of one target at one point."""

    runs: list[dict] = field(default_factory=list)
    cpu_s: float = 0.0
    backing_cpu_s: float = 0.0
    foreign_cpu_s: float = 0.0
    wall_s: float = 0.0
    ok: int = 0
    upstream_connections: int = 0
    errors: dict = field(default_factory=dict)

    def median(self, name: str) -> float:
        values = [r[name] for r in self.runs if r.get(name) == r.get(name) and r.get(name) is not None]  # drop NaN
        return statistics.median(values) if values else float("nan")


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        cpus = sorted(os.sched_getaffinity(0))
        self.pin = not args.no_pin and len(cpus) >= 2 and args.workers == 1
        self.harness_cpus = set(cpus[:-1]) if self.pin else None
        self.server_cpus = {cpus[-1]} if self.pin else None
        if self.pin:
            os.sched_setaffinity(0, self.harness_cpus)
        self.servers: dict[str, Server] = {}
        self.targets: dict[str, loadgen.Target] = {}
        self.target_server: dict[str, str] = {}
        self.results: dict[str, dict[str, Cell]] = {}
        self.upstream_port = 0
        self.floor_org_id = 0  # set by setup_dac()
        url = dac_env().get("DATABASE_URL") or "postgres://dac_app@127.0.0.1:5432/dac"
        self.database = url.rsplit("/", 1)[1].split("?")[0]

    # -- start/stop --------------------------------------------------------------------------
    def start_upstream(self) -> None:
        port = free_port()
        server = Server("upstream", [str(PY), str(BENCH / "upstream.py"), "--port", str(port), "--chunks", str(CHUNKS)],
                        {**os.environ, "PYTHONUNBUFFERED": "1"}, port, self.out / "upstream.log", self.harness_cpus)
        server.start()
        server.wait_ready(lambda: http_json(port, "GET", "/v1/models")[0] == 200, 20)
        self.servers["upstream"] = server
        self.upstream_port = port
        self.targets["direct"] = loadgen.Target(f"http://127.0.0.1:{port}/v1/chat/completions", model="bench-model")
        self.target_server["direct"] = "upstream"

    def upstream_config(self, **values) -> None:
        status, body = http_json(self.upstream_port, "POST", "/_bench/config", {"chunks": CHUNKS, "chunk_gap_ms": 0, **values})
        assert status == 200, body

    def upstream_stats(self, reset: bool = False) -> dict:
        return http_json(self.upstream_port, "GET", "/_bench/stats" + ("?reset=1" if reset else ""))[1]

    def setup_dac(self) -> str:
        log("setting up the benchmark org, token, key and limits (bench/setup_dac.py)")
        done = subprocess.run([str(PY), str(BENCH / "setup_dac.py"), "--base-url", f"http://127.0.0.1:{self.upstream_port}/v1"],
                              env=dac_env(), cwd=str(ROOT), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"setup_dac.py failed (is the database migrated? `make db`):\n{done.stderr[-3000:]}")
        setup = json.loads(done.stdout.strip().splitlines()[-1])
        self.floor_org_id = setup["floor_org_id"]
        return setup["token"]

    def start_dac(self, name: str, workers: int, token: str, extra_env: dict | None = None, checkout: Path = ROOT) -> Server:
        port = free_port()
        cmd = [str(PY), "-m", "uvicorn", "dac.asgi:application", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        server = Server(name, cmd, dac_env(extra_env), port, self.out / f"{name}.log", self.server_cpus, cwd=checkout)
        server.start()
        auth = {"Authorization": f"Bearer {token}"}
        server.wait_ready(lambda: http_json(port, "GET", "/v1/models", headers=auth)[0] == 200, 60)
        self.servers[name] = server
        return server

    def start_floor(self) -> None:
        port = free_port()
        cmd = [str(PY), "-m", "uvicorn", "--app-dir", str(BENCH), "floor:app", "--host", "127.0.0.1", "--port", str(port),
               "--no-access-log", "--log-level", "warning"]
        env = dac_env({"FLOOR_UPSTREAM": f"http://127.0.0.1:{self.upstream_port}/v1/chat/completions",
                       "FLOOR_ORG_ID": str(self.floor_org_id)})
        server = Server("floor", cmd, env, port, self.out / "floor.log", self.server_cpus)
        server.start()
        probe = {"model": "bench-model", "messages": [{"role": "user", "content": "ready?"}]}
        server.wait_ready(lambda: http_json(port, "POST", "/v1/chat/completions", probe)[0] == 200, 30)
        self.servers["floor"] = server
        self.targets["floor"] = loadgen.Target(f"http://127.0.0.1:{port}/v1/chat/completions", model="bench-model")
        self.target_server["floor"] = "floor"

    def start_litellm(self) -> None:
        exe = ensure_litellm()
        port = free_port()
        master_key = "sk-bench-" + secrets.token_hex(24)
        config = self.out / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: bench-model\n"
            "    litellm_params:\n"
            "      model: openai/bench-model\n"
            f"      api_base: http://127.0.0.1:{self.upstream_port}/v1\n"
            "      api_key: sk-bench-dummy\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
        )
        # A clean environment: no DATABASE_URL / REDIS_URL of ours may reach it.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
               "LITELLM_MASTER_KEY": master_key, "LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "LITELLM_LOG": "ERROR", "PYTHONUNBUFFERED": "1"}
        cmd = [str(exe), "--config", str(config), "--num_workers", str(self.args.workers), "--port", str(port), "--host", "127.0.0.1"]
        server = Server("litellm", cmd, env, port, self.out / "litellm.log", self.server_cpus)
        log("starting LiteLLM's proxy")
        server.start()
        server.wait_ready(lambda: http_json(port, "GET", "/health/liveliness")[0] == 200, 120)
        self.servers["litellm"] = server
        self.targets["litellm"] = loadgen.Target(f"http://127.0.0.1:{port}/v1/chat/completions", model="bench-model", token=master_key)
        self.target_server["litellm"] = "litellm"

    def stop_all(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()

    # -- one measured run ---------------------------------------------------------------------
    def wait_quiet(self, limit_s: float = 30.0) -> None:
        """Wait until the machine is idle: under a tenth of a core in two quarter seconds in a row.
        A server can go on working after its run has ended (LiteLLM was seen at 100 % of the
        servers' core for seconds after its first start), which would otherwise take the CPU from
        the next target's run."""
        started, quiet = time.perf_counter(), 0
        while quiet < 2:
            if time.perf_counter() - started > limit_s:
                log(f"the machine did not go quiet within {limit_s:.0f} s; measuring anyway")
                return
            before = procinfo.machine_cpu_seconds()
            time.sleep(0.25)
            quiet = quiet + 1 if procinfo.machine_cpu_seconds() - before <= 0.025 else 0
        waited = time.perf_counter() - started
        if waited > 1.5:
            log(f"waited {waited:.1f} s for the machine to go quiet")

    def measure(self, target: str, point: Point, seconds: float, max_requests: int, record: bool = True) -> dict:
        server = self.servers[self.target_server[target]]
        pids = server.pids()
        backing = (procinfo.postgres_pids(self.database) + procinfo.pids_by_comm("redis-server")) if _uses_backing(target) else []
        harness = [os.getpid(), *self.servers["upstream"].pids()]
        own0, back0, har0, mach0 = (procinfo.cpu_seconds(pids), procinfo.cpu_seconds(backing),
                                    procinfo.cpu_seconds(harness), procinfo.machine_cpu_seconds())
        conns0 = self.upstream_stats()["connections"]
        t0 = time.perf_counter()
        result = loadgen.run(self.targets[target], stream=point.mode == "stream", concurrency=point.concurrency,
                             max_requests=max_requests, duration=seconds, expected=expected_text(CHUNKS), timeout=30.0)
        wall = time.perf_counter() - t0
        own = procinfo.cpu_seconds(pids) - own0
        back = procinfo.cpu_seconds(backing) - back0
        har = procinfo.cpu_seconds(harness) - har0
        mach = procinfo.machine_cpu_seconds() - mach0
        foreign = max(0.0, mach - own - back - har)
        upstream_conns = self.upstream_stats()["connections"] - conns0
        run = result.as_dict()
        run.update({"upstream_connections": upstream_conns, "cpu_s": own, "backing_cpu_s": back, "harness_cpu_s": har, "foreign_cpu_s": foreign, "run_wall_s": wall})
        if record:
            cell = self.results.setdefault(point.key, {}).setdefault(target, Cell())
            cell.runs.append(run)
            cell.cpu_s += own
            cell.backing_cpu_s += back
            cell.foreign_cpu_s += foreign
            cell.wall_s += wall
            cell.ok += result.ok
            cell.upstream_connections += upstream_conns
            for kind, n in result.errors.items():
                cell.errors[kind] = cell.errors.get(kind, 0) + n
        return run

    # -- the matrix ---------------------------------------------------------------------------
    def matrix(self, points: list[Point], targets: list[str]) -> None:
        args = self.args
        total = sum(len([t for t in targets if _runs_at(t, point)]) for point in points) * args.reps
        done = 0
        started = time.time()
        for index, point in enumerate(points):
            self.upstream_config(delay_ms=point.delay_ms)
            for rep in range(args.reps):
                shift = (index + rep) % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    if not _runs_at(target, point):
                        continue
                    self.wait_quiet()
                    if rep == 0:  # a short warm-up per point: connections open, caches filled
                        self.measure(target, point, 0.3, point.concurrency * 3, record=False)
                    run = self.measure(target, point, _run_seconds(args, point), args.max_requests)
                    done += 1
                    errs = f" errors={run['errors']}" if run["errors"] else ""
                    log(f"{done}/{total} {point.key} {target:<8} rep{rep + 1}: {run['rps']:8.1f} req/s p50 {run['p50_ms']:7.2f} ms"
                        f" p99 {run['p99_ms']:7.2f} ms{errs} (elapsed {time.time() - started:.0f} s)")

    # -- the 1,000-stream soak ----------------------------------------------------------------
    def soak(self, token: str) -> dict:
        args = self.args
        log(f"soak: {args.soak_streams} concurrent streams, one DAC process, upstream delay {args.soak_delay_ms} ms"
            f" + {CHUNKS - 1} gaps of {args.soak_gap_ms} ms")
        self.wait_quiet()
        server = self.start_dac("dac-soak", 1, token)
        target = loadgen.Target(f"http://127.0.0.1:{server.port}/v1/chat/completions", model="openai_compatible/bench-model", token=token)
        self.upstream_config(delay_ms=args.soak_delay_ms, chunk_gap_ms=args.soak_gap_ms)
        db_url = dac_env().get("DATABASE_URL") or "postgres://dac_app@127.0.0.1:5432/dac"
        # warm: a few streams so imports, pools and the HTTP client exist before the baseline
        loadgen.run(target, stream=True, concurrency=8, max_requests=8, duration=30, expected=expected_text(CHUNKS), timeout=60)
        rounds = []
        seen_pool_timeouts = server.log_path.read_text(errors="replace").count("couldn't get a connection after")
        for round_no in range(1, args.soak_rounds + 1):
            pids = server.pids()
            before = procinfo.memory_kb(pids)
            self.upstream_stats(reset=True)
            samples = []
            stop = False

            def sampler():
                import psycopg

                with psycopg.connect(db_url, autocommit=True) as conn:
                    while not stop:
                        rows = conn.execute(
                            "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity "
                            "WHERE usename = current_user AND datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
                        ).fetchall()
                        mem = procinfo.memory_kb(pids)
                        samples.append({"t": time.time(), "rss_kb": mem["rss_kb"], "threads": procinfo.threads(pids),
                                        "db": dict(rows), "upstream_active": self.upstream_stats()["active"]})
                        time.sleep(0.25)

            import threading

            thread = threading.Thread(target=sampler, daemon=True)
            thread.start()
            cpu0 = procinfo.cpu_seconds(pids)
            t0 = time.perf_counter()
            result = loadgen.run(target, stream=True, concurrency=args.soak_streams, max_requests=args.soak_streams,
                                 duration=120, expected=expected_text(CHUNKS), timeout=120, connect_timeout=30)
            wall = time.perf_counter() - t0
            cpu = procinfo.cpu_seconds(pids) - cpu0
            time.sleep(1.0)  # let the answer tasks' last writes land
            stop = True
            thread.join(5)
            log_text = server.log_path.read_text(errors="replace")
            pool_timeouts = log_text.count("couldn't get a connection after") - seen_pool_timeouts
            seen_pool_timeouts += pool_timeouts
            after = procinfo.memory_kb(pids)
            stats = self.upstream_stats()
            db_peak = {}
            for s in samples:
                for state, n in s["db"].items():
                    db_peak[state] = max(db_peak.get(state, 0), n)
            rounds.append({
                "round": round_no, "ok": result.ok, "errors": dict(result.errors), "error_samples": result.error_samples,
                "wall_s": round(wall, 2), "p50_ms": round(result.p(50), 1), "p99_ms": round(result.p(99), 1),
                "ttft_p50_ms": round(result.ttft_p(50), 1), "ttft_p99_ms": round(result.ttft_p(99), 1),
                "cpu_s": round(cpu, 2), "rss_before_mb": before["rss_kb"] / 1024, "rss_after_mb": after["rss_kb"] / 1024,
                "rss_peak_mb": max([s["rss_kb"] for s in samples] + [after["rss_kb"]]) / 1024, "hwm_mb": after["hwm_kb"] / 1024,
                "threads_peak": max([s["threads"] for s in samples] or [0]),
                "upstream_peak_in_flight": stats["peak_active"],
                "db_connections_peak_by_state": db_peak,
                "db_connections_peak_total": max([sum(s["db"].values()) for s in samples] or [0]),
                "db_pool_timeouts_logged": pool_timeouts,
            })
            log(f"soak round {round_no}: {rounds[-1]}")
        server.stop()
        del self.servers["dac-soak"]
        return {"streams": args.soak_streams, "delay_ms": args.soak_delay_ms, "gap_ms": args.soak_gap_ms,
                "stream_seconds": (args.soak_delay_ms + (CHUNKS - 1) * args.soak_gap_ms) / 1000, "rounds": rounds,
                "db_pool_max": int(dac_env().get("DB_POOL_MAX_SIZE") or 20)}


def _run_seconds(args, point: Point) -> float:
    """`--seconds`, or longer where the upstream's delay leaves a run of that length too few calls
    for a steady p50 (`--min-calls`): at concurrency 1 and 100 ms, 2.5 s is ~24 calls, and the p50
    of so few moved by 0.2-0.3 ms from run to run."""
    per_call = point.delay_ms / 1000 + 0.005
    return max(args.seconds, args.min_calls * per_call / point.concurrency)


def _runs_at(target: str, point: Point) -> bool:
    return target != "floor" or point.concurrency == 1  # see bench/floor.py


def _uses_backing(target: str) -> bool:
    """Whether the target talks to PostgreSQL and Redis (their CPU is reported beside its own)."""
    return target == "floor" or target.startswith("dac")


# --- report -----------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1, signed: bool = False) -> str:
    if value != value:  # NaN
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:,.{digits}f}"


def report(bench: Bench, points: list[Point], targets: list[str], soak: dict | None, memory: dict, meta: dict) -> str:
    lines = [
        f"Machine: {meta['machine']}. {meta['database']}. Workers per server: {meta['workers']}. Pinning: {meta['pinning']}.",
        f"Command: `{meta['command']}` ({meta['reps']} repetition(s) of {meta['seconds']} s per point, longer where that"
        f" leaves fewer than {meta['min_calls']} calls, median shown;"
        f" {meta['elapsed_s']:.0f} s in all, {meta['date']}).",
        "",
        "Latency in ms (request written → body ended); TTFT: time to the first streamed content byte;"
        " +: added against the upstream alone (direct) at the same point; ×LiteLLM: requests/s ÷ LiteLLM's;"
        " CPU: server process CPU ms per request (DB+Redis: PostgreSQL + Redis CPU ms per request during DAC's runs);"
        " conns/100: new TCP connections the upstream accepted per 100 requests (a gateway that reuses its"
        " connections shows ~0; the direct target's are the load generator's own, one per connection);"
        " foreign: CPU cores used by processes outside the benchmark during the runs (noise).",
        "",
        "| mode | delay | conc | target | p50 | p99 | +p50 | TTFT p50 | +TTFT | req/s | ×LiteLLM | CPU ms/req | DB+Redis ms/req | X-DAC-Overhead p50 | conns/100 | errors | foreign |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for point in points:
        cells = bench.results.get(point.key, {})
        direct = cells.get("direct")
        lite = cells.get("litellm")
        for target in targets:
            cell = cells.get(target)
            if cell is None:
                continue
            p50, p99, rps = cell.median("p50_ms"), cell.median("p99_ms"), cell.median("rps")
            ttft = cell.median("ttft_p50_ms")
            added = p50 - direct.median("p50_ms") if direct and target != "direct" else float("nan")
            added_ttft = ttft - direct.median("ttft_p50_ms") if direct and target != "direct" and point.mode == "stream" else float("nan")
            ratio = rps / lite.median("rps") if lite and target != "litellm" and lite.median("rps") else float("nan")
            cpu = 1000 * cell.cpu_s / cell.ok if cell.ok else float("nan")
            backing = 1000 * cell.backing_cpu_s / cell.ok if cell.ok and _uses_backing(target) else float("nan")
            header = cell.median("header_p50") if target.startswith("dac") else float("nan")
            errors = ", ".join(f"{k} {v}" for k, v in sorted(cell.errors.items())) or "0"
            foreign = cell.foreign_cpu_s / cell.wall_s if cell.wall_s else 0.0
            lines.append(
                f"| {point.mode} | {point.delay_ms} | {point.concurrency} | {target} | {fmt(p50, 2)} | {fmt(p99, 2)} | {fmt(added, 2, True)} "
                f"| {fmt(ttft, 2)} | {fmt(added_ttft, 2, True)} | {fmt(rps)} | {fmt(ratio, 2)} | {fmt(cpu, 2)} | {fmt(backing, 2)} "
                f"| {fmt(header, 2)} | {fmt(100 * cell.upstream_connections / cell.ok if cell.ok else float('nan'), 1)} | {errors} | {foreign:.2f} |"
            )
    lines += ["", "Memory of each server at the end of the matrix (summed over its processes):", "",
              "| server | processes | peak RSS (VmHWM) MB | RSS now MB |", "|---|---:|---:|---:|"]
    for name, mem in memory.items():
        lines.append(f"| {name} | {mem['processes']} | {mem['hwm_kb'] / 1024:.0f} | {mem['rss_kb'] / 1024:.0f} |")
    if soak:
        lines += ["", f"Soak: {soak['streams']} concurrent streams on ONE DAC process (uvicorn --workers 1), upstream"
                  f" {soak['delay_ms']} ms to the first byte then {CHUNKS} chunks {soak['gap_ms']} ms apart"
                  f" (~{soak['stream_seconds']:.1f} s a stream); DB pool max {soak['db_pool_max']}.", "",
                  "| round | ok | errors | wall s | p50 ms | p99 ms | TTFT p50 | TTFT p99 | RSS before → peak → after MB | VmHWM MB | threads peak | upstream calls in flight (peak) | DB connections peak (by state) | DB pool timeouts in the log | CPU s |",
                  "|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|"]
        for r in soak["rounds"]:
            errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
            states = ", ".join(f"{k} {v}" for k, v in sorted(r["db_connections_peak_by_state"].items()))
            lines.append(f"| {r['round']} | {r['ok']} | {errors} | {r['wall_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['ttft_p50_ms']} | {r['ttft_p99_ms']} "
                         f"| {r['rss_before_mb']:.0f} → {r['rss_peak_mb']:.0f} → {r['rss_after_mb']:.0f} | {r['hwm_mb']:.0f} | {r['threads_peak']} "
                         f"| {r['upstream_peak_in_flight']} | {r['db_connections_peak_total']} ({states}) | {r['db_pool_timeouts_logged']} | {r['cpu_s']} |")

        samples = [f"- round {r['round']}, {kind}: `{sample[:300]}`" for r in soak["rounds"] for kind, sample in r["error_samples"].items()]
        if samples:
            lines += ["", "First error of each kind:", "", *samples]
    lines += ["", *goals(bench, soak)]
    return "\n".join(lines)


def goals(bench: Bench, soak: dict | None) -> list[str]:
    out = ["Goals:", ""]

    def cell(key, target):
        return bench.results.get(key, {}).get(target)

    for delay in (0, 100):
        d, x, f = (cell(f"plain/{delay}ms/c1", target) for target in ("direct", "dac", "floor"))
        if d and x:
            added = x.median("p50_ms") - d.median("p50_ms")
            floor = f" (the floor: +{f.median('p50_ms') - d.median('p50_ms'):.2f} ms)" if f else ""
            out.append(f"- added latency at concurrency 1, plain, delay {delay} ms: p50 +{added:.2f} ms (goal ≤ 3 ms): {'PASS' if added <= 3 else 'FAIL'}{floor}")
        d, x, f = (cell(f"stream/{delay}ms/c1", target) for target in ("direct", "dac", "floor"))
        if d and x:
            added = x.median("ttft_p50_ms") - d.median("ttft_p50_ms")
            floor = f" (the floor: +{f.median('ttft_p50_ms') - d.median('ttft_p50_ms'):.2f} ms)" if f else ""
            out.append(f"- added time to first streamed byte at concurrency 1, delay {delay} ms: p50 +{added:.2f} ms (goal ≤ 3 ms): {'PASS' if added <= 3 else 'FAIL'}{floor}")
    for mode in ("plain", "stream"):
        x, lite = cell(f"{mode}/100ms/c64", "dac"), cell(f"{mode}/100ms/c64", "litellm")
        if x and lite and lite.median("rps"):
            ratio = x.median("rps") / lite.median("rps")
            note = "the ideal at this point is 64 / 0.1 s = 640 req/s"
            if 5 * lite.median("rps") > 640:
                note += (f"; five times LiteLLM's rate is above it, so no gateway can pass at this point on a machine this fast:"
                         f" DAC reached {100 * x.median('rps') / 640:.0f} % of the ideal; see concurrency 256")
            out.append(f"- throughput at concurrency 64, 100 ms upstream, {mode}: DAC {x.median('rps'):.0f} req/s vs LiteLLM {lite.median('rps'):.0f} req/s"
                       f" = {ratio:.2f}× (goal ≥ 5×): {'PASS' if ratio >= 5 else 'FAIL'} ({note})")
        for key in sorted(k for k in bench.results if k.startswith(f"{mode}/100ms/c") and int(k.rsplit("c", 1)[1]) > 64):
            x, lite = cell(key, "dac"), cell(key, "litellm")
            if x and lite and lite.median("rps"):
                concurrency = int(key.rsplit("c", 1)[1])
                out.append(f"- (beyond the goals) throughput at concurrency {concurrency}, 100 ms upstream, {mode}: DAC {x.median('rps'):.0f} req/s"
                           f" vs LiteLLM {lite.median('rps'):.0f} req/s = {x.median('rps') / lite.median('rps'):.2f}×"
                           f" (the ideal: {concurrency * 10:,} req/s)")
    if soak:
        rounds = soak["rounds"]
        errors = sum(sum(r["errors"].values()) for r in rounds)
        ok = sum(r["ok"] for r in rounds)
        peaks = [r["rss_peak_mb"] for r in rounds]
        bounded = len(peaks) < 2 or peaks[-1] <= peaks[0] * 1.15
        out.append(f"- {soak['streams']} concurrent streams on one process: {ok} ok, {errors} errors (goal 0): {'PASS' if errors == 0 and ok else 'FAIL'};"
                   f" peak RSS per round {', '.join(f'{p:.0f}' for p in peaks)} MB"
                   f" ({'bounded: no growth beyond 15 % from round to round' if bounded else 'GROWING from round to round'})")
        inflight = max(r["upstream_peak_in_flight"] for r in rounds)
        out.append(f"- DB connections during the streams: upstream saw up to {inflight} calls in flight at once from one process whose DB pool"
                   f" holds at most {soak['db_pool_max']}, so streams do {'NOT ' if inflight > soak['db_pool_max'] else ''}hold a DB connection"
                   f" across the provider call; peak 'idle in transaction' sessions:"
                   f" {max(r['db_connections_peak_by_state'].get('idle in transaction', 0) for r in rounds)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="~2 min: 1 repetition, concurrency 1 and 64, 1.5 s runs, one soak round")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn/LiteLLM workers per server")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="per run")
    parser.add_argument("--max-requests", type=int, default=20_000, help="per run")
    parser.add_argument("--min-calls", type=int, default=None,
                        help="a run lasts long enough for this many calls at least (default 60, --quick 20)")
    parser.add_argument("--concurrency", default=None, help="comma-separated (default 1,16,64)")
    parser.add_argument("--saturation", type=int, default=256, help="also this concurrency at 100 ms (0: not)")
    parser.add_argument("--delays", default="0,100", help="upstream delay before the first byte, ms, comma-separated")
    parser.add_argument("--modes", default="plain,stream")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--against", type=Path, help="another checkout of DAC, measured beside this one as dac-against")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and harness to separate cores")
    parser.add_argument("--no-soak", action="store_true")
    parser.add_argument("--soak-only", action="store_true", help="only the concurrent-streams soak")
    parser.add_argument("--soak-streams", type=int, default=1000)
    parser.add_argument("--soak-delay-ms", type=int, default=1000)
    parser.add_argument("--soak-gap-ms", type=int, default=210, help="between content chunks: 1 s + 19 × 210 ms ≈ 5 s a stream")
    parser.add_argument("--soak-rounds", type=int, default=None)
    parser.add_argument("--profile", action="store_true", help="py-spy profile of DAC under load (bench/profile_dac.py)")
    parser.add_argument("--profile-concurrency", type=int, default=16)
    parser.add_argument("--profile-delay", type=int, default=0, help="upstream delay while profiling, ms")
    parser.add_argument("--queries", action="store_true", help="count DB statements / Redis commands / thread hops per request")
    parser.add_argument("--out", default="/tmp/dac-bench", help="logs, JSON and the markdown table")
    args = parser.parse_args()
    if args.quick:
        args.reps = args.reps or 1
        args.seconds = args.seconds or 1.5
        args.concurrency = args.concurrency or "1,64"
        args.soak_rounds = args.soak_rounds or 1
        args.min_calls = 20 if args.min_calls is None else args.min_calls
    args.reps = args.reps or 3
    args.min_calls = 60 if args.min_calls is None else args.min_calls
    args.seconds = args.seconds or 2.5
    args.concurrency = args.concurrency or "1,16,64"
    args.soak_rounds = args.soak_rounds or 2

    bench = Bench(args)
    started = time.time()
    loadgen.use_uvloop()
    try:
        bench.start_upstream()
        token = bench.setup_dac()
        if args.profile or args.queries:
            import profile_dac

            if args.queries:
                profile_dac.queries(bench, token)
            if args.profile:
                profile_dac.profile(bench, token, concurrency=args.profile_concurrency, delay_ms=args.profile_delay)
            return 0
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        soak = None
        if not args.soak_only:
            if args.against and "dac-against" not in targets:
                targets.insert(targets.index("dac") + 1 if "dac" in targets else len(targets), "dac-against")
            if any(t.startswith("dac") for t in targets):
                log(f"starting DAC (uvicorn, {args.workers} worker(s), DEBUG off)")
                server = bench.start_dac("dac", args.workers, token)
                for name, model in (("dac", "openai_compatible/bench-model"), ("dac-auto", "auto")):
                    bench.targets[name] = loadgen.Target(f"http://127.0.0.1:{server.port}/v1/chat/completions", model=model, token=token)
                    bench.target_server[name] = "dac"
            if args.against:
                log(f"starting DAC from {args.against} (dac-against)")
                other = bench.start_dac("dac-against", args.workers, token, checkout=args.against.resolve())
                bench.targets["dac-against"] = loadgen.Target(f"http://127.0.0.1:{other.port}/v1/chat/completions",
                                                              model="openai_compatible/bench-model", token=token)
                bench.target_server["dac-against"] = "dac-against"
            if "floor" in targets:
                bench.start_floor()
            if "litellm" in targets:
                bench.start_litellm()
            points = [Point(mode, int(delay), int(c)) for delay in args.delays.split(",") for mode in args.modes.split(",")
                      for c in args.concurrency.split(",")]
            if args.saturation and "100" in args.delays.split(","):
                points += [Point(mode, 100, args.saturation) for mode in args.modes.split(",")
                           if Point(mode, 100, args.saturation) not in points]
            bench.matrix(points, targets)
        memory = {}
        for name in ("upstream", "floor", "dac", "dac-against", "litellm"):
            if name in bench.servers:
                pids = bench.servers[name].pids()
                memory[name] = {**procinfo.memory_kb(pids), "processes": len(pids)}
        if args.soak_only or not args.no_soak:
            for name in ("litellm", "floor", "dac", "dac-against"):  # free the core, memory and DB connections for the soak
                if name in bench.servers:
                    bench.servers.pop(name).stop()
            soak = bench.soak(token)
        cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
        try:
            import psycopg

            with psycopg.connect(dac_env().get("DATABASE_URL") or "postgres://dac_app@127.0.0.1:5432/dac") as conn:
                pg = conn.execute("SELECT current_setting('server_version'), current_setting('autovacuum'), current_setting('synchronous_commit')").fetchone()
            database = f"PostgreSQL {pg[0]} (autovacuum {pg[1]}, synchronous_commit {pg[2]}; tables VACUUM ANALYZEd by setup_dac.py before the run)"
        except Exception as exc:  # noqa: BLE001
            database = f"PostgreSQL ({exc.__class__.__name__})"
        meta = {
            "machine": f"{os.cpu_count()} × {cpu}, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB, Linux {os.uname().release}",
            "workers": args.workers,
            "database": database,
            "pinning": f"servers on CPU {sorted(bench.server_cpus)}, harness on CPU {sorted(bench.harness_cpus)}" if bench.pin else "none",
            "command": " ".join([".venv/bin/python bench/run.py", *sys.argv[1:]]),
            "reps": args.reps, "seconds": args.seconds, "min_calls": args.min_calls, "elapsed_s": time.time() - started, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        points = [] if args.soak_only else points
        text = report(bench, points, targets, soak, memory, meta)
        (bench.out / "results.md").write_text(text + "\n")
        (bench.out / "results.json").write_text(json.dumps({
            "meta": meta, "memory": memory, "soak": soak,
            "cells": {key: {t: {"runs": c.runs, "cpu_s": c.cpu_s, "backing_cpu_s": c.backing_cpu_s, "ok": c.ok, "errors": c.errors,
                                "upstream_connections": c.upstream_connections}
                            for t, c in cells.items()} for key, cells in bench.results.items()},
        }, indent=1, default=str))
        print(text)
        log(f"written {bench.out / 'results.md'} and results.json ({time.time() - started:.0f} s)")
        return 0
    finally:
        bench.stop_all()


if __name__ == "__main__":
    sys.exit(main())

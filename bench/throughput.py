"""Warm serving throughput (issue 14): ``python -m bench.throughput [REPEATS]``.

Needs ``wrk`` on PATH (Debian's package: ``apt-get install wrk``; ``scripts/bench.sh``
installs it when apt is there) and ArcticDB in .venv-bench (``scripts/bench.sh`` makes it).
Takes about 3 minutes per repetition of the load matrix, plus a minute of set-up.

- **Store.** Azurite, with 20 series of 5m candles written through cbtrade's storage API
  (``save_bulk_entries`` with their coverage): 90 days of 2023 each, and the first series a
  whole year. All of it is fully covered and long past, so every object is *sealed* (README,
  "Caching: sealed objects and HTTP"): a warm read makes no storage request.
- **Load.** wrk (closed loop, one thread, ``--latency``) on random 1-day and random 1-week
  ranges (aligned to 5m, inside the seeded days, explicit ``end``, JSON, default ``limit``,
  so one page each) over the 20 series, at concurrency 1, 8, 32 and 64, ``BENCH_SECONDS``
  (10) per cell, after a warm-up pass. The wrk script picks a random path per request from a
  list of 50,000 per range kind (a page rarely repeats).
- **Service.** ``cbtrade.api:create_app`` under uvicorn as deployed
  (``bench/serve_as_deployed.py``, without the dev-only pandas), one process.
- **Baseline.** ``bench/throughput_baseline.py``: a FastAPI route returning fixed bytes of
  the service's median page size for the range kind, under the same uvicorn flags, in its own
  process, measured in the same repetition right after the service's cell.
- **CPU per request.** Process CPU time (user + system, /proc) of the service, of Azurite and
  of the baseline during a cell, divided by the requests wrk completed.
- **Profile** (``BENCH_PYSPY=PREFIX``, py-spy in .venv-bench): one extra, unreported cell
  per range kind at concurrency 8 while py-spy samples the service.
- **Cold year.** A fresh service process per run (empty caches), then the 5m year of the
  first series in JSON through a plain httpx client opened beforehand, pages followed and
  decoded with orjson; against ArcticDB reading the same year from the same Azurite in a
  fresh process per run (``bench/arctic_cold.py``; its library opened beforehand).

Prints the results and writes them as the section "Warm serving throughput" at the end of
docs/benchmarks.md (the other sections are kept).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.run import (
    DAY,
    KEY,
    ROOT,
    YEAR_START,
    create_container,
    median_range,
    seed,
    series,
    service,
    service_env,
)
from tests.fixtures.azurite import run_azurite

SYMBOLS = [f"C{index:02d}/USDT" for index in range(20)]
SEEDED_DAYS = 90
FIVE_MINUTES = 300_000
KINDS = {"day": DAY, "week": 7 * DAY}
CONCURRENCY = (1, 8, 32, 64)
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP_SECONDS = 3
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "5"))
PATHS_PER_KIND = 50_000
"""Random ranges per kind: enough that a page rarely repeats within a cell, so a cache of
encoded pages would not be what is measured."""
UVICORN_FLAGS = ("--host", "127.0.0.1", "--no-access-log", "--log-level", "warning")
SECTION = "## Warm serving throughput (bench/throughput.py)"
AUTH = {"Authorization": f"Bearer {KEY}"}

WRK_SCRIPT = """\
-- bench/throughput.py: each request GETs a random path of the file named by wrk's first
-- script argument; done() prints one JSON line.
local paths = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  math.randomseed(1000 + (seed or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def uvicorn_app(factory: str, env: dict[str, str], ready: str) -> Any:
    """``factory`` under uvicorn with UVICORN_FLAGS, as deployed, in its own process; yields
    its URL and pid once ``ready`` answers."""
    return service(env, factory=factory, flags=UVICORN_FLAGS, ready=ready, headers=AUTH)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ohlcv_path(symbol: str, start: int, end: int) -> str:
    return (
        f"/api/v1/ohlcv?exchange=binance&symbol={symbol.replace('/', '%2F')}"
        f"&timeframe=5m&start={start}&end={end}"
    )


def random_paths(rng: random.Random, length: int) -> list[str]:
    """Random ranges of ``length`` ms, aligned to 5m, inside the seeded days of a random
    series."""
    slots = (SEEDED_DAYS * DAY - length) // FIVE_MINUTES + 1
    paths = []
    for _ in range(PATHS_PER_KIND):
        start = YEAR_START + rng.randrange(slots) * FIVE_MINUTES
        paths.append(ohlcv_path(rng.choice(SYMBOLS), start, start + length))
    return paths


def wrk(url: str, paths_file: Path, script: Path, connections: int, seconds: int) -> dict:
    """One wrk run: requests/s, p50 and p99 in ms, errors."""
    command = [
        "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
        "--timeout", "10s", "-H", f"Authorization: Bearer {KEY}", "-s", str(script), url,
        "--", str(paths_file),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    errors = sum(result[name] for name in ("connect", "read", "write", "status", "timeout"))
    if errors:
        raise RuntimeError(f"wrk saw {errors} errors against {url}: {result}")
    return {
        "requests": result["requests"],
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50": result["p50_us"] / 1000,
        "p99": result["p99_us"] / 1000,
        "max": result["max_us"] / 1000,
    }


def measured(pids: dict[str, int], run: Callable[[], dict]) -> dict:
    """``run()`` (a wrk run), with the CPU ms per request of each of ``pids``."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = run()
    for name, pid in pids.items():
        result[f"cpu_{name}"] = (cpu_seconds(pid) - before[name]) * 1000 / result["requests"]
    return result


def matrix(
    targets: dict[str, dict[str, tuple[str, Path]]],
    script: Path,
    pids: dict[str, int],
    repeat: int,
    repeats: int,
) -> list[dict]:
    """One repetition: per range kind, a warm-up pass of each target, then each concurrency
    against the service and right after it the baseline."""
    cells = []
    for kind, by_target in targets.items():
        for target_url, paths in by_target.values():
            wrk(target_url, paths, script, 8, WARMUP_SECONDS)
        for connections in CONCURRENCY:
            for target, (target_url, paths) in by_target.items():
                result = measured(
                    pids, lambda u=target_url, p=paths, c=connections: wrk(u, p, script, c, SECONDS)
                )
                result |= {
                    "repeat": repeat, "kind": kind, "connections": connections, "target": target,
                }  # fmt: skip
                cells.append(result)
                print(
                    f"run {repeat + 1}/{repeats} {kind} c={connections} {target}: "
                    f"{result['rps']:.0f} req/s, p50 {result['p50']:.1f} ms, "
                    f"p99 {result['p99']:.1f} ms, CPU/req service {result['cpu_service']:.2f} ms, "
                    f"azurite {result['cpu_azurite']:.2f} ms, "
                    f"baseline {result['cpu_baseline']:.2f} ms",
                    flush=True,
                )
    return cells


def profile(prefix: str, url: str, pid: int, paths: dict[str, Path], script: Path) -> None:
    """With ``BENCH_PYSPY=PREFIX``: after the matrix, one more cell per range kind at
    concurrency 8 (not reported) while py-spy (from .venv-bench) samples the service, its
    collapsed stacks written to ``PREFIX-<kind>.txt``."""
    for kind, kind_paths in paths.items():
        spy = subprocess.Popen(
            [str(ROOT / ".venv-bench/bin/py-spy"), "record", "--pid", str(pid), "--rate", "250",
             "--duration", str(SECONDS), "--nonblocking", "--format", "raw",
             "--output", f"{prefix}-{kind}.txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        wrk(url, kind_paths, script, 8, SECONDS - 1)
        spy.wait(timeout=SECONDS + 30)
        print(f"py-spy profile of 1-{kind} pages at concurrency 8: {prefix}-{kind}.txt")


def read_range(http: httpx.Client, url: str, symbol: str, days: int = 365) -> int:
    """The first ``days`` of 2023 of ``symbol``'s 5m candles in JSON, pages followed and
    decoded (with orjson, as cbtrade's client does); its candle count."""
    params: dict[str, str | int] = {
        "exchange": "binance", "symbol": symbol, "timeframe": "5m",
        "start": YEAR_START, "end": YEAR_START + days * DAY,
    }  # fmt: skip
    count = 0
    while True:
        body = orjson.loads(
            http.get(f"{url}/api/v1/ohlcv", params=params).raise_for_status().content
        )
        count += len(body["candles"])
        if body["continuation_token"] is None:
            return count
        params = {"continuation_token": body["continuation_token"]}


def page_sizes(url: str, paths: list[str], candles: int) -> int:
    """The median body size of the first 101 pages of ``paths``; checks each page is whole
    and sealed (served from memory, ``Cache-Control: public ... immutable``)."""
    sizes = []
    with httpx.Client(headers=AUTH, timeout=60) as http:
        for path in paths[:101]:
            response = http.get(f"{url}{path}").raise_for_status()
            assert len(response.json()["candles"]) == candles, path
            assert "immutable" in response.headers["cache-control"], response.headers
            sizes.append(len(response.content))
    return int(statistics.median(sizes))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if shutil.which("wrk") is None:
        sys.exit(
            "wrk is not on PATH: install Debian's package (apt-get install wrk), "
            "or run scripts/bench.sh, which does"
        )
    if not (ROOT / ".venv-bench/bin/python").exists():
        sys.exit("ArcticDB's venv .venv-bench is missing: run scripts/bench.sh once")
    loads = [load_average()]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    cells: list[dict] = []
    cold: list[dict] = []
    with (
        tempfile.TemporaryDirectory() as scratch_dir,
        run_azurite(Path(scratch_dir) / "azurite") as azurite,
    ):
        scratch = Path(scratch_dir)
        year_end = YEAR_START + 365 * DAY
        year = series(SYMBOLS[0], FIVE_MINUTES, YEAR_START, year_end)
        for symbol in SYMBOLS:
            end = year_end if symbol == SYMBOLS[0] else YEAR_START + SEEDED_DAYS * DAY
            candles = (
                year if symbol == SYMBOLS[0] else series(symbol, FIVE_MINUTES, YEAR_START, end)
            )
            asyncio.run(seed(azurite.connection_string, symbol, "5m", candles))
        print(f"seeded {len(SYMBOLS)} series of 5m into Azurite", flush=True)
        env = service_env(azurite.connection_string)
        script = scratch / "random_path.lua"
        script.write_text(WRK_SCRIPT)
        rng = random.Random(14)
        service_paths, baseline_paths = {}, {}
        for kind, length in KINDS.items():
            service_paths[kind] = scratch / f"service_{kind}.txt"
            service_paths[kind].write_text("\n".join(random_paths(rng, length)) + "\n")
            baseline_paths[kind] = scratch / f"baseline_{kind}.txt"
            baseline_paths[kind].write_text(f"/fixed/{kind}\n")

        with uvicorn_app("cbtrade.api:create_app", env, "/api/health") as (url, pid):
            with httpx.Client(headers=AUTH, timeout=120) as http:
                for symbol in SYMBOLS:  # every object into the service's cache
                    read_range(http, url, symbol, SEEDED_DAYS)
            sizes = {
                kind: page_sizes(
                    url, service_paths[kind].read_text().split(), length // FIVE_MINUTES
                )
                for kind, length in KINDS.items()
            }
            print(f"median page sizes (bytes): {sizes}", flush=True)
            fixed = ",".join(f"{kind}={size}" for kind, size in sizes.items())
            baseline_env = {"BENCH_FIXED_SIZES": fixed}
            baseline = "bench.throughput_baseline:create_app"
            with uvicorn_app(baseline, baseline_env, "/fixed/day") as (base_url, base_pid):
                for kind, size in sizes.items():
                    assert len(httpx.get(f"{base_url}/fixed/{kind}").content) == size
                pids = {"service": pid, "azurite": azurite.process.pid, "baseline": base_pid}
                for repeat in range(repeats):
                    targets = {
                        kind: {"service": (url, service_paths[kind]),
                               "baseline": (base_url, baseline_paths[kind])}
                        for kind in KINDS
                    }  # fmt: skip
                    cells += matrix(targets, script, pids, repeat, repeats)
                    loads.append(load_average())
                if os.environ.get("BENCH_PYSPY"):
                    profile(os.environ["BENCH_PYSPY"], url, pid, service_paths, script)

        for run in range(COLD_RUNS):
            with (
                uvicorn_app("cbtrade.api:create_app", env, "/api/health") as (url, _),
                httpx.Client(headers=AUTH, timeout=120) as http,
            ):
                began = time.perf_counter()
                assert read_range(http, url, SYMBOLS[0]) == len(year)
                first = time.perf_counter() - began
                began = time.perf_counter()
                read_range(http, url, SYMBOLS[0])
                second = time.perf_counter() - began
            cold.append({"service_first": first, "service_second": second})
            print(f"cold run {run + 1}: service {first:.3f} s, then {second:.3f} s", flush=True)
        asyncio.run(create_container(azurite.connection_string, "arctic"))
        candles_file = scratch / "year.json"
        candles_file.write_bytes(orjson.dumps([list(c) for c in year]))
        arctic = [str(ROOT / ".venv-bench/bin/python"), str(ROOT / "bench/arctic_cold.py")]
        subprocess.run(
            [*arctic, "write", azurite.connection_string, "arctic", str(candles_file)], check=True
        )
        for run in range(COLD_RUNS):
            out = subprocess.run(
                [*arctic, "read", azurite.connection_string, "arctic", str(len(year))],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            timings = json.loads(out.strip().splitlines()[-1])
            cold[run] |= {f"arctic_{name}": seconds for name, seconds in timings.items()}
            print(f"cold run {run + 1}: ArcticDB {timings}", flush=True)
    loads.append(load_average())

    section = report(cells, cold, repeats, sizes, commit, loads)
    print(section)
    document = ROOT / "docs/benchmarks.md"
    old = document.read_text() if document.exists() else "# Benchmarks\n"
    if SECTION in old:
        before, after = old.split(SECTION, 1)
        rest = after[after.index("\n## ") :] if "\n## " in after else ""
        old = before.rstrip("\n") + "\n" + rest
    document.write_text(old.rstrip("\n") + "\n\n" + section)
    raw = Path(tempfile.gettempdir()) / "cbtrade-throughput.json"
    raw.write_text(json.dumps({"cells": cells, "cold": cold, "sizes": sizes, "loads": loads}))
    print(f"raw results: {raw}")


def _spread(samples: list[float], digits: int) -> str:
    middle, low, high = median_range(samples)
    return f"{middle:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def report(
    cells: list[dict],
    cold: list[dict],
    repeats: int,
    sizes: dict[str, int],
    commit: str,
    loads: list[str],
) -> str:
    def pick(kind: str, connections: int, target: str) -> list[dict]:
        return [
            cell
            for cell in cells
            if (cell["kind"], cell["connections"], cell["target"]) == (kind, connections, target)
        ]

    rows = [
        "| range | concurrency | service req/s | service p50 ms | service p99 ms "
        "| baseline req/s | baseline p50 ms | baseline p99 ms | **baseline / service req/s** "
        "| CPU ms/req: service | Azurite | baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for kind in KINDS:
        for connections in CONCURRENCY:
            service = pick(kind, connections, "service")
            baseline = pick(kind, connections, "baseline")
            ratios = [b["rps"] / s["rps"] for s, b in zip(service, baseline, strict=True)]
            rows.append(
                f"| 1 {kind} | {connections} | {_spread([c['rps'] for c in service], 0)} "
                f"| {_spread([c['p50'] for c in service], 1)} "
                f"| {_spread([c['p99'] for c in service], 1)} "
                f"| {_spread([c['rps'] for c in baseline], 0)} "
                f"| {_spread([c['p50'] for c in baseline], 1)} "
                f"| {_spread([c['p99'] for c in baseline], 1)} "
                f"| **{_spread(ratios, 1)}x** "
                f"| {_spread([c['cpu_service'] for c in service], 2)} "
                f"| {_spread([c['cpu_azurite'] for c in service], 2)} "
                f"| {_spread([c['cpu_baseline'] for c in baseline], 2)} |"
            )
            if connections == 8:
                held_ratio = sum(ratio <= 6 for ratio in ratios)
                held_p99 = sum(c["p99"] <= 100 for c in service)
                p99s = ", ".join(f"{c['p99']:.1f} ms" for c in service)
                verdicts.append(
                    f"- **1-{kind} pages at concurrency 8, baseline req/s <= 6x the "
                    f"service's:** {_held(held_ratio, repeats)} "
                    f"({', '.join(f'{r:.1f}x' for r in ratios)}). **Service p99 <= 100 ms:** "
                    f"{_held(held_p99, repeats)} "
                    f"({p99s})."
                )
    first = [run["service_first"] for run in cold]
    second = [run["service_second"] for run in cold]
    arctic_first = [run["arctic_first"] for run in cold]
    arctic_open = [run["arctic_open"] for run in cold]
    arctic_second = [run["arctic_second"] for run in cold]
    cold_ratios = [run["service_first"] / run["arctic_first"] for run in cold]
    held_cold = sum(ratio <= 10 for ratio in cold_ratios)
    of_medians = statistics.median(first) / statistics.median(arctic_first)
    verdicts.append(
        f"- **Cold-cache 5m year in JSON <= 10x ArcticDB's cold read:** the ratio of the "
        f"medians is {of_medians:.1f}x; pairing each service run with the ArcticDB run of the "
        f"same index, {_held(held_cold, len(cold))} "
        f"({', '.join(f'{r:.1f}x' for r in cold_ratios)})."
    )
    cold_rows = [
        "| measurement (5m year, 105,120 candles) | cb-trade, HTTP JSON | ArcticDB | ratio |",
        "|---|---|---|---|",
        f"| first read in a fresh process (empty caches) | {_spread(first, 3)} s "
        f"| {_spread(arctic_first, 3)} s (library opened beforehand: {_spread(arctic_open, 3)} s) "
        f"| **{of_medians:.1f}x** of the medians; {_spread(cold_ratios, 1)}x paired by run "
        "(target <= 10x) |",
        f"| second read, same process | {_spread(second, 3)} s | {_spread(arctic_second, 3)} s "
        f"| {statistics.median(second) / statistics.median(arctic_second):.1f}x |",
    ]
    return (
        f"{SECTION}\n\n"
        f"Measured by `python -m bench.throughput {repeats}` on {time.strftime('%Y-%m-%d')} "
        f"at commit {commit}, on {os.cpu_count()} shared cores ({cpu_model()}); 1-minute load "
        f"average {loads[0]} before and {', '.join(loads[1:])} after each repetition. "
        f"Figures are medians of {repeats} repetitions of the whole matrix (min-max); every "
        "ratio is against the baseline measured in the same repetition.\n\n"
        "**Method.** Azurite holds 20 series of 5m candles written through cbtrade's storage "
        "API with their coverage (90 days of 2023 each, the first series the whole year), so "
        "every object is sealed and a warm page makes no storage request. The service "
        "(`cbtrade.api:create_app`, one uvicorn process as deployed: "
        "`bench/serve_as_deployed.py`, `--no-access-log --log-level warning`) is warmed by "
        "reading every series once. wrk (Debian's 4.1, closed loop, 1 thread, `--latency`) "
        "then sends, for "
        f"{SECONDS} s per cell after a {WARMUP_SECONDS} s warm-up pass per range kind, "
        "requests for a random path from 50,000 random 1-day or 1-week ranges (5m-aligned, "
        "explicit `end`, JSON, default `limit`: one page each) spread over the 20 series. "
        "The baseline is `bench/throughput_baseline.py`: a FastAPI route returning fixed "
        f"`application/json` bytes of the service's median page size ({sizes['day']:,} bytes "
        f"for a day, {sizes['week']:,} for a week), under the same uvicorn flags in its own "
        "process, measured right after the service's cell. CPU per request is the process "
        "CPU time (/proc, user + system) during the cell over the requests completed; wrk "
        "and the service share the 2 cores, so CPU per request is the steadier figure.\n\n"
        + "\n".join(rows)
        + "\n\n**Cold-cache year.** A fresh service process per run (started and healthy, "
        "caches empty), then the first series' 5m year in JSON through a plain `httpx.Client` "
        "opened beforehand, pages followed and decoded with orjson (as cbtrade's client "
        "does); against ArcticDB reading the same year "
        "from the same Azurite in a fresh process per run (`bench/arctic_cold.py`), timed "
        f"from its opened library; {len(cold)} runs each.\n\n"
        + "\n".join(cold_rows)
        + "\n\n**Targets (issue 14):**\n"
        + "\n".join(verdicts)
        + "\n"
    )


def _held(held: int, runs: int) -> str:
    if held == runs:
        return f"held in all {runs} runs"
    if held == 0:
        return f"missed in all {runs} runs"
    return f"held in {held} of {runs} runs"


if __name__ == "__main__":
    main()

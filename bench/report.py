"""Turn a run's results into ``latest.json``, ``latest.md`` and PNG plots (matplotlib, Agg).

Derived numbers (added latency over the direct-to-mock baseline, ratios between variants,
targets met or not) are computed here from the measured values of one run only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

BASE = "direct"
NR = "neuroroute"
GENERATOR_BOUND_TTFT_MS = 100.0


def _get(d: Any, *keys: str | int) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ok_runs(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in res["runs"].items() if v.get("status") == "ok"}


def derive(res: dict[str, Any]) -> dict[str, Any]:
    """Added latency vs direct, S1 ratios and the target checks for NeuroRoute minimal."""
    runs = _ok_runs(res)
    base = runs.get(BASE, {}).get("scenarios", {})
    added: dict[str, Any] = {}
    for name, run in runs.items():
        sc = run.get("scenarios", {})
        row: dict[str, Any] = {}
        for p in ("p50", "p99"):
            v, b = _get(sc, "S2", f"{p}_ms"), _get(base, "S2", f"{p}_ms")
            if v is not None and b is not None:
                row[f"s2_added_{p}_ms"] = round(v - b, 3)
        for level in (_get(sc, "S4", "levels") or {}):
            for p in ("p50", "p99"):
                v = _get(sc, "S4", "levels", level, "ttft", f"{p}_ms")
                b = _get(base, "S4", "levels", level, "ttft", f"{p}_ms")
                if v is not None and b is not None:
                    row[f"s4_{level}_added_ttft_{p}_ms"] = round(v - b, 3)
        added[name] = row
    s1 = {n: _get(r, "scenarios", "S1", "rps") for n, r in runs.items()}
    cpu = {n: _get(r, "scenarios", "S1", "cpu_us_per_req") for n, r in runs.items()}
    ratios = {}
    for other in ("flask_relay", "fastapi_httpx", "aiohttp_relay"):
        if s1.get(NR) and s1.get(other):
            ratios[f"s1_neuroroute_over_{other}"] = round(s1[NR] / s1[other], 2)
        # Capacity ratio from CPU time per request: other's CPU/req over NeuroRoute's.
        if cpu.get(NR) and cpu.get(other):
            ratios[f"s1_cpu_neuroroute_over_{other}"] = round(cpu[other] / cpu[NR], 2)
    # A stream level where even the direct baseline is slow saturates the load core (mock +
    # generator): latency there says nothing about the relay, so no "added" value is derived.
    bound = [lv for lv, r in (_get(base, "S4", "levels") or {}).items()
             if r["errors"] or r["ttft"].get("p99_ms", 0) > GENERATOR_BOUND_TTFT_MS]
    for row in added.values():
        for lv in bound:
            for p in ("p50", "p99"):
                row.pop(f"s4_{lv}_added_ttft_{p}_ms", None)
    targets = _targets(runs.get(NR, {}).get("scenarios", {}), added.get(NR, {}), ratios)
    ceiling = _get(base, "S1", "rps")
    mock_bound = [n for n, v in s1.items() if n != BASE and v and ceiling and v > 0.6 * ceiling]
    return {"added": added, "ratios": ratios, "targets": targets, "mock_ceiling_rps": ceiling,
            "mock_cpu_us_per_req": cpu.get(BASE), "possibly_mock_bound_s1": mock_bound,
            "generator_bound_s4_levels": bound}


def _targets(sc: dict[str, Any], added: dict[str, Any], ratios: dict[str, float]
             ) -> list[dict[str, Any]]:
    def t(name: str, value: Any, goal: str, met: bool | None) -> dict[str, Any]:
        return {"target": name, "value": value, "goal": goal,
                "met": None if value is None else met}

    r_flask, r_fast = ratios.get("s1_neuroroute_over_flask_relay"), ratios.get(
        "s1_neuroroute_over_fastapi_httpx")
    a50, a99 = added.get("s2_added_p50_ms"), added.get("s2_added_p99_ms")
    s3_rps, s3_err = _get(sc, "S3", "rps"), _get(sc, "S3", "errors")
    s3_conns = _get(sc, "S3", "connections")
    l500, l2000 = _get(sc, "S4", "levels", "500"), _get(sc, "S4", "levels", "2000")
    ttft500 = added.get("s4_500_added_ttft_p50_ms")
    c_flask, c_fast = ratios.get("s1_cpu_neuroroute_over_flask_relay"), ratios.get(
        "s1_cpu_neuroroute_over_fastapi_httpx")
    out = [
        t("S1 >= 1.6x bare Flask relay (req/s)", r_flask, ">= 1.6",
          r_flask is not None and r_flask >= 1.6),
        t("S1 >= 1.6x bare Flask relay (CPU/req)", c_flask, ">= 1.6",
          c_flask is not None and c_flask >= 1.6),
        t("S1 >= 3x FastAPI+httpx (req/s)", r_fast, ">= 3.0", r_fast is not None and r_fast >= 3.0),
        t("S1 >= 3x FastAPI+httpx (CPU/req)", c_fast, ">= 3.0",
          c_fast is not None and c_fast >= 3.0),
        t("S2 added p50 (ms)", a50, "<= 0.8", a50 is not None and a50 <= 0.8),
        t("S2 added p99 (ms)", a99, "<= 2.0", a99 is not None and a99 <= 2.0),
        t("S3 req/s, 1000 conns, 0 errors",
          None if s3_rps is None or s3_conns != 1000 else f"{s3_rps} ({s3_err} errors)",
          ">= 1000, 0 errors", bool(s3_rps and s3_rps >= 1000 and s3_err == 0)),
        t("S4 500 streams: errors", None if l500 is None else l500["errors"], "0",
          l500 is not None and l500["errors"] == 0),
        t("S4 500 streams: added TTFT p50 (ms)", ttft500, "<= 20",
          ttft500 is not None and ttft500 <= 20),
        t("S4 2000 streams: errors", None if l2000 is None else l2000["errors"], "0",
          l2000 is not None and l2000["errors"] == 0),
        t("S4 2000 streams: peak RSS (MB)", None if l2000 is None else l2000["peak_rss_mb"],
          "<= 150", l2000 is not None and l2000["peak_rss_mb"] <= 150),
    ]
    return out


def _f(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(res: dict[str, Any]) -> str:
    """The Markdown summary (tables per scenario group, targets, load averages)."""
    d = res["derived"]
    m = res["meta"]
    lines = [f"# NeuroRoute bench: {m['started']} (profile `{res['profile']}`)", "",
             f"Machine: {m['cpus']} cores, {m['python']}; variants pinned to core 0, mock + "
             f"load generator to core 1, 1 process each. Git `{m['git']}`.",
             f"Load average (1/5/15 min) before the run: {m['loadavg_start']}, after: "
             f"{m['loadavg_end']} (other test suites share the machine; per scenario below).",
             f"Mock upstream ceiling (wrk straight at it, S1 shape): "
             f"**{_f(d['mock_ceiling_rps'])} req/s**."
             + (f" Possibly mock-bound in S1: {', '.join(d['possibly_mock_bound_s1'])}."
                if d["possibly_mock_bound_s1"] else ""), ""]
    runs = res["runs"]
    lines += ["## Non-stream (wrk; S5 = our open-loop client)", "",
              "| variant | S1 req/s | S1 CPU us/req | S1 p50 ms | S1 p99 ms | S2 p50 ms | "
              "S2 p99 ms | S2 added p50/p99 ms | S3 req/s (ideal) | S3 p99 ms | S3 errors | "
              "S3 peak RSS MB | S5 max rate (p99<=100ms) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        if run.get("status") != "ok":
            lines.append(f"| {run['label']} | {run['status']} |" + " |" * 11)
            continue
        sc, ad = run["scenarios"], d["added"].get(name, {})
        s1, s2, s3, s5 = (sc.get(k, {}) for k in ("S1", "S2", "S3", "S5"))
        lines.append(
            f"| {run['label']} | {_f(s1.get('rps'))} | {_f(s1.get('cpu_us_per_req'), 0)} | "
            f"{_f(s1.get('p50_ms'), 2)} | "
            f"{_f(s1.get('p99_ms'), 2)} | {_f(s2.get('p50_ms'), 3)} | {_f(s2.get('p99_ms'), 3)} "
            f"| {_f(ad.get('s2_added_p50_ms'), 3)} / {_f(ad.get('s2_added_p99_ms'), 3)} | "
            f"{_f(s3.get('rps'))} ({_f(s3.get('ideal_rps'), 0)}) | {_f(s3.get('p99_ms'), 1)} | "
            f"{_f(s3.get('errors'))} | {_f(s3.get('peak_rss_mb'))} | "
            f"{_f(s5.get('max_sustained_rps'))} |")
    lines += ["", "S1 CPU us/req: CPU time (user+sys) of the server's process tree per request "
              "during S1; unlike req/s it barely moves when other jobs share the core.", "",
              "## Streams (S4: 64 chunks 20 ms apart; stall = inter-chunk gap > "
              f"{res['settings']['stall_ms']:g} ms)", ""]
    if d.get("generator_bound_s4_levels"):
        lines += [f"Levels {', '.join(d['generator_bound_s4_levels'])}: the direct baseline "
                  f"itself has TTFT p99 > {GENERATOR_BOUND_TTFT_MS:g} ms, i.e. the load core "
                  "(mock + generator) saturates; their latencies are not comparable and no added"
                  " TTFT is derived. Errors and RSS remain valid.", ""]
    lines += [
              "| variant | streams | completed | errors | stalls | TTFT p50/p99 ms | "
              "added TTFT p50/p99 ms | gap p99 ms | peak RSS MB | RSS per idle stream KB |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        s4 = _get(run, "scenarios", "S4")
        if run.get("status") != "ok" or not s4:
            continue
        ad = d["added"].get(name, {})
        idle = s4.get("idle", {})
        per_idle = (_f(idle.get("rss_per_stream_kb")) if not idle.get("errors")
                    else f"n/a ({idle['errors']} errors)")
        for level, r in s4["levels"].items():
            lines.append(
                f"| {run['label']} | {level} | {_f(r['streams_completed'])} | "
                f"{_f(r['errors'])} | {_f(r['stalls'])} | {_f(r['ttft'].get('p50_ms'), 2)} / "
                f"{_f(r['ttft'].get('p99_ms'), 2)} | "
                f"{_f(ad.get(f's4_{level}_added_ttft_p50_ms'), 2)} / "
                f"{_f(ad.get(f's4_{level}_added_ttft_p99_ms'), 2)} | "
                f"{_f(r['gap'].get('p99_ms'), 1)} | {_f(r['peak_rss_mb'])} | "
                f"{per_idle} ({_f(idle.get('streams'))} idle) |")
    lines += ["", "## Targets (NeuroRoute minimal, ratios from this run)", "",
              "| target | measured | goal | met |", "|---|---|---|---|"]
    for t in d["targets"]:
        met = "not measured in this run" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {_f(t['value'], 2)} | {t['goal']} | {met} |")
    if d["ratios"]:
        lines += ["", "S1 ratios: " + ", ".join(f"{k} = {v}" for k, v in d["ratios"].items())]
    if res.get("side_by_side"):
        from bench.sidebyside import markdown as side_by_side

        labels = {n: r["label"] for n, r in runs.items()}
        lines += ["", *side_by_side(res["side_by_side"], labels)]
    lines += ["", "## Load average (1 min) before each scenario", "",
              "| variant | S1 | S2 | S3 | S4 | S5 |", "|---|---|---|---|---|---|"]
    for run in runs.values():
        sc = run.get("scenarios") or {}
        cells = []
        for k in ("S1", "S2", "S3", "S4", "S5"):
            la = _get(sc, k, "loadavg")
            if la is None and k == "S4":
                la = next(iter((_get(sc, "S4", "levels") or {}).values()), {}).get("loadavg")
            if la is None and k == "S5":
                la = (_get(sc, "S5", "steps") or [{}])[0].get("loadavg")
            cells.append(_f(la[0], 2) if la else "-")
        lines.append(f"| {run['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def plots(res: dict[str, Any], outdir: Path) -> list[Path]:
    """throughput.png, latency_cdf.png and rss.png; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _ok_runs(res)
    labels = [r["label"] for r in runs.values()]
    colors = [f"C{i}" for i in range(len(runs))]
    written = []

    def bars(ax: Any, values: list[Any], title: str, unit: str) -> None:
        vals = [v or 0 for v in values]
        ax.bar(range(len(vals)), vals, color=colors)
        ax.set_xticks(range(len(vals)), labels, rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        for i, v in enumerate(vals):
            ax.annotate(f"{v:,.0f}", (i, v), ha="center", va="bottom", fontsize=7)

    sc = [r["scenarios"] for r in runs.values()]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    bars(axes[0], [_get(s, "S1", "rps") for s in sc], "S1 CPU-bound relay (0 ms upstream)",
         "req/s")
    bars(axes[1], [_get(s, "S3", "rps") for s in sc],
         f"S3 I/O-bound ({res['settings']['s3_conns']} conns, "
         f"{res['settings']['s3_latency_ms']} ms upstream)", "req/s")
    ideal = next((_get(s, "S3", "ideal_rps") for s in sc if _get(s, "S3", "ideal_rps")), None)
    if ideal:
        axes[1].axhline(ideal, color="grey", ls="--", lw=1, label=f"ideal {ideal:,.0f}")
        axes[1].legend(fontsize=8)
    bars(axes[2], [_get(s, "S5", "max_sustained_rps") for s in sc],
         "S5 open loop: max rate with p99 <= 100 ms", "req/s")
    fig.tight_layout()
    written.append(outdir / "throughput.png")
    fig.savefig(written[-1], dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for run, c in zip(runs.values(), colors, strict=True):
        cdf = _get(run, "scenarios", "S1", "cdf_ms")
        if cdf:
            axes[0].plot([v for _, v in cdf], [p for p, _ in cdf], marker=".", color=c,
                         label=run["label"])
        bound = res.get("derived", {}).get("generator_bound_s4_levels", [])
        levels = {k: v for k, v in (_get(run, "scenarios", "S4", "levels") or {}).items()
                  if k not in bound}
        if levels:
            top = max(levels, key=int)
            tc = levels[top].get("ttft_cdf_ms")
            if tc:
                axes[1].plot([v for _, v in tc], [p for p, _ in tc], marker=".", color=c,
                             label=f"{run['label']} ({top} streams)")
    for ax, title in ((axes[0], "S1 latency CDF (64 connections)"),
                      (axes[1], "S4 time to first event CDF (largest unsaturated level)")):
        ax.set_xscale("log")
        ax.set_xlabel("ms (log)")
        ax.set_ylabel("percentile")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(outdir / "latency_cdf.png")
    fig.savefig(written[-1], dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    series = [("S3", lambda s: _get(s, "S3", "peak_rss_mb"))]
    levels_all = sorted({lv for s in sc for lv in (_get(s, "S4", "levels") or {})}, key=int)
    for lv in levels_all:
        series.append((f"S4 {lv} streams",
                       lambda s, lv=lv: _get(s, "S4", "levels", lv, "peak_rss_mb")))
    width = 0.8 / max(len(series), 1)
    for j, (name, fn) in enumerate(series):
        axes[0].bar([i + j * width for i in range(len(sc))], [fn(s) or 0 for s in sc],
                    width, label=name)
    axes[0].set_xticks([i + 0.4 - width / 2 for i in range(len(sc))], labels, rotation=25,
                       ha="right", fontsize=8)
    axes[0].set_ylabel("MB")
    axes[0].set_title("Peak RSS of the variant process tree", fontsize=10)
    axes[0].axhline(150, color="grey", ls="--", lw=1, label="150 MB target")
    axes[0].legend(fontsize=8)
    bars(axes[1], [None if _get(s, "S4", "idle", "errors") else
                   _get(s, "S4", "idle", "rss_per_stream_kb") for s in sc],
         "RSS per idle open stream (0 = not measurable: errors)", "KB")
    fig.tight_layout()
    written.append(outdir / "rss.png")
    fig.savefig(written[-1], dpi=90)
    plt.close(fig)
    return written


def main() -> None:
    """Re-render the report from a results file: ``python -m bench.report latest.json``."""
    import sys

    path = Path(sys.argv[1])
    for out in write(json.loads(path.read_text()), path.parent):
        print(f"wrote {out}")


def write(res: dict[str, Any], outdir: Path) -> list[Path]:
    """Write latest.json, latest.md and the plots into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    res["derived"] = derive(res)
    (outdir / "latest.json").write_text(json.dumps(res, indent=1) + "\n")
    (outdir / "latest.md").write_text(markdown(res))
    return [outdir / "latest.json", outdir / "latest.md", *plots(res, outdir)]


if __name__ == "__main__":
    main()

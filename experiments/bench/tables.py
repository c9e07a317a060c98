"""The benchmark results as markdown (for the README) and as terminal tables."""

from __future__ import annotations


def _range(s: dict, scale: float = 1e3, digits: int = 1) -> str:
    return (
        f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}-"
        f"{s['max'] * scale:.{digits}f})"
    )


def _ratio(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def sections(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) per table."""
    out = []
    rows = [
        [
            f"{r['size']:.0e}",
            r["layout"],
            r.get("dtype", "float32"),
            r["optimizer"],
            _range(r["seconds"]),
            f"{r['hlo_passes']:g}" if r.get("hlo_passes") is not None else "—",
            f"{r['GB_per_s']:.1f}",
            _ratio(r["fraction_of_limit"]),
            _ratio(r["vs_optax_sgd"]),
            _ratio(r["vs_optax_nesterov"]) if "vs_optax_nesterov" in r else "—",
            f"{r['vs_torch_fused']:.2f}" if "vs_torch_fused" in r else "—",
        ]
        for r in results["update_step"]
    ]
    out.append(
        (
            "Update step (momentum update + apply); bfloat16 params keep float32 buffers",
            [
                "params",
                "layout",
                "params dtype",
                "optimizer",
                "ms: median (min-max)",
                "passes (HLO)",
                "GB/s",
                "fraction of in-place limit",
                "time / optax.sgd",
                "time / optax.sgd nesterov",
                "time / torch fused",
            ],
            rows,
        )
    )
    rows = [
        [
            str(r["batch_size"]),
            r["evaluation"],
            r["loop"],
            _range(r["seconds"]),
            f"{r['samples_per_s']:,.0f}",
            _ratio(r["vs_floor"]),
        ]
        for r in results["training_loop"]
    ]
    steps = results["training_loop"][0]["steps"] if results["training_loop"] else 0
    out.append(
        (
            f"MNIST-1D MLP 40-100-100-10, {steps} steps of heavy ball, same batches",
            [
                "batch",
                "evaluation (full training + validation sets)",
                "loop",
                "ms: median (min-max)",
                "samples/s",
                "speed / the floor's (paired)",
            ],
            rows,
        )
    )
    sweep = results["momentum_sweep"]
    best = min(r["total_seconds"] for r in sweep if r["method"].startswith("one vmap"))
    rows = [
        [
            r["method"],
            f"{r['compile_seconds']:.2f}",
            f"{r['run_seconds']:.2f}",
            f"{r['total_seconds']:.2f}",
            f"{r['total_seconds'] / best:.1f}x",
        ]
        for r in sweep
    ]
    values = sweep[0].get("values", 32) if sweep else 32
    out.append(
        (
            f"{values} momentum values x 100 steps of batch 32 (digits MLP, loop.train)",
            ["method", "compile s", "run s", "total s", "total / vmap"],
            rows,
        )
    )
    rows = [
        [r["transformation"], f"{r['state_per_param_byte']:.2f}", str(r["scalar_bytes"])]
        for r in results["state_memory"]
    ]
    out.append(
        (
            "Optimizer state per parameter byte",
            ["transformation", "state bytes / param byte", "+ scalar bytes"],
            rows,
        )
    )
    return out


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Measured on {m['cpu']} ({m['cores']} cores), JAX {m['jax']} ({m['backend']})"
        + (f", PyTorch {m['torch']}" if "torch" in m else ", without PyTorch")
        + (", --quick" if results["quick"] else "")
        + ".",
        "",
    ]
    for title, header, rows in sections(results):
        lines += [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    if results["training_loop"]:
        lines += [loop_summary(results["training_loop"]), ""]
    return "\n".join(lines)


def loop_summary(rows: list[dict]) -> str:
    """One sentence: the library's loop's speed as a fraction of the bare scan's, the
    lowest and highest median over the settings timed (the target is at least 0.9)."""
    from ..bench.training_speed import LIBRARY

    medians = [r["vs_floor"]["median"] for r in rows if r["loop"] == LIBRARY]
    return (
        f"The library's loop runs at {min(medians):.2f}-{max(medians):.2f} of the bare "
        f"scan's speed over {len(medians)} settings (median of paired ratios; target: "
        "at least 0.90)."
    )


def print_tables(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for title, header, rows in sections(results):
        table = Table(title=title)
        for column in header:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    if results["training_loop"]:
        console.print(loop_summary(results["training_loop"]))

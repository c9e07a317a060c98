"""The benchmark results as markdown (for the README) and as terminal tables."""

from __future__ import annotations


def _range(s: dict, scale: float = 1e3, digits: int = 1) -> str:
    return (f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}-"
            f"{s['max'] * scale:.{digits}f})")


def _ratio(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def sections(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) per table."""
    out = []
    rows = [[f"{r['size']:.0e}", r["layout"], r["optimizer"], _range(r["seconds"]),
             f"{r['GB_per_s']:.1f}", _ratio(r["fraction_of_limit"]), _ratio(r["vs_optax_sgd"]),
             f"{r['vs_torch_fused']:.2f}" if "vs_torch_fused" in r else "—"]
            for r in results["update_step"]]
    out.append(("Update step (momentum update + apply), float32",
                ["params", "layout", "optimizer", "ms: median (min-max)", "GB/s",
                 "fraction of in-place limit", "time / optax.sgd", "time / torch fused"], rows))
    rows = [[str(r["batch_size"]), r["loop"], _range(r["seconds"]),
             f"{r['samples_per_s']:,.0f}", f"{r['library_speedup']:.1f}x"]
            for r in results["mlp_throughput"]]
    out.append(("MLP 64-64-10 on digits, one epoch",
                ["batch", "loop", "ms: median (min-max)", "samples/s",
                 "library's compiled loop is faster by"], rows))
    sweep = results["momentum_sweep"]
    best = min(r["total_seconds"] for r in sweep if r["method"].startswith("one vmap"))
    rows = [[r["method"], f"{r['compile_seconds']:.2f}", f"{r['run_seconds']:.2f}",
             f"{r['total_seconds']:.2f}", f"{r['total_seconds'] / best:.1f}x"] for r in sweep]
    out.append(("32 momentum values x 1 epoch, batch 32",
                ["method", "compile s", "run s", "total s", "total / vmap"], rows))
    rows = [[r["transformation"], f"{r['state_per_param_byte']:.2f}", str(r["scalar_bytes"])]
            for r in results["state_memory"]]
    out.append(("Optimizer state per parameter byte",
                ["transformation", "state bytes / param byte", "+ scalar bytes"], rows))
    return out


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured on {m['cpu']} ({m['cores']} cores), JAX {m['jax']} ({m['backend']})"
             + (f", PyTorch {m['torch']}" if "torch" in m else ", without PyTorch")
             + (", --quick" if results["quick"] else "") + ".", ""]
    for title, header, rows in sections(results):
        lines += [f"**{title}**", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


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

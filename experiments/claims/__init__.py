"""One module per claim family; each measures, judges, draws and describes its claims.

Every module exposes ``NAME`` (the name ``python -m experiments NAME`` takes),
``CLAIMS`` (the ids it measures, stated in ``experiments.registry.STATEMENTS``), a
frozen ``Config`` dataclass with ``QUICK`` and ``FULL`` instances (quick, full and GPU
runs differ only there), and

- ``measure(cfg, key, status) -> numbers``: runs the compiled, vmapped experiments
  (every seed x trial of a comparison in one function) and returns NumPy numbers;
- ``judge(numbers, cfg) -> Verdict`` (one per claim): a pure function from numbers to
  a status, through ``experiments.protocol.verdicts``; tested on hand-made numbers
  that produce every status;
- ``figure(numbers, cfg, out) -> [png names]`` and ``describe(...) -> Finding``;
- ``run(cfg, key, out, status) -> list[Finding]``, the one signature the runner calls.
"""

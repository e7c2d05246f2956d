"""`make bench`: every module in this package is one benchmark area with a `run(quick) -> dict` function.

Figures are measured, printed as JSON and written to bench.json; tests never assert on timings.
"""

"""MarketAnalysisJob: price trends and time-adjustment factors from a county's sales.

`params` and `table` declare its input and row, `spec` validates and dispatches to one module
per analysis type; the statistics themselves are in `jobs.stats.market`.
"""

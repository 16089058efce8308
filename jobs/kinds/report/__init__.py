"""ReportJob: sales ratio studies and assessment rolls.

`params` and `table` declare its input and row, `spec` validates and dispatches to one module
per report type; the IAAO statistics themselves are in `jobs.stats.ratio`.
"""

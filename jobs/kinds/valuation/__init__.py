"""ValuationJob: the market value of one parcel, or of every parcel of a county.

`params` and `table` declare its input and rows, `spec` validates and dispatches to
`single_parcel` or `county`; the models themselves are in `jobs.stats.valuation`.
"""

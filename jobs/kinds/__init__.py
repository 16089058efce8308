"""One folder per job kind: its parameters, table, validation, compute and file writers."""

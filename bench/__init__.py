"""Benchmarks: ``make bench`` (``python -m bench``) runs every module in this package
(``bench/<name>.py``, names starting with ``_`` are helpers) and prints its figures:
either ``main() -> None`` prints them, or ``run() -> list[dict[str, object]]`` returns the
rows of one table (titled by the module's ``TITLE``). ``python -m bench <name> …`` runs
only the named ones."""

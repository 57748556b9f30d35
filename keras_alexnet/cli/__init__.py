"""Command-line programs; each bin/ script and alexnet-* command calls one `run()` here."""

"""Command-line interface (thin: parsing and printing over library functions)."""

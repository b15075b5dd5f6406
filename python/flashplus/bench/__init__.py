"""The project benchmark behind `python -m flashplus bench`.

sweep.py measures (dense forward / backward / forward+backward against torch SDPA backends, peak
memory, decode bandwidth); report.py turns the results into a table, a plot, the target checks and
the markdown section of bench/RESULTS.md.
"""

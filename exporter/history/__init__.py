"""Gap-free history: the vendors' own records of what the exporter missed, as the same series a
scrape would have made (docs/history.md)."""

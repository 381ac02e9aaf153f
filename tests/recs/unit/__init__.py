"""recs."""

"""Reports: scoring, metrics, plots, prediction."""

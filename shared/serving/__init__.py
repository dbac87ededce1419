"""Serving: the trained models exported for TF Serving and KServe, and batch inference."""

"""The catsdogs jobs: one Typer app per stage, composed by `python -m jobs` / `catsdogs`."""

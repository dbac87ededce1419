"""Library shared by the catsdogs jobs: volume layout, data, models, plots. Nothing runs at import."""

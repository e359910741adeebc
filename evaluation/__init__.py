"""Results for people and machines: image grids, plots, tables and JSON, written atomically."""

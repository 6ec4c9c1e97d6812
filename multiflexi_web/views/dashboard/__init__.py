"""The dashboard page, its figures and SVG charts."""

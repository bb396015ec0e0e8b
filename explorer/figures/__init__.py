"""Figures from explorer data: Plotly charts, formulas as Markdown with LaTeX, and pictures (grids, GIF, MP4)."""

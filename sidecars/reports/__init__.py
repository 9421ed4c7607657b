"""HTML reports people read (quality, comparison, drift): self-contained pages with SVG plots."""

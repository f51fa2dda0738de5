"""Data files shipped inside the package (class lists, icons)."""

"""condgen-crystals: symmetric crystals by the Wyckoff Transformer (Kazeev et al. 2025)."""

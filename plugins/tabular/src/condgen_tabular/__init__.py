"""condgen-tabular: TabEBM (Margeloiu et al. 2024) for tabular data augmentation."""

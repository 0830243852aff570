"""condgen-tabular: TabEBM (Margeloiu et al. 2024) for tabular data augmentation."""

#: The built-in data sets (scikit-learn ships them; nothing is downloaded).
BUILTIN = ("iris", "wine", "breast_cancer", "digits")
#: Rows kept of a built-in data set when no size is given: the paper's small-N regime.
DEFAULT_ROWS = 50

"""condgen-text: topic-conditioned quotations by GeDi-guided decoding."""

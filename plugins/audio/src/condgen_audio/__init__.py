"""condgen audio plugin: DiffWave vocoder, class-conditional DiffWave and a mel cascade."""

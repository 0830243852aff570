"""condgen-toy: the reference plugin. A 2-D Gaussian mixture whose denoiser is exact."""

"""condgen-waves: Short periodic signals (sine, square, sawtooth) from a small MLP denoiser"""

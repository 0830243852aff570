"""condgen video plugin: moving-digit clips from a four-plane latent diffusion model."""

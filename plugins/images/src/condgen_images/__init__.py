"""condgen-images: class-conditional DiT and MaskGIT on digits and procedural shapes."""

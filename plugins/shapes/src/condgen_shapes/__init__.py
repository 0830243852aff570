"""condgen-shapes: class-conditional 3D shapes by flow matching over Mosaic-SDF grids."""

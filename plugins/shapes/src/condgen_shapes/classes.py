"""The shape classes and the extent of every shape, without torch (the plugin's hooks import these)."""

CONDITION = "shape"
PRIMITIVES = ("sphere", "box", "rounded_box", "torus", "capsule", "cylinder", "cone")
COMPOSITES = ("table", "chair", "mug", "lamp")
CLASSES = PRIMITIVES + COMPOSITES
EXTENT = 0.85  # every shape lies in the ball of this radius
GRIDS, K = 24, 9  # the shipped model's M-SDF: 24 grids of 9^3 values (also what `core shapes-encode` uses by default)
MESH_ACCEPTED = "a closed (watertight) triangle mesh file, .ply or .obj"

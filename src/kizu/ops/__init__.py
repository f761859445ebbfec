"""Pure array operations the core shares: resizing images and maps, smoothing, tiling.

No state, no files: arrays in, arrays out.
"""

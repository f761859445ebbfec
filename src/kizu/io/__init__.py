"""Where files are read and written: images and masks (``images``), folder layouts (``layouts``),
atomic writes (``atomic``) and the model file (``model_file``: save, load, format migration)."""

from .atomic import atomic_write_bytes, atomic_write_text
from .images import ImageFiles, decode_image, expand_inputs, list_images, read_image, write_image
from .layouts import LabelledSet, read_mask, test_set, training_image_paths
from .model_file import load_model, model_id, save_model

__all__ = ["ImageFiles", "LabelledSet", "atomic_write_bytes", "atomic_write_text", "decode_image", "expand_inputs",
           "list_images", "load_model", "model_id", "read_image", "read_mask", "save_model", "test_set",
           "training_image_paths", "write_image"]

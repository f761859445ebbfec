"""Where files are read and written: images and masks (``images``), folder layouts (``layouts``),
atomic writes (``atomic``), the model file (``model_file``: save, load, format migration) and the
exported bundle (``bundle``). Names load on first use: reading a bundle never imports PyTorch."""

from .._lazy import lazy_exports

_NAMES = {
    "atomic_write_bytes": ".atomic", "atomic_write_text": ".atomic",
    "ImageFiles": ".images", "decode_image": ".images", "expand_inputs": ".images", "list_images": ".images",
    "read_image": ".images", "write_image": ".images",
    "LabelledSet": ".layouts", "read_mask": ".layouts", "test_set": ".layouts", "training_image_paths": ".layouts",
    "load_model": ".model_file", "model_id": ".model_file", "save_model": ".model_file",
}
__getattr__ = lazy_exports(__name__, _NAMES)
__all__ = sorted(_NAMES)

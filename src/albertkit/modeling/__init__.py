"""ALBERT itself: the config and presets, the model and its heads, and model folders on disk (HF format)."""

"""Text-to-tensor codecs, one module per task, importable without Lightning."""

"""lit_nlp: fine-tune BERT, DistilBERT and T5 on text with PyTorch Lightning and Hydra."""

from lit_nlp import resolvers as _resolvers  # noqa: F401  (registers ${lit_nlp.*:} for configs)

__version__ = "0.1.0"

"""albertkit: pretrain, fine-tune, evaluate and serve ALBERT models."""

from albertkit.config import AlbertConfig
from albertkit.errors import UserError

__version__ = "0.1.0"

__all__ = ["AlbertConfig", "UserError", "__version__"]

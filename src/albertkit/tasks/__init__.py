"""Fine-tuning tasks: reading their files, featurizing, decoding model outputs into predictions, and metrics.

Each task is one module whose `Task` subclass registers itself (`tasks.base.register`); importing the package
registers the built-in ones, in the order `--task` lists them.
"""

from albertkit.tasks import classification, pair, regression, ner, qa  # noqa: F401, I001  (they register)

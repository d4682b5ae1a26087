"""The quickstart sample that ships inside the package: original English and Chinese text written for albertkit.

Each language folder holds `corpus.txt` (one paragraph per line, a blank line between documents) and
`sentiment_train.tsv` / `sentiment_dev.tsv` (header `sentence<TAB>label`, labels positive/negative).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from albertkit.errors import UserError

SAMPLE_LANGS = ("en", "zh")
SAMPLE_FILES = ("corpus.txt", "sentiment_train.tsv", "sentiment_dev.tsv")


def sample_path(lang: str, name: str) -> Path:
    """The path of sample file `name` (one of SAMPLE_FILES) in language `lang` ("en" or "zh")."""
    if lang not in SAMPLE_LANGS:
        raise UserError(f"no sample in language {lang!r}; choose {' or '.join(SAMPLE_LANGS)}")
    if name not in SAMPLE_FILES:
        raise UserError(f"no sample file {name!r}; choose one of {', '.join(SAMPLE_FILES)}")
    # The package is installed as plain files (never zipped), so the resource is a real path.
    return Path(str(resources.files(__name__).joinpath(lang, name)))

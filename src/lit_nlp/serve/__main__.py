"""python -m lit_nlp.serve model_path=... [key=value ...]: serve.py, from an installed lit_nlp
(the benchmark starts servers this way)."""

import sys

from lit_nlp.errors import exit_on_user_error
from lit_nlp.serve.server import main

if __name__ == "__main__":
    exit_on_user_error(main)(sys.argv[1:])

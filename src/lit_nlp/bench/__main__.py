"""python -m lit_nlp.bench suite=tiny|cpu|gpu|sst2|gpu_check|serve|data [key=value ...]; options in lit_nlp.bench.options."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from lit_nlp.errors import exit_on_user_error


@exit_on_user_error
def main(argv: list[str]) -> None:
    from lit_nlp.bench.options import parse
    from lit_nlp.bench.run import run_bench

    # Lightning sets its own loggers to INFO on import: per-fit GPU/TPU banners and tips
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    opts = parse(argv)
    results = run_bench(opts)
    print((Path(opts["out"]) / "results.md").read_text())
    e2e = len(results["end_to_end"]["rows"]) if "end_to_end" in results else 0
    serve = len(results["serve"]["rows"]) if "serve" in results else 0
    prep = len(results["prep"]["rows"]) if "prep" in results else 0
    print(f"wrote {opts['out']}/results.json and results.md ({len(results['training'])} training rows, "
          f"{e2e} end-to-end rows, {serve} serving rows, {prep} data preparation rows)")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    main(sys.argv[1:])

"""The benchmark harness: `python -m lit_nlp.bench suite=tiny|cpu|gpu [key=value ...]` times
training (ours against the Hugging Face Trainer, side by side), data preparation and
prediction, and writes results.json and results.md (README, "Speed")."""

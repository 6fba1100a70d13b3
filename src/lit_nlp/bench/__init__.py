"""The benchmark harness: `python -m lit_nlp.bench suite=tiny|cpu|gpu [key=value ...]` times
training (ours against the Hugging Face Trainer, side by side), data preparation and
prediction; `suite=sst2` times whole runs end to end with their dev accuracy. It writes
results.json and results.md (docs/speed.md)."""

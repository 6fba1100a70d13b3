"""serve.py: a trained run behind HTTP (LitServe), answering as predict.py answers.

    options.py  the command line, checked before anything heavy is imported
    inputs.py   what one request may hold for the model's task, checked field by field
    gate.py     the ASGI middleware every request passes: API key, the checks, version headers,
                JSON errors, metrics
    api.py      the LitAPI each model worker runs: load_predictor, then predict_rows per batch
    metrics.py  counters and histograms shared by every process, in Prometheus' text format
    model.py    what /info says: task, labels, lengths, and the model version (run, weights hash)
    server.py   the LitServer built from these, SIGTERM, and serve.py's main
"""

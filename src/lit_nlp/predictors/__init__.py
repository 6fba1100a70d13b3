"""One predictor per task (lit_nlp.tasks.TaskPredictor): a trained model, its tokenizer and its
saved settings, preparing raw input exactly as training did. Each owns its command-line input
columns (`rows_from_args`) and console line (`format_row`); `common` holds what they share."""

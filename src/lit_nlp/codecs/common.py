"""What every task's codec shares."""

# The label of a position that neither the loss nor the metrics see (special tokens, padding,
# a word's later sub-tokens, words another window owns): torch's cross_entropy skips -100 by
# default (ignore_index=-100), and Hugging Face's task heads and collators use it the same way.
IGNORE_INDEX = -100

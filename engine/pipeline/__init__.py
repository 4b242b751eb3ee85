"""Processing pipeline: one measurement end to end, and batches of them."""

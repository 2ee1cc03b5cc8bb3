"""Multi-task fine-tuning: task datasets and losses, layer freezing, the trainer run."""

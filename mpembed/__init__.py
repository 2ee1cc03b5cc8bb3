"""Fine-tune and benchmark a Russian marketplace text embedder (logic shared by `stages/`)."""

__version__ = "0.1.0"

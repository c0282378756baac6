"""shikomi: a Japanese-first LLM pretraining corpus builder and trainer."""

__version__ = "0.1.0"

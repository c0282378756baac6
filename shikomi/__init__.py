"""shikomi: a Japanese-first LLM pretraining corpus builder and trainer.

The package is layered and imports only go down (tests/test_layers.py checks it):

    cli → tools → pipeline → executor → stage packages → core, text → config → errors

    cli        argument parsing and dispatch (shikomi/cli.py)
    tools      commands over a run folder: inspect, report, find, batch, experiment
    pipeline   the chain: the stage registry (one table of stages), running the
               stages in order, planning and submitting them to Slurm
    executor   running one stage's jobs: local, Ray, Slurm (sbatch, status, progress,
               task logs)
    stage packages, which never import each other:
               extract, langid, dedup, filters (the clean stage), mix, tokenize, train
    core       the stage framework: jobs, rules, document readers, the routing
               writer, seeded sampling, stats, token shards, the schemas of what
               stages write, and the one adapter over datatrove's internals
    text       language primitives: charsets, the fastText wrapper, the script
               ranges, the SentencePiece to Hugging Face tokenizer conversion
    config     the pydantic config sections and command-line overrides
    errors     user errors, printed as one line

Private members of datatrove, HojiChar and datasketch are used only in their adapters
(core/datatrove_adapter.py, filters/hojichar_adapter.py, dedup/datasketch_adapter.py;
tests/test_dependency_privates.py checks it).
"""

import os

__version__ = "0.1.0"

# Arrow buffers from the C allocator rather than pyarrow's default mimalloc pool, which
# keeps freed pages: a task reading row group after row group otherwise peaks higher the
# more it reads (tokenize: 1.40x the 1x peak at 10x input with mimalloc, 1.19x with
# this). Read once, when pyarrow first allocates, so it is set here, before any shikomi
# module imports pyarrow; task processes inherit it. A value the user sets wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

"""The train-tokenizer stage: a SentencePiece unigram model trained on the mix.

One task (a global step, submitted like any other job):

1. sample: documents of the mix are drawn with a seeded hash at the rate that gives
   `sample_mb` of text; the mix already holds its sources at their token ratios
   (repeats included), so the sample does too.
2. lines: documents are split on newlines, and lines longer than
   `max_sentence_length` bytes after sentence ends (。！？．.!?) and then hard, because
   SentencePiece silently skips longer lines; blank lines are left out.
3. train: unigram, byte fallback, digits split, no dummy prefix, whitespace kept,
   identity normalisation (decode(encode(text)) == text), `input_sentence_size`
   caps the lines SentencePiece loads (a seeded sample of them beyond it).
4. export: `tokenizer.model`, `tokenizer.vocab`, `hf/` (transformers) and
   `tokenizer.json` (ids of the special tokens, sample sizes, settings).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from shikomi.config import Config
from shikomi.core.documents import input_files, read_documents, resolve_input, text_bytes
from shikomi.core.files import sha256_file, write_json_atomic
from shikomi.core.jobs import Job, Stage
from shikomi.core.sampling import seeded_uniform
from shikomi.errors import UserError
from shikomi.text.hf_tokenizer import SPECIALS, export_hf
from shikomi.tokenize.spm import training_lines


class _StderrToFile:
    """Sends fd 2 (SentencePiece's C++ log) to a file while training."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")
        self._saved = os.dup(2)
        os.dup2(self._f.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._f.close()


class TrainTokenizer(PipelineStep):
    name = "train tokenizer"
    type = "🔤 - TOKENIZER"

    def __init__(self, input_path: str, out_dir: str, tcfg: dict, seed: int):
        super().__init__()
        self.input_path = input_path
        self.out_dir = out_dir
        self.tcfg = tcfg
        self.seed = seed

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if rank != 0:
            return
        t = self.tcfg
        out = Path(self.out_dir)
        work = out / "_work"
        work.mkdir(parents=True, exist_ok=True)
        max_bytes = int(t["max_sentence_length"])

        # 1-2: the sample, as training lines
        total_bytes = text_bytes(self.input_path) - reserve_bytes(self.input_path)
        budget = t["sample_mb"] * 1e6
        rate = 1.0 if total_bytes <= budget else budget / total_bytes
        sample = work / "sample.txt"
        st = {"documents_in": 0, "documents": 0, "bytes": 0, "lines": 0, "lines_split": 0, "by_source": {}}
        with self.track_time("sample"), open(sample, "w", encoding="utf-8") as f:
            for doc in read_documents(self.input_path):
                st["documents_in"] += 1
                self.stat_update("docs_in")
                if int(doc.metadata.get("epoch", 0) or 0) < 0:
                    continue  # the mix's reserve (epoch -1) is not part of the planned mix
                if rate < 1.0 and seeded_uniform(self.seed, "tokenizer", doc.id, doc.metadata.get("epoch", 0)) >= rate:
                    continue
                lines, n_split = training_lines(doc.text, max_bytes)
                if not lines:
                    continue
                b = sum(len(x.encode("utf-8")) for x in lines)
                src = str(doc.metadata.get("source", "unknown"))
                s = st["by_source"].setdefault(src, {"documents": 0, "bytes": 0, "lines": 0})
                s["documents"] += 1
                s["bytes"] += b
                s["lines"] += len(lines)
                st["documents"] += 1
                st["bytes"] += b
                st["lines"] += len(lines)
                st["lines_split"] += n_split
                for x in lines:
                    f.write(x)
                    f.write("\n")
        if st["lines"] == 0:
            raise UserError(f"train-tokenizer: no text in {self.input_path}")
        over = 0
        with open(sample, encoding="utf-8") as f:
            for line in f:
                if len(line.rstrip("\n").encode("utf-8")) > max_bytes:
                    over += 1
        st["lines_over_max_sentence_length"] = over
        used = min(st["lines"], int(t["input_sentence_size"]))
        st["lines_used"] = used
        st["sample_rate"] = round(rate, 6)
        st["mix_text_bytes"] = total_bytes
        for s in st["by_source"].values():
            s["share_of_bytes"] = round(s["bytes"] / st["bytes"], 4)
        self.stat_update("sample_lines", value=st["lines"])
        print(
            f"[tokenizer] sample: {st['documents']:,} documents, {st['lines']:,} lines, "
            f"{st['bytes'] / 1e6:.1f} MB ({rate:.1%} of the mix); SentencePiece uses {used:,} lines "
            f"(input_sentence_size={t['input_sentence_size']:,}); lines split to fit "
            f"max_sentence_length={max_bytes}: {st['lines_split']:,}",
            flush=True,
        )

        # 3: train
        import sentencepiece as spm

        spm.set_random_generator_seed(self.seed)
        buf = io.BytesIO()
        kwargs = dict(
            model_type=t["model_type"],
            vocab_size=t["vocab_size"],
            character_coverage=t["character_coverage"],
            byte_fallback=t["byte_fallback"],
            split_digits=t["split_digits"],
            normalization_rule_name="identity" if t["normalization"] == "identity" else "nfkc",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            allow_whitespace_only_pieces=t["allow_whitespace_only_pieces"],
            max_sentencepiece_length=t["max_sentencepiece_length"],
            max_sentence_length=max_bytes,
            input_sentence_size=t["input_sentence_size"],
            shuffle_input_sentence=True,
            num_threads=t["num_threads"],
            hard_vocab_limit=t["hard_vocab_limit"],
            unk_id=SPECIALS["unk"][0],
            bos_id=SPECIALS["bos"][0],
            eos_id=SPECIALS["eos"][0],
            pad_id=SPECIALS["pad"][0],
            unk_piece=SPECIALS["unk"][1],
            bos_piece=SPECIALS["bos"][1],
            eos_piece=SPECIALS["eos"][1],
            pad_piece=SPECIALS["pad"][1],
        )
        log = out / "logs" / "sentencepiece.log"
        t0 = time.time()
        with self.track_time("train"), open(sample, encoding="utf-8") as f:
            try:
                with _StderrToFile(log):
                    spm.SentencePieceTrainer.train(
                        sentence_iterator=(x.rstrip("\n") for x in f), model_writer=buf, **kwargs
                    )
            except RuntimeError as e:
                raise UserError(_explain(str(e), t)) from None
        st["train_s"] = round(time.time() - t0, 2)
        too_long = sum(int(m) for m in re.findall(r"Skipped (\d+) too long", log.read_text(errors="replace")))
        st["sentencepiece_skipped_too_long"] = too_long

        # 4: outputs
        model = out / "tokenizer.model"
        tmp = out / "tokenizer.model.tmp"
        tmp.write_bytes(buf.getvalue())
        tmp.replace(model)
        sp = spm.SentencePieceProcessor(model_file=str(model))
        with open(out / "tokenizer.vocab", "w", encoding="utf-8") as f:
            for i in range(sp.get_piece_size()):
                f.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i):.6g}\n")
        export_hf(model, out / "hf")
        meta = {
            "type": "sentencepiece",
            "model": "tokenizer.model",
            "hf": "hf",
            "sha256": sha256_file(model),
            "vocab_size": sp.get_piece_size(),
            "requested_vocab_size": t["vocab_size"],
            "unk_id": sp.unk_id(),
            "bos_id": sp.bos_id(),
            "eos_id": sp.eos_id(),
            "pad_id": sp.pad_id(),
            "seed": self.seed,
            "input": self.input_path,
            "settings": {k: v for k, v in kwargs.items() if not k.endswith("_piece")},
            "sample": st,
        }
        write_json_atomic(out / "tokenizer.json", meta)
        sample.unlink(missing_ok=True)
        self.stat_update("vocab_size", value=meta["vocab_size"])
        print(f"[tokenizer] {meta['vocab_size']:,} pieces in {st['train_s']:.1f}s -> {model}", flush=True)
        return
        yield


def reserve_bytes(path: str) -> int:
    """UTF-8 bytes of the mix's reserve (metadata.epoch = -1) in a Parquet stage input:
    the sample rate is taken over the planned mix only."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for f in input_files(path):
        if not f.endswith(".parquet"):
            continue
        pf = pq.ParquetFile(f)
        meta = pf.schema_arrow.field("metadata").type if "metadata" in pf.schema_arrow.names else None
        if meta is None or not hasattr(meta, "num_fields") or meta.get_field_index("epoch") < 0:
            continue
        t = pf.read(columns=["text", "metadata"])
        epoch = pc.struct_field(t.column("metadata"), "epoch")
        res = pc.fill_null(pc.less(epoch, 0), False)
        if pc.any(res).as_py():
            total += int(pc.sum(pc.binary_length(pc.filter(t.column("text"), res))).as_py() or 0)
    return total


def _explain(msg: str, t: dict) -> str:
    m = re.search(r"Vocabulary size (?:is )?too high \((\d+)\)\. Please set it to a value <= (\d+)", msg)
    if m:
        return (
            f"tokenizer.vocab_size={m.group(1)} is more than this sample supports (at most {m.group(2)}): "
            f"lower tokenizer.vocab_size, add data, or set tokenizer.hard_vocab_limit: false"
        )
    m = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", msg)
    if m:
        return (
            f"tokenizer.vocab_size={m.group(1)} is below the {m.group(2)} characters the sample needs at "
            f"character_coverage={t['character_coverage']}: raise vocab_size or lower character_coverage"
        )
    return f"SentencePiece training failed: {msg.splitlines()[0] if msg else msg}"


def _extras(out_dir: str) -> dict:
    p = Path(out_dir) / "tokenizer.json"
    if not p.exists():
        return {}
    meta = json.loads(p.read_text(encoding="utf-8"))
    s = meta["sample"]
    return {
        "documents_in": s["documents_in"],
        "documents_out": s["documents"],
        "vocab_size": meta["vocab_size"],
        "sample": {
            k: s[k]
            for k in (
                "documents",
                "bytes",
                "lines",
                "lines_used",
                "lines_split",
                "lines_over_max_sentence_length",
                "sentencepiece_skipped_too_long",
                "by_source",
            )
        },
    }


def build(cfg: Config, input_path: str | None = None) -> Stage:
    tc = cfg.tokenizer
    src = input_path or tc.input
    if not src:
        raise UserError("train-tokenizer: no input (pass --input or set tokenizer.input)")
    if not Path(src).exists():
        raise UserError(f"train-tokenizer: input not found: {src} (run the mix stage first, or pass --input)")
    resolve_input(src)  # a clear error for a folder without documents
    out_dir = str(cfg.stage_dir("tokenizer"))
    tcfg = tc.model_dump()
    step = TrainTokenizer(src, out_dir, tcfg, cfg.seed)
    return Stage("tokenizer", out_dir, [Job("train", [step], tasks=1)], extras=_extras)

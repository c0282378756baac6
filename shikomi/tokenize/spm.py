"""SentencePiece helpers: training-line splitting, training, and the `transformers` export."""

from __future__ import annotations

import json
import re
from pathlib import Path

SPECIALS = {"unk": (0, "<unk>"), "bos": (1, "<s>"), "eos": (2, "</s>"), "pad": (3, "<pad>")}

# split after sentence ends (Japanese and Latin) when a line is too long for SentencePiece
_SENTENCE_END = re.compile(r"(?<=[。！？．!?])|(?<=\.\s)")


def _hard_split(s: str, max_bytes: int) -> list[str]:
    out, cur, size = [], [], 0
    for ch in s:
        b = len(ch.encode("utf-8"))
        if size + b > max_bytes and cur:
            out.append("".join(cur))
            cur, size = [], 0
        cur.append(ch)
        size += b
    if cur:
        out.append("".join(cur))
    return out


def split_long(line: str, max_bytes: int) -> list[str]:
    """Pieces of a line, each at most max_bytes UTF-8 bytes: packed sentences, and hard
    cuts for a sentence that is longer by itself."""
    if len(line.encode("utf-8")) <= max_bytes:
        return [line]
    out: list[str] = []
    cur, size = "", 0
    for sent in (x for x in _SENTENCE_END.split(line) if x):
        b = len(sent.encode("utf-8"))
        if b > max_bytes:
            if cur:
                out.append(cur)
                cur, size = "", 0
            out.extend(_hard_split(sent, max_bytes))
            continue
        if size + b > max_bytes:
            out.append(cur)
            cur, size = "", 0
        cur += sent
        size += b
    if cur:
        out.append(cur)
    return out


def training_lines(text: str, max_bytes: int) -> tuple[list[str], int]:
    """A document as SentencePiece training lines (newline-separated, none longer than
    max_bytes, none blank) and how many of its lines had to be split."""
    lines, n_split = [], 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        parts = split_long(line, max_bytes)
        if len(parts) > 1:
            n_split += 1
        lines.extend(parts)
    return lines, n_split


def hf_tokenizer(model_path: str | Path):
    """A `tokenizers.Tokenizer` equivalent to the SentencePiece model (unigram with byte
    fallback, identity normalisation, no dummy prefix, split digits)."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    m = pb.ModelProto()
    m.ParseFromString(Path(model_path).read_bytes())
    if m.trainer_spec.model_type != pb.TrainerSpec.UNIGRAM:
        raise ValueError("only unigram models are exported to transformers")
    vocab = [(p.piece, p.score) for p in m.pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=m.trainer_spec.unk_id, byte_fallback=m.trainer_spec.byte_fallback))
    norm = [normalizers.Replace(" ", "▁")]
    if m.normalizer_spec.name.startswith("nfkc"):
        norm.insert(0, normalizers.NFKC())
    if m.normalizer_spec.add_dummy_prefix:
        norm.insert(len(norm) - 1, normalizers.Prepend("▁"))
    tok.normalizer = normalizers.Sequence(norm)
    if m.trainer_spec.split_digits:
        tok.pre_tokenizer = pre_tokenizers.Digits(individual_digits=True)
    dec = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if m.normalizer_spec.add_dummy_prefix:
        dec.append(decoders.Strip(" ", 1, 0))
    tok.decoder = decoders.Sequence(dec)
    return tok


def export_hf(model_path: str | Path, dest: str | Path) -> Path:
    """Write a folder `transformers.AutoTokenizer.from_pretrained` loads."""
    import shutil

    from tokenizers import AddedToken

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tok = hf_tokenizer(model_path)
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for _, p in SPECIALS.values()])
    tok.save(str(dest / "tokenizer.json"))
    shutil.copyfile(model_path, dest / "tokenizer.model")
    conf = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 1_000_000_000,
        "bos_token": SPECIALS["bos"][1],
        "eos_token": SPECIALS["eos"][1],
        "unk_token": SPECIALS["unk"][1],
        "pad_token": SPECIALS["pad"][1],
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(conf, indent=2) + "\n")
    (dest / "special_tokens_map.json").write_text(
        json.dumps({k + "_token": v[1] for k, v in SPECIALS.items()}, indent=2) + "\n"
    )
    return dest

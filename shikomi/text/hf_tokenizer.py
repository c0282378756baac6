"""A SentencePiece model as a Hugging Face tokenizer: the one conversion.

The tokenizer stage writes `tokenizer/hf/` with `export_hf`; `shikomi export-hf`
copies that folder, or calls `export_hf` when a tokenizer folder has none. (This
lives in `text`, below both stage packages, because it is a conversion between two
tokenizer formats and needs nothing of the stage framework.)
"""

from __future__ import annotations

import json
from pathlib import Path

# the special tokens of every model shikomi trains: name -> (id, piece)
SPECIALS = {"unk": (0, "<unk>"), "bos": (1, "<s>"), "eos": (2, "</s>"), "pad": (3, "<pad>")}


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

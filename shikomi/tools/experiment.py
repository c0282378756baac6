"""`shikomi experiment mix-scaling`: does mixing English into Japanese pretraining help
or hurt, and how does that change with model size?

The same model family is trained on Japanese-only, English-only and 1:1 mixed token
shards for the same number of tokens, and each model is judged by its Japanese and
English validation loss, against parameters and against tokens seen.

    1. upstream   the stages the language sources read from (extract .. clean), when
                  their output is missing
    2. data       one mix of the languages at 1:1 (the mix stage), one tokenizer for
                  every condition (train-tokenizer), shards with a validation split per
                  language (tokenize) -- the stages themselves, run with config overrides
                  into <run_dir>/experiment/mix-scaling/
    3. shards     each language's train documents back to back, cut into samples of
                  seq_len tokens (so that the trainer's shuffle mixes samples, not whole
                  documents: a model's train_tokens then hold its condition's language
                  shares, even over documents longer than a batch); then one token folder
                  per condition: its languages' train samples plus the validation shards of
                  every language (hard links, no copies)
    4. train      every (condition, model) with the trainer's Python API, one process,
                  train_tokens tokens each; an interrupted experiment resumes
    5. report     <run_dir>/report/mix_scaling.{csv,json,md,png}

Everything is a function of the config and its seed: the same input gives the same
table.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from shikomi.config import Config
from shikomi.core.files import sha256_file
from shikomi.core.schemas import Condition, MetricsLog, ShardEntry, TokenManifest
from shikomi.core.shards import ShardReader, ShardWriter
from shikomi.errors import UserError
from shikomi.pipeline.chain import run_if_missing, with_default_input
from shikomi.pipeline.registry import CHAIN

# the stages before the mix, and the data stages it runs itself (chain order)
UPSTREAM = CHAIN[: CHAIN.index("mix")]
DATA_STAGES = ["mix", "train-tokenizer", "tokenize"]
EXPERIMENT_DIR = Path("experiment") / "mix-scaling"
REPORT_NAME = "mix_scaling"


def main(args, cfg: Config) -> int:
    if args.name != "mix-scaling":  # argparse already restricts the choices
        raise UserError(f"unknown experiment '{args.name}'; allowed: mix-scaling")
    run_mix_scaling(cfg)
    return 0


# --------------------------------------------------------------------------- helpers


def _log(msg: str) -> None:
    print(f"[experiment] {msg}", file=sys.stderr, flush=True)


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- data


def language_sources(cfg: Config) -> list[dict]:
    """The mix sources of the experiment's languages, with the `ja` default path
    (<run_dir>/clean, or mix.input) made explicit."""
    ms = cfg.experiment.mix_scaling
    out = []
    for src in cfg.mix.sources:
        if src.name not in ms.languages:
            continue
        d = src.model_dump(mode="json")
        if d.get("path") is None:
            if src.name != "ja":
                raise UserError(f"mix source '{src.name}' has no path")
            d["path"] = with_default_input("mix", cfg).mix.input
        d["path"] = str(d["path"]).replace("{run_dir}", str(cfg.run_dir))
        out.append(d)
    missing = [lang for lang in ms.languages if not any(d["name"] == lang for d in out)]
    if missing:
        raise UserError(
            f"experiment.mix_scaling.languages lists {', '.join(missing)} but mix.sources has no input "
            f"named so: add a source (name, path, format) for each language"
        )
    return out


def run_upstream(cfg: Config, sources: list[dict]) -> None:
    """Run extract .. the last stage a language source reads from, where missing."""
    needed = -1
    for d in sources:
        for i, stage in enumerate(UPSTREAM):
            if _inside(Path(d["path"]), cfg.stage_dir(stage)):
                needed = max(needed, i)
    if needed < 0:
        return
    if not cfg.experiment.mix_scaling.run_upstream:
        missing = [s for s in UPSTREAM[: needed + 1] if not (cfg.stage_dir(s) / "stats.json").is_file()]
        if missing:
            raise UserError(
                f"the language sources read {cfg.run_dir}/{UPSTREAM[needed]}, but stages {missing} have not "
                f"run: run them (shikomi run --stages ...) or set experiment.mix_scaling.run_upstream: true"
            )
        return
    for stage in UPSTREAM[: needed + 1]:
        run_if_missing(stage, cfg)


def data_config(cfg: Config, root: Path, sources: list[dict]) -> Config:
    """The run config of the experiment's own mix / tokenizer / tokenize stages."""
    ms = cfg.experiment.mix_scaling
    d = cfg.model_dump(mode="json")
    d["run_dir"] = str(root)
    d["mix"].update(
        sources=sources,
        ratios={lang: 1.0 for lang in ms.languages},
        input=None,
        tokenizer=None,
        count_with="estimate",
        total_tokens=ms.pool_tokens * len(ms.languages) if ms.pool_tokens else None,
    )
    d["tokenizer"]["input"] = None
    d["tokenize"].update(input=None, tokenizer=None, balance=True)
    return Config.model_validate(d)


def build_data(cfg: Config, root: Path) -> Path:
    """Mix, tokenizer and token shards of the experiment; returns the token folder."""
    sources = language_sources(cfg)
    run_upstream(cfg, sources)
    for d in sources:
        p = Path(d["path"])
        if "://" not in d["path"] and not p.exists() and not any(c in d["path"] for c in "*?["):
            raise UserError(f"mix source '{d['name']}': input not found: {p}")
    dcfg = data_config(cfg, root, sources)
    key = _key({k: dcfg.model_dump(mode="json")[k] for k in ("seed", "mix", "tokenizer", "tokenize")})
    stamp = root / "data_key.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("key") != key:
        _log(f"the data settings changed since the last run: rebuilding {root}")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"key": key}) + "\n")
    for stage in DATA_STAGES:
        run_if_missing(stage, dcfg)
    return dcfg.stage_dir("tokenize")


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def _tokenizer_from(manifest, token_dir: Path, dest: Path):
    """The manifest's tokenizer entry, its relative path re-pointed from `dest`."""
    tok = manifest.tokenizer
    if not Path(tok.path).is_absolute():  # keep it pointing at the same file
        tok = tok.model_copy(update={"path": os.path.relpath((token_dir / tok.path).resolve(), dest.resolve())})
    return tok


SAMPLE_BLOCK = 1 << 16  # samples written per block (bounded memory on large shards)


def _sample_shard(src: Path, ids_path: Path, dst: Path, seq_len: int) -> tuple[int, int]:
    """Cut the documents of one train shard, back to back (each ends with EOS), into
    samples of `seq_len` tokens; returns (samples, tokens left over at the end)."""
    r = ShardReader(src)
    n_tokens = int(r.lengths.astype(np.int64).sum())
    starts = np.asarray(r.offsets, dtype=np.int64) // r.dtype.itemsize
    if len(r) and (starts[0] != 0 or not np.array_equal(starts[1:], np.cumsum(r.lengths[:-1], dtype=np.int64))):
        raise UserError(f"{src}.idx: documents are not back to back; rewrite the shard with the tokenize stage")
    ids = _shard_ids(ids_path, src.name, len(r))
    n = n_tokens // seq_len
    w = ShardWriter(dst, r.dtype)
    with open(dst.with_name(dst.name + ".ids.jsonl.tmp"), "w", encoding="utf-8") as f:
        for a in range(0, n, SAMPLE_BLOCK):
            b = min(n, a + SAMPLE_BLOCK)
            w.add_many(r.tokens[a * seq_len : b * seq_len], [seq_len] * (b - a))
            first = np.arange(a, b, dtype=np.int64) * seq_len  # where each sample starts: document + offset
            doc = np.searchsorted(starts, first, side="right") - 1
            f.writelines(
                json.dumps(f"{ids[d]}+{o}") + "\n" for d, o in zip(doc.tolist(), (first - starts[doc]).tolist())
            )
    w.close()
    dst.with_name(dst.name + ".ids.jsonl.tmp").replace(dst.with_name(dst.name + ".ids.jsonl"))
    return n, n_tokens - n * seq_len


def _shard_ids(path: Path, name: str, n: int) -> list[str]:
    """The document ids of a shard (from its ids file; `<shard>#<i>` when it has none)."""
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            ids = [json.loads(x) for x in f if x.strip()]
        if len(ids) == n:
            return ids
    return [f"{name}#{i}" for i in range(n)]


def sample_folder(token_dir: Path, out: Path, seq_len: int) -> Path:
    """A token folder whose train shards are the tokenize stage's cut into samples of
    `seq_len` tokens (documents back to back, as the trainer reads them; the last
    partial sample of each shard is left out and counted) and whose validation shards
    are the stage's own (hard links).

    The trainer shuffles documents: over a pool of a few long English speeches and many
    short Japanese leads, the first train_tokens of a document-shuffled stream can hold
    almost no English. Shuffling samples instead (as Megatron-LM and OLMo do) makes the
    languages of every prefix follow the pool's shares."""
    manifest = TokenManifest.read(token_dir)
    key = _key({"manifest": sha256_file(token_dir / TokenManifest.FILENAME), "seq_len": seq_len})
    stamp = out / "samples.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shards, left = [], {}
    for s in manifest.shards:
        if s.split != "train":
            for suffix in (".bin", ".idx"):
                _link(token_dir / (s.path + suffix), out / (s.path + suffix))
            _link(token_dir / s.ids_path, out / s.ids_path)
            shards.append(s)
            continue
        n, rest = _sample_shard(token_dir / s.path, token_dir / s.ids_path, out / s.path, seq_len)
        left[s.source] = left.get(s.source, 0) + rest
        shards.append(
            ShardEntry(
                path=s.path,
                sha256=sha256_file(out / (s.path + ".bin")),
                idx_sha256=sha256_file(out / (s.path + ".idx")),
                documents=n,
                tokens=n * seq_len,
                source=s.source,
                split="train",
                ids_path=s.path + ".ids.jsonl",
            )
        )
    m = manifest.model_copy(update={"tokenizer": _tokenizer_from(manifest, token_dir, out), "shards": shards})
    TokenManifest.parse(m.dump(), out / TokenManifest.FILENAME).write(out)
    samples = {s.source: 0 for s in shards if s.split == "train"}
    for s in shards:
        if s.split == "train":
            samples[s.source] += s.documents
    stamp.write_text(json.dumps({"key": key, "seq_len": seq_len, "samples": samples, "tokens_left_out": left}) + "\n")
    _log(
        f"train samples of {seq_len} tokens: "
        + ", ".join(f"{k} {v:,} ({left.get(k, 0):,} tokens left out)" for k, v in samples.items())
    )
    return out


def condition_folders(token_dir: Path, out: Path, ms) -> dict[str, Path]:
    """One token folder per condition: its languages' train shards and the validation
    shards of every language, so that every model is judged on the same text."""
    manifest = TokenManifest.read(token_dir)
    shards = manifest.shards
    have_val = {s.source for s in shards if s.split == "val" and s.documents > 0}
    for lang in ms.languages:
        if lang not in have_val:
            raise UserError(
                f"the token folder {token_dir} has no validation documents for '{lang}': raise "
                f"tokenize.val_fraction / val_min_docs / val_max_fraction, or add {lang} data"
            )
    folders = {}
    for cond, langs in ms.conditions.items():
        picked = [
            s
            for s in shards
            if (s.split == "train" and s.source in langs) or (s.split == "val" and s.source in ms.languages)
        ]
        for lang in langs:
            if not any(s.split == "train" and s.source == lang and s.documents > 0 for s in picked):
                raise UserError(f"condition {cond}: no train documents for '{lang}' in {token_dir}")
        dest = out / cond
        dest.mkdir(parents=True, exist_ok=True)
        for s in picked:
            for suffix in (".bin", ".idx"):
                _link(token_dir / (s.path + suffix), dest / (s.path + suffix))
            _link(token_dir / s.ids_path, dest / s.ids_path)
        m = manifest.model_copy(
            update={
                "tokenizer": _tokenizer_from(manifest, token_dir, dest),
                "shards": picked,
                "condition": Condition(name=cond, train_languages=list(langs), from_=str(token_dir)),
            }
        )
        TokenManifest.parse(m.dump(), dest / TokenManifest.FILENAME).write(dest)
        folders[cond] = dest
    return folders


# --------------------------------------------------------------------------- training


def model_shape(m) -> dict:
    return {"dim": m.dim, "n_layers": m.n_layers, "n_heads": m.n_heads, "ffn_dim": m.ffn_dim or 3 * m.dim}


def steps_for(cfg: Config) -> tuple[int, int, int]:
    """(steps, global batch, sequence length) that train on train_tokens tokens."""
    ms, tc = cfg.experiment.mix_scaling, cfg.train
    seq = ms.seq_len or tc.seq_len
    batch = ms.global_batch_size or tc.global_batch_size
    return max(1, math.ceil(ms.train_tokens / (batch * seq))), batch, seq


def run_config(cfg: Config, model, data_dir: Path, run_dir: Path) -> Config:
    """The trainer config of one (condition, model) run."""
    ms = cfg.experiment.mix_scaling
    steps, batch, seq = steps_for(cfg)
    d = cfg.model_dump(mode="json")
    d["run_dir"] = str(run_dir)
    t = d["train"]
    t["input"] = str(data_dir)
    t["model"] = {**t["model"], "preset": "tiny", "n_kv_heads": None, **model_shape(model)}
    t.update(
        seq_len=seq,
        global_batch_size=batch,
        micro_batch_size=min(cfg.train.micro_batch_size, batch),
        max_steps=steps,
        seq_warmup_steps=0,
        eval_interval=max(1, steps // ms.evals),
        checkpoint_interval=0,
        keep_checkpoints=1,
        nproc_per_node=1,
        nnodes=1,
        progress=False,
        tensorboard=False,
        inject_spike_steps=[],
        inject_nan_steps=[],
    )
    if cfg.train.warmup_steps is not None:
        t["warmup_steps"] = min(cfg.train.warmup_steps, steps)
    if ms.lr:
        t["lr"] = ms.lr
    return Config.model_validate(d)


class _OneProcess:
    """The trainer's process group for runs inside this process (one rank); the
    environment is restored afterwards."""

    KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

    def __init__(self, threads: int = 0):
        self.threads = threads

    def __enter__(self):
        import torch

        if int(os.environ.get("WORLD_SIZE", "1")) != 1:
            raise UserError("shikomi experiment trains in one process: run it without torchrun")
        self.saved = {k: os.environ.get(k) for k in self.KEYS}
        self.saved_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        import torch
        import torch.distributed as dist

        torch.set_num_threads(self.saved_threads)

        if dist.is_initialized():
            dist.destroy_process_group()
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return False


def train_run(rcfg: Config) -> Path:
    """Train one model (resuming from its last checkpoint); returns its train folder."""
    from shikomi.train.trainer import Trainer

    out = rcfg.stage_dir("train")
    data = Path(rcfg.train.input) / TokenManifest.FILENAME  # other shards: train again
    key = _key({"train": rcfg.train.model_dump(mode="json"), "seed": rcfg.seed, "data": sha256_file(data)})
    stamp = out / "experiment_key.json"
    if out.exists() and (not stamp.is_file() or json.loads(stamp.read_text()).get("key") != key):
        shutil.rmtree(out)  # a run of other settings: start over
    if (out / "result.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"key": key}) + "\n")
    trainer = Trainer(rcfg, resume=True)
    res = trainer.fit()
    (out / "result.json").write_text(json.dumps(res, indent=1) + "\n")
    return out


def summarize_run(train_dir: Path, languages: list[str]) -> dict:
    """Loss numbers of one run from its metrics.jsonl."""
    rows = MetricsLog(train_dir).read()
    losses = [r for r in rows if r.loss is not None and not r.skipped]
    if not losses:
        raise UserError(f"{train_dir}/metrics.jsonl has no finite training loss")
    tail = losses[-5:]
    out = {
        "steps": rows[-1].step + 1,
        "train_tokens": rows[-1].tokens,
        "train_loss_first": losses[0].loss,
        "train_loss_end": sum(r.loss for r in tail) / len(tail),
    }
    evals = [r for r in rows if r.val_losses()]
    curves = {lang: [(r.tokens, r.val_losses()[lang]) for r in evals if lang in r.val_losses()] for lang in languages}
    for lang in languages:
        pts = curves[lang]
        out[f"val_loss_{lang}_first"] = pts[0][1] if pts else None
        out[f"val_loss_{lang}"] = pts[-1][1] if pts else None
    out["curves"] = {lang: [[int(t), float(v)] for t, v in pts] for lang, pts in curves.items()}
    return out


# --------------------------------------------------------------------------- report


def columns(languages: list[str]) -> list[str]:
    cols = [
        "condition",
        "model",
        "non_embedding_params",
        "total_params",
        "steps",
        "train_tokens",
        "train_loss_first",
        "train_loss_end",
    ]
    for lang in languages:
        cols += [f"val_loss_{lang}_first", f"val_loss_{lang}"]
    return cols


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(rows: list[dict], ms, meta: dict) -> str:
    langs = ms.languages
    lines = [f"### Mixing experiment: validation loss after {meta['train_tokens_per_model']:,} training tokens", ""]
    head = ["model", "non-embedding params"] + [f"{c} → {lang}" for lang in langs for c in ms.conditions]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for m in ms.models:
        mine = {r["condition"]: r for r in rows if r["model"] == m.name}
        any_row = next(iter(mine.values()))
        cells = [m.name, f"{any_row['non_embedding_params']:,}"]
        for lang in langs:
            vals = {c: mine[c].get(f"val_loss_{lang}") for c in ms.conditions if c in mine}
            best = min((v for v in vals.values() if v is not None), default=None)
            for c in ms.conditions:
                v = vals.get(c)
                cells.append("" if v is None else (f"**{v:.3f}**" if v == best else f"{v:.3f}"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Columns are `condition → validation language`; the lowest loss per language and model is bold.",
        f"Tokenizer: {meta['vocab_size']:,} pieces trained on the 1:1 mix; every model sees "
        f"{meta['train_tokens_per_model']:,} tokens ({meta['steps']} steps of {meta['global_batch_size']} × "
        f"{meta['seq_len']}); train tokens available per language: "
        + ", ".join(f"{k} {v:,}" for k, v in meta["train_tokens_available"].items())
        + ".",
        "",
    ]
    cols = columns(langs)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], ms, path: Path, dpi: int = 100) -> None:
    """Validation loss per language against non-embedding parameters (top) and against
    training tokens (bottom), one colour per condition."""
    os.environ.setdefault("MPLCONFIGDIR", str(Path(path).parent / ".mplconfig"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = ms.languages
    conds = list(ms.conditions)
    colors = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(conds)}
    fig, axes = plt.subplots(2, len(langs), figsize=(5.2 * len(langs), 8.0), squeeze=False)
    sizes = [m.name for m in ms.models]
    for j, lang in enumerate(langs):
        ax = axes[0][j]
        for c in conds:
            pts = sorted(
                (r["non_embedding_params"], r[f"val_loss_{lang}"])
                for r in rows
                if r["condition"] == c and r.get(f"val_loss_{lang}") is not None
            )
            if pts:
                ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", color=colors[c], label=c)
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters")
        ax.set_ylabel(f"{lang} validation loss")
        ax.set_title(f"{lang} validation loss vs parameters")
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax = axes[1][j]
        for r in rows:
            pts = r["curves"].get(lang) or []
            if not pts:
                continue
            k = sizes.index(r["model"])
            alpha = 0.35 + 0.65 * (k + 1) / len(sizes)
            ax.plot(
                [t for t, _ in pts],
                [v for _, v in pts],
                marker=".",
                color=colors[r["condition"]],
                alpha=alpha,
                linewidth=0.8 + k * 0.6,
                label=f"{r['condition']} {r['model']}",
            )
        ax.set_xlabel("training tokens")
        ax.set_ylabel(f"{lang} validation loss")
        ax.set_title(f"{lang} validation loss vs tokens (thicker = larger model)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=len(conds))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def write_report(rows: list[dict], cfg: Config, meta: dict) -> dict[str, Path]:
    ms = cfg.experiment.mix_scaling
    out = cfg.stage_dir("report")
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"{REPORT_NAME}.{ext}" for ext in ("csv", "json", "md", "png")}
    cols = columns(ms.languages)
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
    paths["json"].write_text(
        json.dumps({"meta": meta, "columns": cols, "rows": rows}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    paths["md"].write_text(markdown(rows, ms, meta), encoding="utf-8")
    plot(rows, ms, paths["png"], dpi=cfg.report.dpi)
    return paths


# --------------------------------------------------------------------------- main


def run_mix_scaling(cfg: Config) -> dict:
    from shikomi.train.model import count_params, model_args

    ms = cfg.experiment.mix_scaling
    t0 = time.time()
    root = cfg.run_path / EXPERIMENT_DIR
    token_dir = build_data(cfg, root)
    steps, batch, seq = steps_for(cfg)
    samples = sample_folder(token_dir, root / "samples", seq) if ms.samples else token_dir
    folders = condition_folders(samples, root / "shards", ms)
    manifest = TokenManifest.read(token_dir)
    vocab = manifest.tokenizer.vocab_size
    n = len(ms.conditions) * len(ms.models)
    _log(f"{len(ms.models)} models x {len(ms.conditions)} conditions, {steps} steps of {batch} x {seq} tokens each")
    rows = []
    with _OneProcess(ms.threads):
        for cond, data_dir in folders.items():
            for m in ms.models:
                t1 = time.time()
                rcfg = run_config(cfg, m, data_dir, root / "runs" / f"{cond}-{m.name}")
                train_dir = train_run(rcfg)
                p = count_params(model_args(rcfg.train.model, rcfg.train, vocab))
                row = {
                    "condition": cond,
                    "model": m.name,
                    "non_embedding_params": p["body"],
                    "total_params": p["total"],
                    **summarize_run(train_dir, ms.languages),
                }
                rows.append(row)
                vals = ", ".join(
                    f"{lang} {row[f'val_loss_{lang}']:.3f}"
                    for lang in ms.languages
                    if row.get(f"val_loss_{lang}") is not None
                )
                _log(
                    f"[{len(rows)}/{n}] {cond} {m.name} ({p['body']:,} non-embedding params): loss "
                    f"{row['train_loss_first']:.3f} -> {row['train_loss_end']:.3f}; validation {vals} "
                    f"({time.time() - t1:.1f}s)"
                )
    avail = {}
    for s in manifest.shards:
        if s.split == "train":
            avail[s.source] = avail.get(s.source, 0) + s.tokens
    meta = {
        "conditions": ms.conditions,
        "languages": ms.languages,
        "models": [m.model_dump() for m in ms.models],
        "train_tokens_per_model": steps * batch * seq,
        "steps": steps,
        "global_batch_size": batch,
        "seq_len": seq,
        "vocab_size": vocab,
        "train_tokens_available": avail,
        "train_samples": ms.samples,
        "token_dir": str(token_dir),
        "seed": cfg.seed,
    }
    paths = write_report(rows, cfg, meta)
    print("\n".join(markdown(rows, ms, meta).splitlines()[: len(ms.models) + 4]))
    print(f"\n[experiment] mix-scaling finished in {time.time() - t0:.1f}s: {paths['md']}  {paths['png']}")
    return {"rows": rows, "meta": meta, "paths": {k: str(v) for k, v in paths.items()}}

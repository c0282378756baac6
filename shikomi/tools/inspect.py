"""`shikomi inspect PATH`: what a stage kept and dropped, and why.

PATH may be a run folder (one line per stage), a stage folder (kept and rejected
documents), a folder of Parquet/JSONL files (`clean/rejected`), a single Parquet or
JSONL file, or a token folder (`tokenize/`, decoded back to text with the run's
SentencePiece model). Filters combine: `--reason RULE` (rejected documents of one
rule), `--lang`, `--source`, `--grep REGEX`, `--id`. The sample is a deterministic
function of `--seed` and the documents (a hash order), not of the file order.

The readers here are shared with `shikomi report` and `shikomi find`.
"""

from __future__ import annotations

import heapq
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shikomi.core.schemas import MetricsLog, StageStats, TokenManifest
from shikomi.errors import UserError
from shikomi.pipeline.registry import FOLDERS

REJECT_KEY = "reject_reason"
# the run-folder sub-folders of the chain, in order (the stage registry)
STAGE_ORDER = list(FOLDERS)


# --------------------------------------------------------------------------- documents


@dataclass
class Item:
    """One document as `inspect` shows it."""

    id: str
    text: str
    metadata: dict
    status: str  # kept | rejected | tokens
    where: str  # file and row, or shard and sequence
    extra: dict = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        return self.metadata.get(REJECT_KEY)

    @property
    def rule(self) -> str | None:
        r = self.reason
        return r.split(":", 1)[0] if r else None

    def to_json(self, chars: int = 0) -> dict:
        d = {"id": self.id, "status": self.status, "where": self.where}
        if self.rule:
            rule, _, value = self.reason.partition(":")
            d["rule"] = rule
            d["value"] = value or None
        d.update(self.extra)
        d["metadata"] = self.metadata
        d["chars"] = len(self.text)
        d["text"] = self.text if not chars else self.text[:chars]
        return d


# The readers live in core.documents (imported here on use: `inspect` starts without
# loading datatrove's readers).


def is_doc_file(p: Path) -> bool:
    from shikomi.core.documents import is_doc_file

    return is_doc_file(p)


def doc_files(folder: Path) -> list[Path]:
    """Document files under a folder, sorted, skipping logs and temporary files."""
    from shikomi.core.documents import document_files

    return document_files(folder)


def _clean_meta(meta: Any) -> dict:
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            meta = {"metadata": meta}
    if not isinstance(meta, dict):
        return {} if meta is None else {"metadata": meta}
    # Parquet files written with a union schema carry None for absent keys
    return {k: v for k, v in meta.items() if v is not None}


def iter_file(path: Path, status: str, columns: list[str] | None = None) -> Iterator[Item]:
    """Documents of one Parquet or JSONL(.gz) file."""
    from shikomi.core.documents import parquet_rows, read_documents

    if path.name.endswith(".parquet"):
        for row, rec in enumerate(parquet_rows(path)):
            meta = rec.get("metadata")
            meta = (
                _clean_meta(meta)
                if meta is not None
                else {k: v for k, v in rec.items() if k not in ("text", "id", "media", "metadata") and v is not None}
            )
            yield Item(
                str(rec.get("id") if rec.get("id") is not None else f"{path.name}/{row}"),
                rec.get("text") or "",
                meta,
                status,
                f"{path}#{row}",
            )
        return
    for row, doc in enumerate(read_documents(path)):
        yield Item(str(doc.id), doc.text or "", _clean_meta(doc.metadata), status, f"{path}#{row}")


def status_of(path: Path, root: Path) -> str:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts
    return "rejected" if "rejected" in parts[:-1] or root.name == "rejected" else "kept"


# --------------------------------------------------------------------------- token folders


def find_tokenizer_model(token_dir: Path, manifest: TokenManifest) -> Path:
    """The SentencePiece model of a token folder: the manifest's path (absolute,
    relative to the folder or to the cwd), else <run_dir>/tokenizer/tokenizer.model."""
    cands = []
    tp = manifest.tokenizer.path
    if tp:
        tp = Path(tp)
        cands += [tp, token_dir / tp, token_dir.parent / tp]
        if tp.is_dir() or tp.suffix != ".model":
            cands += [tp / "tokenizer.model", token_dir / tp / "tokenizer.model"]
    cands.append(token_dir.parent / "tokenizer" / "tokenizer.model")
    for c in cands:
        if c.is_file() and c.suffix == ".model":
            return c
    raise UserError(
        f"{token_dir}: cannot find the SentencePiece model to decode it (manifest tokenizer.path={tp}; "
        f"also tried {token_dir.parent / 'tokenizer' / 'tokenizer.model'})"
    )


class TokenFolder:
    """A token folder (`manifest.json` + Megatron shards + id sidecars), decodable."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.manifest = TokenManifest.read(self.path)
        except FileNotFoundError as e:
            raise UserError(f"{path}: not a token folder ({e})") from None
        # one dict per shard (the manifest's fields, all present)
        self.shards: list[dict] = [s.model_dump() for s in self.manifest.shards]
        self.eos_id = self.manifest.tokenizer.eos_id
        self._sp = None
        self._ids: dict[str, list[str]] = {}

    @property
    def sp(self):
        if self._sp is None:
            import sentencepiece as spm

            model = find_tokenizer_model(self.path, self.manifest)
            self._sp = spm.SentencePieceProcessor(model_file=str(model))
            if self.eos_id is None:
                self.eos_id = self._sp.eos_id()
        return self._sp

    def reader(self, shard: dict):
        from shikomi.core.shards import ShardReader

        prefix = self.path / shard["path"]
        if not Path(str(prefix) + ".idx").is_file():
            raise UserError(f"{self.path}: shard {shard['path']} listed in manifest.json is missing")
        return ShardReader(prefix)

    def ids(self, shard: dict) -> list[str]:
        key = shard["path"]
        if key not in self._ids:
            ids: list[str] = []
            ip = shard.get("ids_path")
            if ip and (self.path / ip).is_file():
                with open(self.path / ip, encoding="utf-8") as f:
                    ids = [json.loads(line) for line in f if line.strip()]
            self._ids[key] = ids
        return self._ids[key]

    def doc_id(self, shard: dict, seq: int) -> str:
        ids = self.ids(shard)
        return str(ids[seq]) if seq < len(ids) else f"{shard['path']}#{seq}"

    def decode(self, tokens) -> str:
        toks = [int(t) for t in tokens]
        sp = self.sp
        while toks and toks[-1] == self.eos_id:
            toks.pop()
        bos = sp.bos_id()
        if toks and bos >= 0 and toks[0] == bos:
            toks = toks[1:]
        return sp.decode(toks)

    def item(self, shard: dict, reader, seq: int, text: str | None = None) -> Item:
        tokens = reader[seq]
        return Item(
            self.doc_id(shard, seq),
            self.decode(tokens) if text is None else text,
            {"source": shard.get("source")},
            "tokens",
            f"{shard['path']}#{seq}",
            {
                "shard": shard["path"],
                "sequence": seq,
                "tokens": int(len(tokens)),
                "source": shard.get("source"),
                "split": shard.get("split"),
            },
        )

    def iter_decoded(self, shards: list[dict] | None = None, batch: int = 512) -> Iterator[tuple[dict, Any, int, str]]:
        """(shard, reader, sequence, text) for every sequence, decoded in batches."""
        sp = self.sp
        for shard in shards if shards is not None else self.shards:
            r = self.reader(shard)
            for start in range(0, len(r), batch):
                seqs = list(range(start, min(len(r), start + batch)))
                toks = []
                for s in seqs:
                    t = r[s].tolist()
                    while t and t[-1] == self.eos_id:
                        t.pop()
                    toks.append(t)
                for s, text in zip(seqs, sp.decode(toks)):
                    yield shard, r, s, text


# --------------------------------------------------------------------------- path kinds


def stage_dirs(run_dir: Path) -> dict[str, Path]:
    """Stage folders of a run folder (in chain order), those that exist."""
    out = {}
    for name in STAGE_ORDER:
        p = run_dir / name
        if p.is_dir():
            out[name] = p
    return out


def is_run_dir(p: Path) -> bool:
    if not p.is_dir():
        return False
    for name, sp in stage_dirs(p).items():
        if name == "report":
            continue
        if (
            (sp / "stats.json").is_file()
            or (sp / "data").is_dir()
            or (sp / "manifest.json").is_file()
            or (sp / "metrics.jsonl").is_file()
            or (sp / "tokenizer.model").is_file()
            or any(sp.glob("*/data"))
        ):
            return True
    return False


def is_stage_dir(p: Path) -> bool:
    return p.is_dir() and (
        (p / "data").is_dir()
        or (p / "rejected").is_dir()
        or (p / "stats.json").is_file()
        or any(c.is_dir() and (c / "data").is_dir() for c in p.iterdir())
    )


def path_kind(path: str | Path) -> str:
    """run | stage | tokens | docs (a document file or a folder of them)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file or folder")
    if p.is_file():
        if is_doc_file(p):
            return "docs"
        if p.name == "manifest.json":
            return "tokens"
        raise UserError(f"{p}: not a Parquet or JSONL(.gz) file, a stage folder, a token folder or a run folder")
    if (p / "manifest.json").is_file():
        return "tokens"
    if is_run_dir(p):
        return "run"
    if is_stage_dir(p):
        return "stage"
    if any(is_doc_file(f) for pat in ("*", "*/*") for f in p.glob(pat)):
        return "docs"
    raise UserError(
        f"{p}: not a run folder, stage folder (<stage>/data, <stage>/rejected), token folder (manifest.json) "
        f"or a folder of Parquet/JSONL documents"
    )


def load_stats(stage_dir: Path) -> StageStats | None:
    """The stage's stats.json; None when the stage has not written it."""
    return StageStats.read(stage_dir, missing_ok=True)


# --------------------------------------------------------------------------- filtering and sampling


@dataclass
class Filters:
    reason: str | None = None
    lang: str | None = None
    source: str | None = None
    grep: str | None = None
    doc_id: str | None = None

    def __post_init__(self):
        self._re = None
        if self.grep:
            try:
                self._re = re.compile(self.grep)
            except re.error as e:
                raise UserError(f"--grep: not a valid regular expression '{self.grep}': {e}") from None

    def describe(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (
                ("reason", self.reason),
                ("lang", self.lang),
                ("source", self.source),
                ("grep", self.grep),
                ("id", self.doc_id),
            )
            if v
        ]
        return ", ".join(parts) or "none"

    def active(self) -> bool:
        return any((self.reason, self.lang, self.source, self.grep, self.doc_id))

    def meta_ok(self, it: Item) -> bool:
        if self.doc_id is not None and it.id != self.doc_id:
            return False
        if self.reason is not None:
            r = it.reason
            if not r or (r.split(":", 1)[0] != self.reason and r != self.reason):
                return False
        if self.lang is not None:
            lang = it.metadata.get("language")
            if it.status == "tokens":
                lang = lang or it.extra.get("source")
            if lang != self.lang:
                return False
        if self.source is not None and (it.metadata.get("source") or it.extra.get("source")) != self.source:
            return False
        return True

    def text_ok(self, text: str) -> bool:
        return self._re is None or self._re.search(text) is not None


def sample_key(seed: int, it_id: str, where: str) -> bytes:
    from shikomi.core.sampling import seeded_digest

    return seeded_digest(seed, it_id, where)


class Sampler:
    """Keeps the `k` items with the smallest seeded hash: a uniform sample that does
    not depend on file order or on how many tasks wrote the files."""

    def __init__(self, k: int, seed: int):
        self.k = k
        self.seed = seed
        self.heap: list = []  # max-heap via negated keys
        self.n = 0

    def add(self, it: Item) -> None:
        self.n += 1
        if self.k <= 0:
            return
        key = sample_key(self.seed, it.id, it.where)
        neg = bytes(255 - b for b in key)
        entry = (neg, it.where, it)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, entry)
        elif neg > self.heap[0][0]:
            heapq.heapreplace(self.heap, entry)

    def items(self) -> list[Item]:
        return [e[2] for e in sorted(self.heap, key=lambda e: (bytes(255 - b for b in e[0]), e[1]))]


@dataclass
class Scan:
    """The outcome of filtering a path: counts and the sample."""

    kind: str
    path: Path
    total: int = 0
    matched: int = 0
    by_status: dict = field(default_factory=dict)
    by_rule: dict = field(default_factory=dict)
    by_source: dict = field(default_factory=dict)
    sample: list = field(default_factory=list)
    stats: StageStats | None = None
    extra: dict = field(default_factory=dict)


def _doc_sources(p: Path, kind: str) -> list[tuple[Path, str]]:
    if kind == "docs" and p.is_file():
        return [(p, "rejected" if "rejected" in p.parts[-2:-1] else "kept")]
    return [(f, status_of(f, p)) for f in doc_files(p)]


def scan_documents(p: Path, kind: str, flt: Filters, limit: int, seed: int) -> Scan:
    scan = Scan(kind, p, stats=load_stats(p) if kind == "stage" else None)
    files = _doc_sources(p, kind)
    if flt.reason:
        files = [(f, s) for f, s in files if s == "rejected"]
    sampler = Sampler(limit, seed)
    all_rules: dict[str, int] = {}
    for f, status in files:
        for it in iter_file(f, status):
            scan.total += 1
            if it.rule:
                all_rules[it.rule] = all_rules.get(it.rule, 0) + 1
            if not flt.meta_ok(it) or not flt.text_ok(it.text):
                continue
            scan.matched += 1
            scan.by_status[it.status] = scan.by_status.get(it.status, 0) + 1
            if it.rule:
                scan.by_rule[it.rule] = scan.by_rule.get(it.rule, 0) + 1
            src = it.metadata.get("source")
            if src is not None:
                scan.by_source[str(src)] = scan.by_source.get(str(src), 0) + 1
            sampler.add(it)
    if flt.reason and scan.matched == 0 and flt.reason not in all_rules:
        known = sorted(all_rules)
        if scan.stats:
            known = sorted(set(known) | set(scan.stats.dropped))
        raise UserError(
            f"{p}: no rejected documents of rule '{flt.reason}'; rules here: {', '.join(known) or '(none rejected)'}"
        )
    scan.sample = sampler.items()
    return scan


def scan_tokens(p: Path, flt: Filters, limit: int, seed: int) -> Scan:
    if p.is_file():
        p = p.parent
    tf = TokenFolder(p)
    scan = Scan("tokens", p)
    if flt.reason:
        raise UserError(f"{p}: a token folder has no rejected documents (--reason applies to stage folders)")
    scan.extra["manifest"] = {k: v for k, v in tf.manifest.dump().items() if k != "shards"}
    shard_rows = []
    for sh in tf.shards:
        shard_rows.append({k: sh[k] for k in ("path", "source", "split", "documents", "tokens")})
    scan.extra["shards"] = shard_rows
    sampler = Sampler(limit, seed)
    want_src = flt.source or flt.lang
    shards = [s for s in tf.shards if want_src is None or s.get("source") == want_src]
    scan.total = sum(int(s.get("documents") or 0) for s in tf.shards)
    if flt.grep:
        for shard, _r, seq, text in tf.iter_decoded(shards):
            it = Item(
                tf.doc_id(shard, seq),
                text,
                {"source": shard.get("source")},
                "tokens",
                f"{shard['path']}#{seq}",
                {"shard": shard["path"], "sequence": seq, "source": shard.get("source")},
            )
            if not flt.meta_ok(it) or not flt.text_ok(text):
                continue
            scan.matched += 1
            scan.by_source[str(shard.get("source"))] = scan.by_source.get(str(shard.get("source")), 0) + 1
            sampler.add(it)
        scan.sample = [
            tf.item(
                _shard(tf, it.extra["shard"]), tf.reader(_shard(tf, it.extra["shard"])), it.extra["sequence"], it.text
            )
            for it in sampler.items()
        ]
        return scan
    readers = {}
    for shard in shards:
        r = readers.setdefault(shard["path"], tf.reader(shard))
        for seq in range(len(r)):
            did = tf.doc_id(shard, seq)
            if flt.doc_id is not None and did != flt.doc_id:
                continue
            it = Item(
                did,
                "",
                {"source": shard.get("source")},
                "tokens",
                f"{shard['path']}#{seq}",
                {"shard": shard["path"], "sequence": seq, "source": shard.get("source")},
            )
            scan.matched += 1
            scan.by_source[str(shard.get("source"))] = scan.by_source.get(str(shard.get("source")), 0) + 1
            sampler.add(it)
    scan.sample = [
        tf.item(_shard(tf, it.extra["shard"]), readers[it.extra["shard"]], it.extra["sequence"])
        for it in sampler.items()
    ]
    return scan


def _shard(tf: TokenFolder, path: str) -> dict:
    for s in tf.shards:
        if s["path"] == path:
            return s
    raise KeyError(path)


def scan_run(p: Path) -> Scan:
    scan = Scan("run", p)
    rows = []
    for name, sd in stage_dirs(p).items():
        if name == "report":
            continue
        st = load_stats(sd)
        row = {"stage": name, "path": str(sd), "rejected": (sd / "rejected").is_dir()}
        if st is not None:
            for k in ("documents_in", "documents_out", "documents_dropped", "chars_in", "chars_out", "tokens_out"):
                if getattr(st, k) is not None:
                    row[k] = getattr(st, k)
        m = TokenManifest.read(sd, missing_ok=True)
        if m is not None:
            row["documents_out"] = sum(s.documents for s in m.shards)
            row["tokens_out"] = sum(s.tokens for s in m.shards)
        last = MetricsLog(sd).last()
        if last is not None:
            row["step"] = last.step
            row["tokens"] = last.tokens
            row["loss"] = last.loss
        rows.append(row)
    scan.extra["stages"] = rows
    return scan


def scan_path(path: str | Path, flt: Filters, limit: int = 5, seed: int = 0) -> Scan:
    p = Path(path)
    kind = path_kind(p)
    if kind == "run":
        if flt.active():
            raise UserError(f"{p} is a run folder: filters apply to a stage folder, e.g. {p}/clean or {p}/tokenize")
        return scan_run(p)
    if kind == "tokens":
        return scan_tokens(p, flt, limit, seed)
    return scan_documents(p, kind, flt, limit, seed)


# --------------------------------------------------------------------------- output


def _fmt(n) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _indent(text: str, pad: str = "    ") -> str:
    return "\n".join(pad + line for line in text.splitlines()) if text else pad + "(empty)"


def format_item(i: int, n: int, it: Item, chars: int) -> str:
    head = f"--- [{i}/{n}] {it.status}"
    if it.rule:
        rule, _, value = it.reason.partition(":")
        head += f"  dropped by {rule}" + (f" = {value}" if value else "")
    lines = [head, f"  id:     {it.id}", f"  where:  {it.where}"]
    meta = dict(it.metadata)
    meta.pop(REJECT_KEY, None)
    for k in ("url", "source", "language"):
        if k in meta:
            v = meta.pop(k)
            if k == "language" and "language_score" in meta:
                v = f"{v} ({meta.pop('language_score')})"
            lines.append(f"  {k + ':':<7} {v}")
    for k in ("shard", "sequence", "tokens", "split"):
        if k in it.extra and it.extra[k] is not None:
            lines.append(f"  {k + ':':<7} {it.extra[k]}")
    if meta:
        lines.append("  metadata: " + json.dumps(meta, ensure_ascii=False, default=str, sort_keys=True))
    text = (
        it.text if not chars or len(it.text) <= chars else it.text[:chars] + f" … [{len(it.text) - chars:,} more chars]"
    )
    lines.append(f"  text ({len(it.text):,} chars):")
    lines.append(_indent(text))
    return "\n".join(lines)


def format_scan(scan: Scan, flt: Filters, chars: int) -> str:
    out = []
    if scan.kind == "run":
        out.append(f"{scan.path}: run folder")
        out.append(f"  {'stage':<10} {'docs in':>12} {'docs out':>12} {'dropped':>10} {'chars out':>14} {'tokens':>14}")
        for r in scan.extra["stages"]:
            tok = r.get("tokens_out", r.get("tokens", ""))
            out.append(
                f"  {r['stage']:<10} {_fmt(r.get('documents_in', '')):>12} {_fmt(r.get('documents_out', '')):>12} "
                f"{_fmt(r.get('documents_dropped', '')):>10} {_fmt(r.get('chars_out', '')):>14} {_fmt(tok):>14}"
                + (f"  step {r['step']} loss {r['loss']}" if r.get("step") is not None else "")
            )
        with_rej = [r["stage"] for r in scan.extra["stages"] if r.get("rejected")]
        if with_rej:
            out.append(f"  dropped documents: shikomi inspect {scan.path / with_rej[-1]} --reason RULE")
        return "\n".join(out)
    if scan.kind == "tokens":
        m = scan.extra["manifest"]
        tok = m.get("tokenizer") or {}
        out.append(
            f"{scan.path}: token folder, dtype {m.get('dtype')}, vocab {tok.get('vocab_size')}, "
            f"{len(scan.extra['shards'])} shards, {scan.total:,} documents"
        )
        for s in scan.extra["shards"]:
            out.append(
                f"  {s['path']:<40} {str(s.get('source')):<6} {str(s.get('split')):<5} "
                f"{_fmt(s.get('documents')):>10} docs {_fmt(s.get('tokens')):>14} tokens"
            )
    else:
        out.append(f"{scan.path}: {'stage folder' if scan.kind == 'stage' else 'documents'}")
        st = scan.stats
        if st:
            rep = st.documents_repeated or 0  # mix: copies beyond the first are not more documents kept
            out.append(
                f"  stats.json: {_fmt(st.documents_in)} in -> {_fmt(st.documents_out - rep)} kept, "
                f"{_fmt(st.documents_dropped)} dropped"
                + (f"; {_fmt(st.documents_out)} written with {_fmt(rep)} repeated copies" if rep else "")
            )
            for rule, d in sorted(st.dropped.items(), key=lambda kv: -kv[1].documents):
                out.append(f"    {rule:<32} {d.documents:>10,} docs {d.chars:>14,} chars")
            for r in st.rules:  # transforms that count what they changed (pii_* masking, decontaminate cut)
                name = (r.step or "").split(": ", 1)[-1]
                if r.masked or r.found:
                    verb, n, docs = (
                        ("masked", r.masked, r.masked_docs) if r.masked else ("found", r.found, r.found_docs)
                    )
                    out.append(f"    {name:<32} {n:>10,} {verb} in {docs or 0:,} docs")
                for bench, n in (r.cut or {}).items():
                    out.append(f"    {name + '/' + bench:<32} {n:>10,} docs cut")
    out.append(f"  matched {scan.matched:,} of {scan.total:,} documents (filters: {flt.describe()})")
    if scan.by_status and scan.kind != "tokens":
        out.append("  by status: " + ", ".join(f"{k}={v:,}" for k, v in sorted(scan.by_status.items())))
    if scan.by_rule:
        out.append(
            "  by rule:   " + ", ".join(f"{k}={v:,}" for k, v in sorted(scan.by_rule.items(), key=lambda kv: -kv[1]))
        )
    if scan.by_source:
        out.append("  by source: " + ", ".join(f"{k}={v:,}" for k, v in sorted(scan.by_source.items())))
    for i, it in enumerate(scan.sample, 1):
        out.append("")
        out.append(format_item(i, len(scan.sample), it, chars))
    return "\n".join(out)


def scan_json(scan: Scan, flt: Filters, chars: int) -> list[dict]:
    head = {"type": "summary", "path": str(scan.path), "kind": scan.kind, "filters": flt.describe()}
    if scan.kind == "run":
        head["stages"] = scan.extra["stages"]
        return [head]
    head.update(
        {
            "documents": scan.total,
            "matched": scan.matched,
            "by_status": scan.by_status,
            "by_rule": scan.by_rule,
            "by_source": scan.by_source,
        }
    )
    if scan.stats:
        st = scan.stats.dump()
        head["stats"] = {k: st[k] for k in ("documents_in", "documents_out", "documents_dropped", "dropped")}
    if scan.kind == "tokens":
        head["shards"] = scan.extra["shards"]
    return [head] + [{"type": "document", **it.to_json(chars)} for it in scan.sample]


def pipe_safe(fn):
    """Commands whose output goes to `| head` or a pager end quietly when it closes."""
    import functools
    import os

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            rc = fn(*a, **kw)
            sys.stdout.flush()
            return rc
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0

    return wrapper


@pipe_safe
def main(args, cfg=None) -> int:
    flt = Filters(
        getattr(args, "reason", None),
        getattr(args, "lang", None),
        getattr(args, "source", None),
        getattr(args, "grep", None),
        getattr(args, "doc_id", None),
    )
    limit = getattr(args, "limit", 5)
    if limit is None or limit < 0:
        raise UserError("--limit must be 0 or more")
    chars = getattr(args, "chars", 400) or 0
    scan = scan_path(args.path, flt, limit, getattr(args, "seed", 0) or 0)
    if getattr(args, "json", False):
        for rec in scan_json(scan, flt, chars):
            sys.stdout.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(format_scan(scan, flt, chars) + "\n")
    return 0

"""Readers and rules for the inputs of the mix stage.

Each `mix.sources` entry becomes a datatrove reader (files are sharded over tasks)
followed by the rules of its layout:

    auto        a stage folder, Parquet or JSONL with `text` (the ja output of clean)
    jsonl       JSONL(.gz/.zst) with `text` (any key via text_key)
    parquet     Parquet with `text`
    slimpajama  JSONL(.zst) with `text` and `meta.redpajama_set_name`; exclude_sets drops sets
    gutenberg   plain-text books (*.txt, one document per file; the Project Gutenberg
                header and licence are cut), or JSONL with `text`
    starcoder   starcoderdata Parquet: `content` and a language column (else the parent
                folder name, as in bigcode/starcoderdata), filtered by `languages`

Documents get `metadata.source` = the source name (ja, en, code) and
`metadata.origin` = the input label (the previous `source` of stage documents).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.readers.base import BaseDiskReader

from shikomi.config.mix import MixSource
from shikomi.core.documents import datatrove_reader, is_remote, resolve_input
from shikomi.core.rules import Rule
from shikomi.errors import UserError

DEFAULT_GLOBS = {
    "jsonl": "**/*.jsonl*",
    "slimpajama": "**/*.jsonl*",
    "parquet": "**/*.parquet",
    "starcoder": "**/*.parquet",
    "gutenberg": "**/*.txt",
}


def source_label(src: MixSource, path: str) -> str:
    if src.label:
        return src.label
    last = Path(str(path).rstrip("/")).name or str(path)
    return f"{src.format}:{last}"


def _split_path(path: str, default_glob: str) -> tuple[str, str]:
    """(folder, glob) of a file, folder or glob path."""
    p = str(path)
    if any(c in p for c in "*?["):
        # a glob: the folder is the part before the first wildcard
        parts = Path(p).parts
        i = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
        return str(Path(*parts[:i])) if i else ".", str(Path(*parts[i:]))
    if is_remote(p):
        if re.search(r"\.(jsonl|json|parquet|txt)(\.\w+)?$", p):
            folder, _, name = p.rpartition("/")
            return folder, name
        return p, default_glob
    pp = Path(p)
    if not pp.exists():
        raise UserError(f"mix source not found: {p}")
    if pp.is_file():
        return str(pp.parent), pp.name
    return str(pp), default_glob


# --------------------------------------------------------------------------- adapters
# datatrove binds an adapter to its reader: (self, data, path, id_in_file) -> dict


def _count_empty(reader, text) -> bool:
    if not text:
        reader.stat_update("skipped/empty_text")
        return True
    return False


def _make_adapter(fmt: str, label: str, name: str, text_key: str, id_key: str, language_key: str):
    def adapter(self, data: dict, path: str, id_in_file):
        text = data.pop(text_key, None)
        if _count_empty(self, text):
            return {"text": "", "id": ""}
        doc_id = data.pop(id_key, None)
        doc_id = str(doc_id) if doc_id not in (None, "") else f"{label}/{path}/{id_in_file}"
        meta = data.pop("metadata", None)
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except json.JSONDecodeError:
                meta = {"metadata": meta}
        metadata = dict(meta) if isinstance(meta, dict) else {}
        if fmt == "slimpajama":
            m = data.pop("meta", None) or {}
            if isinstance(m, str):
                try:
                    m = json.loads(m)
                except json.JSONDecodeError:
                    m = {}
            metadata["redpajama_set_name"] = m.get("redpajama_set_name") if isinstance(m, dict) else None
        elif fmt == "starcoder":
            lang = data.pop(language_key, None)
            if lang is None:
                # bigcode/starcoderdata: <language>/train-*.parquet
                parent = Path(path).parent.name
                lang = parent or None
            metadata["language"] = lang
            for k in ("max_stars_repo_path", "max_stars_repo_name", "path"):
                if k in data and data[k] is not None:
                    metadata[k] = data[k]
        else:
            for k, v in data.items():
                if k not in metadata and isinstance(v, (str, int, float, bool)) and k != "media":
                    metadata[k] = v
        previous = metadata.get("source")
        metadata["origin"] = previous if (previous and previous != name) else label
        metadata["source"] = name
        return {"text": text, "id": doc_id, "metadata": metadata}

    return adapter


class TextFileReader(BaseDiskReader):
    """One document per plain-text file (Gutenberg books); the Project Gutenberg
    header and licence footer are cut when their markers are present."""

    name = "📖 Text files"

    def __init__(self, data_folder, glob_pattern: str, label: str, name: str, **kw):
        super().__init__(data_folder, glob_pattern=glob_pattern, **kw)
        self.label = label
        self.source_name = name

    def read_file(self, filepath: str) -> DocumentsPipeline:
        with self.data_folder.open(filepath, "r", encoding="utf-8", errors="replace") as f:
            raw = f.read()
        text = strip_gutenberg(raw).strip("\n")
        if _count_empty(self, text):
            return
        meta = {"origin": self.label, "source": self.source_name}
        yield Document(text=text, id=f"{self.label}/{filepath}", metadata=meta)


_PG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG[^\n]*\n", re.M | re.I)
_PG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG", re.M | re.I)


def strip_gutenberg(text: str) -> str:
    """The book between Project Gutenberg's START and END markers (all of it without them)."""
    m = _PG_START.search(text)
    if m:
        text = text[m.end() :]
    m = _PG_END.search(text)
    if m:
        text = text[: m.start()]
    return text


def reader_for_source(src: MixSource, path: str):
    """The datatrove reader of one mix input (file paths stay out of metadata, so the
    output does not depend on where the data lives)."""
    reader = _reader_for_source(src, path)
    reader.add_file_path = False
    return reader


def _reader_for_source(src: MixSource, path: str):
    label = source_label(src, path)
    fmt = src.format
    if fmt == "auto":
        kind, folder, pattern = resolve_input(path)
        text_key = src.text_key or "text"
        adapter = _make_adapter("auto", label, src.name, text_key, src.id_key, src.language_key)
        return datatrove_reader(kind, folder, pattern, count_empty=False, adapter=adapter, text_key=text_key)
    folder, pattern = _split_path(path, src.glob or DEFAULT_GLOBS[fmt])
    if src.glob:
        pattern = src.glob
    text_key = src.text_key or ("content" if fmt == "starcoder" else "text")
    adapter = _make_adapter(fmt, label, src.name, text_key, src.id_key, src.language_key)
    if fmt == "gutenberg" and not re.search(r"\.(jsonl|json)", pattern):
        return TextFileReader(folder, glob_pattern=pattern, label=label, name=src.name)
    kind = "parquet" if fmt in ("parquet", "starcoder") else "jsonl"
    return datatrove_reader(kind, folder, pattern, count_empty=False, adapter=adapter, text_key=text_key)


def has_files(reader) -> bool:
    """Whether a reader's folder holds any file it would read."""
    try:
        return bool(reader.data_folder.list_files(recursive=reader.recursive, glob_pattern=reader.glob_pattern))
    except FileNotFoundError:
        return False


def source_path_exists(path: str) -> bool:
    return is_remote(path) or Path(path).exists() or any(c in path for c in "*?[")


# --------------------------------------------------------------------------- rules


class ExcludeSets(Rule):
    """SlimPajama: drop documents of the excluded RedPajama sets (Books, GitHub)."""

    name = "exclude redpajama sets"
    rule = "excluded_set"

    def __init__(self, exclude: list[str]):
        super().__init__()
        self.exclude = set(exclude)

    def check(self, doc: Document):
        s = doc.metadata.get("redpajama_set_name")
        if s in self.exclude:
            return self.rule, s
        return None


class CodeLanguage(Rule):
    """starcoderdata: keep only the configured languages."""

    name = "code language"
    rule = "language"

    def __init__(self, languages: list[str]):
        super().__init__()
        self.languages = {x.lower() for x in languages}

    def check(self, doc: Document):
        lang = str(doc.metadata.get("language") or "").lower()
        if self.languages and lang not in self.languages:
            return self.rule, lang or "unknown"
        return None


class TooShort(Rule):
    name = "too short"
    rule = "too_short"

    def __init__(self, min_chars: int):
        super().__init__()
        self.min_chars = min_chars

    def check(self, doc: Document):
        if len(doc.text) < self.min_chars:
            return self.rule, len(doc.text)
        return None


def rules_for_source(src: MixSource) -> list:
    rules: list = []
    if src.format == "slimpajama" and src.exclude_sets:
        rules.append(ExcludeSets(src.exclude_sets))
    if src.format == "starcoder" and src.languages:
        rules.append(CodeLanguage(src.languages))
    if src.min_chars > 1:
        rules.append(TooShort(src.min_chars))
    return rules


def resolve_source_path(src: MixSource, default_ja: str | None, run_dir: str = "") -> str:
    """The input path of a source; `{run_dir}` in it stands for the run folder."""
    if src.path:
        return src.path.replace("{run_dir}", str(run_dir))
    if default_ja is None:
        raise UserError(
            f"mix source '{src.name}' has no path (only a `ja` source defaults to mix.input, <run_dir>/clean unless set)"
        )
    return default_ja

"""The recipes in configs/recipes/: they load, they carry the published numbers, a typo
fails at load time with the key named, and every tiny variant runs end to end.

The end-to-end test runs the whole chain (extract .. train) once, for sarashina2 at
tiny scale. The other tiny variants reuse that run's upstream stages (extract, langid,
dedup, clean: their tiny sections are the same, which a test checks) and run their own
mix, tokenizer, tokenize and train stages, so each still produces shards and a trained
tiny model within the CI budget.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from shikomi import cli
from shikomi.config import load_config, load_dict, overrides
from shikomi.core.schemas import TokenManifest
from shikomi.core.shards import ShardReader
from shikomi.errors import UserError
from shikomi.train.model import count_params, model_args

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "configs" / "recipes"
FULL = sorted(p.stem for p in RECIPES.glob("*.yaml") if not p.name.endswith(".tiny.yaml"))
CHAIN_RECIPES = [r for r in FULL if r != "tokyo-mix-study"]  # the study runs through `shikomi experiment`
UPSTREAM = ["extract", "langid", "dedup", "clean"]
FIRST = "sarashina2"

# published total parameter counts (billions) of the model each recipe trains
PUBLISHED_PARAMS = {
    "sarashina1": 7,
    "sarashina2": 7,
    "line-japanese-large-lm-1.7b": 1.7,
    "line-japanese-large-lm-3.6b": 3.6,
    "llm-jp-v1-13b": 13,
    "japanese-stablelm-alpha-7b": 7,
}


def test_every_system_has_a_recipe_and_a_tiny_variant():
    assert set(FULL) == {
        "sarashina1",
        "sarashina2",
        "line-japanese-large-lm-1.7b",
        "line-japanese-large-lm-3.6b",
        "llm-jp-v1-13b",
        "japanese-stablelm-alpha-7b",
        "tokyo-mix-study",
    }
    for name in FULL:
        full = load_config(RECIPES / f"{name}.yaml")
        tiny = load_config(RECIPES / f"{name}.tiny.yaml")
        assert full.name == name and tiny.name == f"{name}-tiny"
        assert tiny.train.device == "cpu" and tiny.extract.generate_sample
        text = (RECIPES / f"{name}.yaml").read_text(encoding="utf-8")
        assert "Sources" in text and ("[card]" in text or "[study]" in text)  # every number says where it is from


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_recipes_match_the_published_sizes(name):
    cfg = load_config(RECIPES / f"{name}.yaml")
    args = model_args(cfg.train.model, cfg.train, cfg.tokenizer.vocab_size)
    billions = count_params(args)["total"] / 1e9
    assert abs(billions - PUBLISHED_PARAMS[name]) / PUBLISHED_PARAMS[name] < 0.08, billions
    if cfg.mix.total_tokens:  # the steps train on the published token count
        from shikomi.train.data import tokens_before

        trained = tokens_before(cfg.train, cfg.train.max_steps)
        assert abs(trained - cfg.mix.total_tokens) / cfg.mix.total_tokens < 0.001


def test_recipes_keep_their_published_choices():
    s2 = load_config(RECIPES / "sarashina2.yaml")
    assert s2.mix.ratios == {"ja": 5, "en": 4, "code": 1} and s2.tokenizer.vocab_size == 102_400
    assert (s2.train.lr, s2.train.weight_decay, s2.train.z_loss, s2.train.scaled_embed) == (2.5e-4, 0.1, 1e-4, True)
    s1 = load_config(RECIPES / "sarashina1.yaml")
    assert set(s1.mix.ratios) == {"ja"} and s1.tokenizer.vocab_size == 51_200 and s1.mix.total_tokens == 10**12
    line = load_config(RECIPES / "line-japanese-large-lm-3.6b.yaml")
    assert (line.train.lr, line.train.beta2, line.tokenizer.model_type, line.tokenizer.byte_fallback) == (
        1.5e-4,
        0.95,
        "unigram",
        True,
    )
    ljp = load_config(RECIPES / "llm-jp-v1-13b.yaml")
    assert ljp.tokenizer.vocab_size == 50_570 and ljp.mix.total_tokens == 300 * 10**9
    jslm = load_config(RECIPES / "japanese-stablelm-alpha-7b.yaml")
    assert jslm.mix.ratios == {"ja": 1, "en": 1}
    assert (jslm.train.seq_warmup_start, jslm.train.seq_len, jslm.train.seq_warmup_steps) == (64, 2048, 20_000)
    study = load_config(RECIPES / "tokyo-mix-study.yaml").experiment.mix_scaling
    assert set(study.conditions) == {"ja-only", "en-only", "mixed"} and study.conditions["mixed"] == ["ja", "en"]
    # the tiny variants keep the choices that do not depend on size
    for name in CHAIN_RECIPES:
        full, tiny = load_config(RECIPES / f"{name}.yaml"), load_config(RECIPES / f"{name}.tiny.yaml")
        assert tiny.mix.ratios == full.mix.ratios
        assert {s.name for s in tiny.mix.sources} == {s.name for s in full.mix.sources}
        assert (tiny.train.z_loss, tiny.train.scaled_embed, tiny.train.beta2) == (
            full.train.z_loss,
            full.train.scaled_embed,
            full.train.beta2,
        )
        assert bool(tiny.train.seq_warmup_steps) == bool(full.train.seq_warmup_steps)


@pytest.mark.parametrize(
    "section,typo,key",
    [
        ("train", {"learning_rate": 1e-3}, "train.learning_rate"),
        ("train", {"model": {"dimm": 64}}, "train.model.dimm"),
        ("tokenizer", {"vocab": 1000}, "tokenizer.vocab"),
        ("experiment", {"mix_scaling": {"train_token": 10}}, "experiment.mix_scaling.train_token"),
    ],
)
def test_a_typo_in_a_recipe_override_fails_at_load_time(tmp_path, section, typo, key):
    f = tmp_path / "my.yaml"
    f.write_text(yaml.safe_dump({"base": str(RECIPES / "sarashina2.yaml"), section: typo}))
    with pytest.raises(UserError, match=rf"unknown key '{key}'") as e:
        load_config(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", FULL)
def test_a_typo_inside_a_recipe_fails_at_load_time_for_both_scales(tmp_path, name):
    for f in RECIPES.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    p = tmp_path / f"{name}.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("\ntrain:\n", "\ntrain:\n  warmup_stpes: 10\n", 1))
    for target in (p, tmp_path / f"{name}.tiny.yaml"):
        with pytest.raises(UserError, match=r"unknown key 'train\.warmup_stpes'.*allowed keys here: .*warmup_steps"):
            load_config(target)


def test_scale_flag_picks_the_tiny_variant(tmp_path, capsys):
    assert (
        overrides.scaled_config_path("configs/recipes/sarashina2.yaml", "tiny")
        == "configs/recipes/sarashina2.tiny.yaml"
    )
    assert overrides.scaled_config_path("configs/recipes/sarashina2.yaml", "full") == "configs/recipes/sarashina2.yaml"
    assert (
        overrides.scaled_config_path("configs/recipes/sarashina2.tiny.yaml", "tiny")
        == "configs/recipes/sarashina2.tiny.yaml"
    )
    (tmp_path / "x.yaml").write_text("name: x\n")
    rc = cli.main(["mix", "--config", str(tmp_path / "x.yaml"), "--scale", "tiny"])
    err = capsys.readouterr().err
    assert rc == 2 and "x.tiny.yaml does not exist" in err and len(err.strip().splitlines()) == 1
    # a typo through the command line: exit code 2, one line naming the key
    f = tmp_path / "typo.yaml"
    f.write_text(yaml.safe_dump({"base": str(RECIPES / "llm-jp-v1-13b.yaml"), "mix": {"ratio": {"ja": 1}}}))
    rc = cli.main(["mix", "--config", str(f)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown key 'mix.ratio'" in err and len(err.strip().splitlines()) == 1


def test_tiny_variants_share_their_upstream_sections():
    """What lets the end-to-end test reuse one upstream run for every tiny variant."""
    first = load_dict(RECIPES / f"{FIRST}.tiny.yaml")
    ref = load_config(RECIPES / f"{FIRST}.tiny.yaml")
    for name in CHAIN_RECIPES:
        cfg = load_config(RECIPES / f"{name}.tiny.yaml")
        for section in ("extract", "dedup", "clean"):
            assert getattr(cfg, section) == getattr(ref, section), (name, section)
        assert set(cfg.langid.languages) <= set(ref.langid.languages)
        assert cfg.langid.model_dump(exclude={"languages"}) == ref.langid.model_dump(exclude={"languages"})
        assert cfg.seed == ref.seed
    assert first["run_dir"] == f"runs/{FIRST}-tiny"


# --------------------------------------------------------------------------- end to end


def _check_run(run: Path, cfg, metrics_needed: bool = True) -> dict:
    """Shards that read back, a manifest with the recipe's sources, a trained model whose
    loss fell."""
    tok = run / "tokenize"
    m = TokenManifest.read(tok).dump()
    sources = {s["source"] for s in m["shards"] if s["split"] == "train" and s["documents"] > 0}
    assert sources == {s.name for s in cfg.mix.sources}
    for s in m["shards"]:
        r = ShardReader(tok / s["path"])
        assert len(r) == s["documents"] and int(sum(len(r[i]) for i in range(len(r)))) == s["tokens"]
        assert all(int(np.asarray(r[i])[-1]) == m["tokenizer"]["eos_id"] for i in range(len(r)))
    planned = {k: v / sum(cfg.mix.ratios.values()) for k, v in cfg.mix.ratios.items()}
    for src, info in m["sources"].items():  # the token shares follow the recipe's ratios
        assert abs(info["realised_share"] - planned[src]) < 0.02, (src, info)
    rows = [json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert rows[-1]["step"] + 1 == cfg.train.max_steps
    first, last = rows[0]["loss"], np.mean([r["loss"] for r in rows[-5:]])
    assert last < first - 0.5, (first, last)
    assert (run / "train" / "checkpoints" / f"step_{cfg.train.max_steps:08d}").is_dir()
    return {"rows": rows, "manifest": m}


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("recipes")


def test_tiny_sarashina2_runs_the_whole_chain(chain_dir, monkeypatch):
    monkeypatch.chdir(chain_dir)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models train fastest on one thread per rank
    stages = "extract,langid,dedup,clean,mix,train-tokenizer,tokenize,train"
    rc = cli.main(["run", "--config", str(RECIPES / f"{FIRST}.yaml"), "--scale", "tiny", "--stages", stages])
    assert rc == 0
    cfg = load_config(RECIPES / f"{FIRST}.tiny.yaml")
    run = chain_dir / cfg.run_dir
    for stage in UPSTREAM:
        assert (run / stage / "stats.json").is_file()
    out = _check_run(run, cfg)
    assert {s["source"] for s in out["manifest"]["shards"]} == {"ja", "en", "code"}
    assert any("val_loss/en" in r for r in out["rows"])


@pytest.mark.parametrize("name", [r for r in CHAIN_RECIPES if r != FIRST])
def test_tiny_recipe_builds_shards_and_trains(chain_dir, monkeypatch, name):
    first_run = chain_dir / "runs" / f"{FIRST}-tiny"
    if not (first_run / "clean" / "stats.json").is_file():
        pytest.skip("needs test_tiny_sarashina2_runs_the_whole_chain (run the whole file)")
    monkeypatch.chdir(chain_dir)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models train fastest on one thread per rank
    cfg = load_config(RECIPES / f"{name}.tiny.yaml")
    run = chain_dir / cfg.run_dir
    for stage in UPSTREAM:  # the shared upstream stages (see test_tiny_variants_share_their_upstream_sections)
        if not (run / stage).exists():
            shutil.copytree(first_run / stage, run / stage, symlinks=True)
    rc = cli.main(
        [
            "run",
            "--config",
            str(RECIPES / f"{name}.yaml"),
            "--scale",
            "tiny",
            "--stages",
            "mix,train-tokenizer,tokenize,train",
        ]
    )
    assert rc == 0
    out = _check_run(run, cfg)
    if cfg.train.seq_warmup_steps:  # Japanese StableLM: the sequence-length warmup happened
        assert out["rows"][0]["seq_len"] == cfg.train.seq_warmup_start
        assert out["rows"][-1]["seq_len"] == cfg.train.seq_len

"""A stage folder remembers the config that made it: a changed config stops with the
changed keys, the same config resumes or says it is complete, --force starts over.
Also the one-line errors of config and command-line mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shikomi import cli
from shikomi.core.schemas import StageFingerprint

JA = [
    "今日は朝から雨が降っていたので、駅まで歩いて行くことにしました。途中で友達に会いました。",
    "図書館で借りた本を読みながら、静かな午後を過ごしました。とても楽しい時間でした。",
    "新しい料理を作ってみたところ、家族にとても喜ばれました。また作ってみたいと思います。",
]


@pytest.fixture
def docs(tmp_path) -> Path:
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(JA)))
    return f


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_changed_config_stops_the_same_resumes_force_starts_over(tmp_path, docs, capsys):
    base = ["clean", "--input", str(docs), "--output", str(tmp_path / "run"), "--tasks", "1"]
    rc, out, err = run(base, capsys)
    assert rc == 0, err
    fp = StageFingerprint.read(tmp_path / "run" / "clean")
    assert fp.values["clean.tasks"] == 1 and fp.values["clean.profile"] == "default"
    kept = json.loads((tmp_path / "run" / "clean" / "stats.json").read_text())["documents_out"]
    assert kept == 3

    rc, out, err = run(base, capsys)
    assert rc == 0 and "[clean] already complete; nothing to do" in out and "docs/s" not in out

    strict = [*base, "--set", "clean.rules.hiragana_fraction.min=0.99"]
    rc, out, err = run(strict, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "clean.rules.hiragana_fraction.min unset -> 0.99" in err and "--force" in err
    assert StageFingerprint.read(tmp_path / "run" / "clean").fingerprint == fp.fingerprint  # nothing touched

    rc, out, err = run([*strict, "--force"], capsys)
    assert rc == 0, err
    stats = json.loads((tmp_path / "run" / "clean" / "stats.json").read_text())
    assert stats["documents_out"] == 0 and stats["dropped"]["hiragana_fraction"]["documents"] == 3

    rc, out, err = run([*base[:-1], "2"], capsys)  # other tasks: another sharding of the input
    assert rc == 2 and "clean.tasks 1 -> 2" in err


def test_an_upstream_rerun_with_another_config_is_seen_downstream(tmp_path, docs, capsys):
    run_dir = str(tmp_path / "run")
    assert run(["clean", "--input", str(docs), "--output", run_dir, "--tasks", "1"], capsys)[0] == 0
    mix = ["mix", "--output", run_dir, "--tasks", "1", "--set", "mix.ratios={ja: 1}"]
    rc, out, err = run(mix, capsys)
    assert rc == 0, err
    rc, out, err = run(["clean", "--input", str(docs), "--output", run_dir, "--tasks", "1", "--force",
                        "--set", "clean.rules.hiragana_fraction.min=0.3"], capsys)  # fmt: skip
    assert rc == 0, err
    rc, out, err = run(mix, capsys)
    assert rc == 2 and "upstream.clean" in err


def test_typos_are_one_line_errors_with_did_you_mean(tmp_path, docs, capsys):
    base = ["clean", "--input", str(docs), "--output", str(tmp_path / "run")]
    rc, out, err = run([*base, "--set", "clean.rules.hiragana_fractio=false"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "unknown rule 'hiragana_fractio'; did you mean 'hiragana_fraction'" in err
    assert not (tmp_path / "run" / "clean").exists()  # stopped before anything ran
    rc, out, err = run([*base, "--set", "mix.sources=[{name: ja, pth: x}]"], capsys)
    assert rc == 2 and "unknown key 'mix.sources[0].pth'" in err and "did you mean 'path'" in err
    assert "allowed keys here: exclude_sets, format, glob" in err
    rc, out, err = run([*base, "--set", "clean.profil=x"], capsys)
    assert rc == 2 and "did you mean 'profile'" in err


def test_a_profile_with_an_unknown_rule_fails_before_the_chain_runs(tmp_path, capsys):
    prof = tmp_path / "p.yaml"
    prof.write_text("rules:\n  - normalize\n  - hiragana_fracton: {min: 0.2}\n")
    rc, out, err = run(["run", "--output", str(tmp_path / "run"), "--set", f"clean.profile={prof}"], capsys)
    assert rc == 2 and "unknown rule 'hiragana_fracton'; did you mean 'hiragana_fraction'" in err
    assert not (tmp_path / "run" / "extract").exists()


@pytest.mark.parametrize("opt", ["--tasks", "--workers"])
def test_tasks_and_workers_below_one_are_refused(tmp_path, docs, capsys, opt):
    rc, out, err = run(["clean", "--input", str(docs), "--output", str(tmp_path / "r"), opt, "0"], capsys)
    assert rc == 2 and err.strip() == f"shikomi: error: {opt} must be >= 1, got 0"


def test_more_tasks_than_files_says_so(tmp_path, docs, capsys):
    rc, out, err = run(["clean", "--input", str(docs), "--output", str(tmp_path / "r"), "--tasks", "3"], capsys)
    assert rc == 0 and "3 tasks but 1 input file: 2 tasks have nothing to read" in out


@pytest.mark.parametrize("command", ["clean", "run", "train", "submit", "experiment"])
def test_an_unwritable_output_is_one_line(tmp_path, command, capsys):
    (tmp_path / "afile").write_text("x")
    extra = {"submit": ["--config", "configs/demo.yaml", "--dry-run"],
             "experiment": ["mix-scaling", "--config", "configs/demo.yaml"]}.get(command, [])  # fmt: skip
    argv = [command, *extra, "--output", str(tmp_path / "afile" / "run")]
    rc, out, err = run(argv, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "afile is a file" in err


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, docs, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for command in (
        ["clean", "--input", str(docs)],
        ["train"],
        ["submit", "--config", "configs/demo.yaml", "--dry-run"],
    ):
        rc, out, err = run([*command, "--output", str(blocker / "run")], capsys)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert f"output folder {blocker / 'run'}: cannot write there ({blocker} is a file)" in err


def test_a_failing_command_leaves_no_empty_run_folder(tmp_path, capsys):
    out_dir = tmp_path / "runs" / "never"
    rc, out, err = run(["clean", "--input", str(tmp_path / "missing-*.jsonl"), "--output", str(out_dir)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()

"""Bad input to every command, as a table: each case must end with exactly one `Error:` line, exit
code 2 and no traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ganforge.gan.config import TrainConfig
from ganforge.gan.loop import train

from conftest import make_photo, one_line_error, run


@pytest.fixture(scope="module")
def p(tmp_path_factory):
    """Paths of every kind of bad input, and a small good run and two good pictures to go with them."""
    d = tmp_path_factory.mktemp("bad")
    paths = {"dir": d, "missing": d / "no-such-thing", "missing_png": d / "missing.png"}
    good = train(TrainConfig(size=16, g_width=4, d_width=4, latent_dim=8, batch_size=16, steps=2, collapse_check=False), d / "run", sinks=[])
    paths["run"] = good
    rng = np.random.default_rng(0)
    for name in ("photo.png", "painting.jpg"):
        make_photo(rng, 40, 30).save(d / name)
        paths[name.split(".")[0]] = d / name
    for name in ("empty.png", "empty.jpg", "empty.safetensors", "empty.pt"):
        (d / name).write_bytes(b"")
        paths[name.replace(".", "_")] = d / name
    (d / "text.png").write_text("this is a text file, not a picture\n")
    (d / "text.pt").write_text("not a checkpoint\n")
    (d / "text.safetensors").write_text("not safetensors\n")
    whole = (d / "photo.png").read_bytes()
    (d / "truncated.png").write_bytes(whole[: len(whole) // 2])
    gen = (good / "generator.safetensors").read_bytes()
    (d / "truncated.safetensors").write_bytes(gen[: len(gen) // 2])
    ckpt = sorted((good / "checkpoints").iterdir())[-1].read_bytes()
    (d / "truncated.pt").write_bytes(ckpt[: len(ckpt) // 2])
    save_file({"w": torch.zeros(2)}, d / "foreign.safetensors")
    torch.save({"format_version": 1, "generator": {}}, d / "handmade.pt")  # no model_config
    for name in ("text.png", "truncated.png", "truncated.safetensors", "truncated.pt", "foreign.safetensors", "handmade.pt", "text.pt", "text.safetensors"):
        paths[name.replace(".", "_")] = d / name
    (d / "empty-folder").mkdir()
    (d / "texts").mkdir()
    for i in range(20):
        (d / "texts" / f"{i}.png").write_text("not a picture")
    (d / "few").mkdir()
    for i in range(5):
        make_photo(rng, 20, 20).save(d / "few" / f"{i}.png")
    (d / "not-a-run").mkdir()
    (d / "not-a-run" / "notes.txt").write_text("hello")
    (d / "damaged-run").mkdir()
    (d / "damaged-run" / "config.json").write_text("{not json")
    paths.update({k: d / k for k in ("empty-folder", "texts", "few", "not-a-run", "damaged-run")})
    return paths


TRAIN_NUMBERS = [
    ("--steps", "0"), ("--steps", "-5"), ("--steps", "many"), ("--steps", "1e9"), ("--batch-size", "0"), ("--latent-dim", "-1"),
    ("--lr-g", "inf"), ("--lr-g", "nan"), ("--lr-d", "-1"), ("--lr-d", "fast"), ("--beta1", "2"), ("--beta2", "-0.5"),
    ("--g-width", "0"), ("--g-width", "-8"), ("--d-width", "0"), ("--size", "48"), ("--size", "0"), ("--size", "-32"),
    ("--channels", "2"), ("--ema-decay", "1"), ("--ema-decay", "inf"), ("--label-smoothing", "-0.1"), ("--r1", "-1"),
    ("--r1", "nan"), ("--d-skip-below", "-1"), ("--augment-p", "often"), ("--augment-p", "2"), ("--augment-policy", "blur"),
    ("--keep", "0"), ("--log-every", "0"), ("--sample-every", "-1"), ("--checkpoint-every", "0"), ("--eval-every", "-3"),
    ("--seed", "1e400"), ("--seed", "12345678901234567890"), ("--grow-stage-steps", "5"), ("--device", "tpu"), ("--arch", "resnet"),
]

CASES = [
    *[(["train", *pair], pair[0]) for pair in TRAIN_NUMBERS],
    (["train", "{missing}"], "no such folder"),
    (["train", "{empty-folder}"], "no image files"),
    (["train", "{texts}"], "could be decoded"),
    (["train", "{few}"], "only 5"),
    (["train", "{photo}"], "is a file"),
    (["train", "--resume", "{missing}"], "no such run folder"),
    (["train", "--resume", "{photo}"], "is a file"),
    (["train", "--resume", "{not-a-run}"], "not a ganforge run folder"),
    (["train", "--resume", "{damaged-run}"], "damaged"),
    (["train", "--resume", "{run}", "--lr-g", "0.1"], "--lr-g"),
    (["train", "--resume", "{run}", "--steps", "2"], "already reached step 2"),
    (["train", "--run-dir", "{photo}"], "is a file"),
    (["train", "--run-dir", "{photo}/run"], "could not create the folder"),
    (["train", "--run-dir", "{run}"], "already holds a run"),
    (["train", "{few}", "--data", "{few}"], "not both"),
    (["sample"], "Missing argument 'SOURCE'"),
    (["sample", "{missing}"], "no such"),
    (["sample", "{empty_safetensors}"], "not a readable safetensors"),
    (["sample", "{truncated_safetensors}"], "not a readable safetensors"),
    (["sample", "{text_safetensors}"], "not a readable safetensors"),
    (["sample", "{foreign_safetensors}"], "not a ganforge generator"),
    (["sample", "{empty_pt}"], "not a readable ganforge checkpoint"),
    (["sample", "{truncated_pt}"], "not a readable ganforge checkpoint"),
    (["sample", "{text_pt}"], "not a readable ganforge checkpoint"),
    (["sample", "{handmade_pt}"], "no model_config"),
    (["sample", "{photo}"], "not a readable safetensors"),
    (["sample", "{empty-folder}"], "no generator.safetensors and no checkpoints"),
    (["sample", "{run}", "--num", "0"], "--num must be at least 1"),
    (["sample", "{run}", "--num", "-3"], "--num must be at least 1"),
    (["sample", "{run}", "--num", "lots"], "not a valid integer"),
    (["sample", "{run}", "--seed", "x"], "not a valid integer"),
    (["sample", "{run}", "-o", "{photo}/grid.png"], "could not"),
    (["sample", "{run}", "--out-dir", "{photo}"], "could not"),
    (["evaluate", "{run}"], "Missing option '--data'"),
    (["evaluate", "{missing}", "--data", "digits"], "no such"),
    (["evaluate", "{run}", "--data", "{missing}"], "no such folder"),
    (["evaluate", "{run}", "--data", "{photo}"], "is a file"),
    (["evaluate", "{empty-folder}", "--data", "digits"], "no image files"),
    (["evaluate", "{run}", "--data", "digits", "-n", "0"], "-n must be at least 10"),
    (["evaluate", "{run}", "--data", "digits", "-n", "3"], "-n must be at least 10"),
    (["evaluate", "{run}", "--data", "digits", "-n", "x"], "not a valid integer"),
    (["evaluate", "{run}", "--data", "digits", "--size", "48"], "power of two"),
    (["evaluate", "{run}", "--data", "digits", "--features", "vgg"], "not one of"),
    (["evaluate", "{run}", "--data", "digits", "--features", "inception", "--inception-weights", "{missing}"], "no such weights file"),
    (["evaluate", "{run}", "--data", "digits", "--features", "inception", "--inception-weights", "{text_pt}"], "not a readable weights file"),
    (["neighbors", "{run}", "--data", "digits", "-k", "0"], "--k must be at least 1"),
    (["neighbors", "{run}", "--data", "digits", "-n", "0"], "-n must be at least 1"),
    (["neighbors", "{run}", "--data", "digits", "-k", "20", "--max-real", "10", "--features", "pixels"], "-k 20"),
    (["neighbors", "{run}", "--data", "digits", "--max-real", "0"], "--max-real must be at least 1"),
    (["neighbors", "{truncated_safetensors}", "--data", "digits"], "not a readable safetensors"),
    (["report"], "Missing argument 'RUN_DIR'"),
    (["report", "{missing}"], "no such run folder"),
    (["report", "{photo}"], "no such run folder"),
    (["report", "{not-a-run}"], "not a ganforge run folder"),
    (["report", "{run}", "-o", "{photo}/r.html"], "could not"),
    (["stylize", "{missing_png}", "{painting}", "-o", "{dir}/o.png"], "no such file"),
    (["stylize", "{photo}", "{missing_png}", "-o", "{dir}/o.png"], "no such file"),
    (["stylize", "{empty_png}", "{painting}", "-o", "{dir}/o.png"], "not a readable image"),
    (["stylize", "{photo}", "{empty_jpg}", "-o", "{dir}/o.png"], "not a readable image"),
    (["stylize", "{text_png}", "{painting}", "-o", "{dir}/o.png"], "not a readable image"),
    (["stylize", "{truncated_png}", "{painting}", "-o", "{dir}/o.png"], "not a readable image"),
    (["stylize", "{dir}", "{painting}", "-o", "{dir}/o.png"], "is a folder"),
    (["stylize", "{photo}", "{painting}"], "-o OUT.png"),
    (["stylize", "{photo}"], "at least one style image"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.xyz"], "unknown image extension"),
    (["stylize", "{photo}", "{painting}", "-o", "{photo}/o.png"], "could not"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--size", "0"], "--size must be at least 16"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--size", "-1"], "--size must be at least 16"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--steps", "0"], "--steps must be at least 1"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--lr", "inf"], "--lr must be a finite number"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--lr", "nan"], "--lr must be a finite number"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--style-weight", "-1"], "--style-weight must be at least 0"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--style-scale", "0"], "--style-scale must be greater than 0"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--scales", "0"], "--scales must be at least 1"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--max-size", "0"], "--max-size must be at least 16"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--style-weights", "1,2"], "2 weights for 1 style"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--style-weights", "a,b"], "numbers separated by commas"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--content-layers", "nope"], "no layer 'nope'"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--weights", "{missing}"], "no such weights file"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--weights", "{text_pt}"], "not a readable weights file"),
    (["stylize", "{photo}", "{painting}", "-o", "{dir}/o.png", "--device", "tpu"], "--device must be one of"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line(p, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run started by mistake would land here
    args = [a.format(**{k: str(v) for k, v in p.items()}) for a in args]
    result = run(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    one_line_error(result, message)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # a refused start leaves no run folder
    assert not (p["dir"] / "o.png").exists()

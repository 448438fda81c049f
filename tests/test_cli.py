import pickle

import numpy as np
import pytest
from PIL import Image

from ganforge.gan.config import TrainConfig
from ganforge.gan.loop import train

from conftest import make_photo, one_line_error, run




@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    return train(TrainConfig(size=16, g_width=8, d_width=8, batch_size=16, latent_dim=16, steps=4), run_dir, sinks=[])


def test_train_cli_on_a_folder_reports_skips(photo_folder, tmp_path):
    (photo_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    r = run("train", photo_folder, "--size", 16, "--g-width", 4, "--d-width", 4, "--batch-size", 8, "--steps", 2, "--run-dir", tmp_path / "r")
    assert r.exit_code == 0, r.output
    assert "Skipped 1 unreadable file(s): broken.jpg" in r.output
    assert r.output.strip().splitlines()[-1] == str(tmp_path / "r")
    assert "broken.jpg" in (tmp_path / "r" / "log.txt").read_text()
    assert (tmp_path / "r" / "generator.safetensors").exists()


@pytest.mark.parametrize("args,fragment", [
    (["/no/such/folder"], "no such folder"),
    (["--size", "48"], "power of two"),
    (["--steps", "0"], "--steps"),
])
def test_train_bad_input(args, fragment, tmp_path):
    one_line_error(run("train", *args, "--run-dir", tmp_path / "r"), fragment)


def test_train_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run("train", empty), "no image files")
    few = tmp_path / "few"
    few.mkdir()
    for i in range(5):
        make_photo(np.random.default_rng(i), 20, 20).save(few / f"{i}.png")
    one_line_error(run("train", few), "only 5")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_bytes(b"")
    one_line_error(run("train", junk), "could be decoded")


def test_unknown_option_exits_2():
    assert run("train", "--no-such-option").exit_code == 2
    assert run("train", "--arch", "resnet").exit_code == 2


def test_resume_rejects_changed_settings(trained):
    one_line_error(run("train", "--resume", trained, "--lr-g", "0.1"), "--lr-g")
    one_line_error(run("train", "--resume", trained.parent), "not a ganforge run folder")


def test_resume_refuses_weights_that_do_not_fit_in_one_sentence(tmp_path):
    import shutil

    import torch

    from ganforge.gan.checkpoint import load_checkpoint

    run_dir = train(TrainConfig(size=16, g_width=8, d_width=8, batch_size=16, latent_dim=16, steps=2, checkpoint_every=2),
                    tmp_path / "run", sinks=[])
    path = sorted((run_dir / "checkpoints").iterdir())[-1]  # the newest, which --resume loads
    state = load_checkpoint(path)
    state["discriminator"]["extra.bias"] = torch.zeros(3)  # as a checkpoint of a D with one more layer would have
    torch.save(state, path)
    before = sorted(p.name for p in run_dir.rglob("*"))
    shutil.copy(path, tmp_path / "checkpoint.bak")
    one_line_error(run("train", "--resume", run_dir, "--steps", 4), "weights do not fit")
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # nothing written, nothing lost
    assert path.read_bytes() == (tmp_path / "checkpoint.bak").read_bytes()


def test_existing_run_folder_is_not_overwritten(trained):
    one_line_error(run("train", "--run-dir", trained, "--steps", 1), "--resume")


def test_sample_grid_and_files(trained, tmp_path):
    r = run("sample", trained, "-n", 9, "-o", tmp_path / "g.png")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "g.png").size == (3 * 18 + 2, 3 * 18 + 2)
    r = run("sample", trained / "generator.safetensors", "-n", 5, "--out-dir", tmp_path / "many")
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "many").iterdir())
    assert len(files) == 5 and Image.open(files[0]).size == (16, 16)
    a = np.asarray(Image.open(files[0]))
    run("sample", trained, "-n", 5, "--out-dir", tmp_path / "again")
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "again" / files[0].name)))  # same seed, same image
    run("sample", trained, "-n", 5, "--seed", 1, "--out-dir", tmp_path / "other")
    assert not np.array_equal(a, np.asarray(Image.open(tmp_path / "other" / files[0].name)))


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/ganforge-pwned",))


def test_tampered_and_foreign_files_are_refused(trained, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(1000))
    one_line_error(run("sample", junk), "not a readable safetensors")
    from safetensors.torch import save_file
    import torch

    save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    one_line_error(run("sample", tmp_path / "foreign.safetensors"), "not a ganforge generator")
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format_version": 1, "generator": Evil()}))
    one_line_error(run("sample", evil), "not a readable ganforge checkpoint")
    import os
    assert not os.path.exists("/tmp/ganforge-pwned")
    # right format, weights altered to the wrong shapes
    bad = {k: torch.zeros(3) for k in ("project.0.weight",)}
    from safetensors import safe_open
    with safe_open(str(trained / "generator.safetensors"), "pt") as f:
        meta = f.metadata()
    save_file(bad, tmp_path / "altered.safetensors", metadata=meta)
    one_line_error(run("sample", tmp_path / "altered.safetensors"), "damaged or altered")
    one_line_error(run("sample", tmp_path / "nothing-here"), "no such")


def test_sample_needs_one_output_kind(trained, tmp_path):
    one_line_error(run("sample", trained, "-o", tmp_path / "a.png", "--out-dir", tmp_path / "b"), "not both")

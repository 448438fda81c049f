import torch

from ganforge.gan.augment import AdaptiveP, Draws, augment, cutout, translation


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_shapes_determinism_and_gradients():
    x = torch.rand(6, 3, 16, 16, requires_grad=True)
    a = augment(x, ("color", "translation", "cutout"), 1.0, g())
    b = augment(x, ("color", "translation", "cutout"), 1.0, g())
    assert a.shape == x.shape and torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(augment(x, ("color",), 0.0, g()), x)


def test_rows_of_a_batch_get_the_transforms_the_whole_batch_gives_them():
    x = torch.rand(8, 3, 16, 16)
    policy = ("color", "translation", "cutout")
    whole = augment(x, policy, 0.7, g(5))
    parts = [augment(x[rows], policy, 0.7, g(5), total=8, rows=rows) for rows in (slice(0, 4), slice(4, 8))]
    assert torch.equal(torch.cat(parts), whole)


def test_translation_is_an_exact_integer_shift():
    x = torch.arange(64.0).view(1, 1, 8, 8)
    y = translation(x, Draws(g(3), 1), 1.0, ratio=0.25)
    # find the shift and check the overlapping part is copied exactly, the rest is zero-filled
    found = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)
             if torch.equal(y[0, 0, max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)], x[0, 0, max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)])]
    assert found


def test_cutout_zeroes_a_quarter_at_most():
    x = torch.ones(32, 1, 16, 16)
    y = cutout(x, Draws(g(), 32), 1.0)
    zero_frac = (y == 0).float().mean((1, 2, 3))
    assert (zero_frac > 0).all() and (zero_frac <= 0.25 + 1e-6).all()


def test_adaptive_p_rises_when_d_overfits_and_falls_otherwise():
    ada = AdaptiveP(interval=1, speed_kimg=0.1)
    for _ in range(20):
        ada.update(torch.ones(64) * 5)  # D confidently right on every real image: overfitting
    assert ada.p > 0.5
    for _ in range(40):
        ada.update(-torch.ones(64))
    assert ada.p == 0.0
    state = ada.state_dict()
    other = AdaptiveP()
    other.load_state_dict(state)
    assert other.state_dict() == state

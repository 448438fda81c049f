"""Curves of a run's metrics, drawn the same way for losses.png during training and for the report."""

from __future__ import annotations

import io

# Fields of every metrics row that are not worth a panel of their own.
STANDARD = ("step", "loss_d", "loss_g", "d_real", "d_fake", "d_skipped", "images_per_sec", "elapsed_s", "kimg")


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def curves_png(rows: list[dict], most_extra: int = 4) -> bytes | None:
    """A PNG with the losses, D's outputs, and one panel per other numeric series that changes
    (KID first, up to `most_extra`); None when no row has a step."""
    rows = [r for r in rows if is_number(r.get("step"))]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k for r in rows for k, v in r.items() if k not in STANDARD and not k.endswith("_std") and is_number(v)}
    varying = [k for k in series if len({r[k] for r in rows if is_number(r.get(k))}) > 1 or k == "kid"]
    extra = sorted(varying, key=lambda k: (k != "kid", k))[:most_extra]
    panels = [("loss", ["loss_d", "loss_g"]), ("mean D output", ["d_real", "d_fake"])] + [(k, [k]) for k in extra]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), sharex=True, squeeze=False)
    labels = {"loss_d": "discriminator", "loss_g": "generator", "d_real": "D(real)", "d_fake": "D(G(z))"}
    for ax, (title, keys) in zip(axes[:, 0], panels):
        drawn = 0
        for key in keys:
            pts = [(r["step"], r[key], r.get(f"{key}_std")) for r in rows if is_number(r.get(key))]
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, marker="o" if len(pts) < 30 else None, markersize=3, label=labels.get(key, key))
            drawn += 1
            if all(is_number(p[2]) for p in pts):
                ax.fill_between(xs, [y - p[2] for y, p in zip(ys, pts)], [y + p[2] for y, p in zip(ys, pts)], alpha=0.2)
        ax.set_ylabel(title)
        if len(keys) > 1 and drawn:
            ax.legend(loc="best", fontsize=8)
    axes[0, 0].set_title("Healthy GAN losses oscillate rather than fall")
    axes[1, 0].set_ylim(0, 1)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()

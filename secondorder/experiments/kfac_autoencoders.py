"""``make reproduce-kfac-autoencoders``: thesis Figs 6.9 / 6.10 (Martens & Grosse 2015, Fig. 4) — K-FAC
(block-diagonal and block-tridiagonal, with and without momentum) against the NAG-SGD baseline on the three
autoencoders; training error vs iterations and vs time. The texts give no numbers (seed002 report §7.5–§7.6):
the claims to check are "orders of magnitude" more per-iteration progress than the baseline with momentum
(L3545), tridiagonal 25–40 % more per iteration than block-diagonal (L3551), and momentum-less K-FAC "not
significantly faster than the baseline" (L3547). Momentum-less K-FAC used a fixed batch "chosen from a small range"
(value not given; 2000 here [choice]).
"""

from __future__ import annotations

from secondorder.experiments.comparison import Comparison, Method, ProblemSpec

COMPARISON = Comparison(
    name="kfac-autoencoders",
    title="K-FAC vs NAG on the deep autoencoders (thesis Fig. 6.9/6.10)",
    methods=[
        Method("kfac_blockdiag", ("experiment=kfac_{problem}", "optimizer=kfac")),
        Method("kfac_tridiag", ("experiment=kfac_{problem}", "optimizer=kfac_tridiag")),
        Method("kfac_no_momentum", ("experiment=kfac_{problem}", "optimizer=kfac", "optimizer.momentum=false",
                                    "optimizer.batch_schedule=fixed", "optimizer.batch_size=2000")),
        Method("nag", ("experiment=nag_{problem}",)),
    ],
    problems=[
        ProblemSpec("curves", (), ("dataset.n_train=4000", "dataset.n_test=2000")),
        ProblemSpec("mnist", (), ("dataset=mnist_5k",)),
        ProblemSpec("faces", (), ("dataset=faces_lfw", "dataset.variants_per_image=40")),
    ],
    notes=["Claims to compare with (thesis, no numbers given): K-FAC with momentum makes orders of magnitude more "
           "progress per iteration than NAG (L3545); the tridiagonal variant 25–40 % more than the block-diagonal "
           "one (L3551); without momentum K-FAC is not significantly faster than the baseline (L3547)."],
)

if __name__ == "__main__":
    raise SystemExit(COMPARISON.main())

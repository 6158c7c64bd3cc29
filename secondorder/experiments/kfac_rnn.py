"""``make reproduce-kfac-rnn``: Martens, Ba & Johnson (2018) §4 — K-FAC for RNNs (independence, Option 1,
Option 2) against Adam and SGD with momentum on word-level PTB (2-layer LSTM, 650 units; 1024 in the full
profile), character-level PTB (2 × 128, length 100) and the DNC repeated-copy task (seed004 report §5).

The paper prints no numbers (figures only): its claims are that K-FAC makes much more progress per update than
both baselines, costs ≈ 1.8× an SGD update on word PTB (L367) and ≈ 2× an Adam update on character PTB
(L375), and still wins in wall-clock time; on the DNC task it wins per update but only modestly per second
(L389). It ranks none of the three approximations (report §5.6). Baseline hyper-parameters were tuned by grid
search (L351) and are not reported: Adam's learning rate 0.03 here is the best of {0.003, 0.01, 0.03} in a
300-update sweep on a 2 × 64 character model, SGD with momentum 0.9 at learning rate 1.0 the best of
{0.2, 0.5, 1.0} in a 200-update sweep there; tune with ``sweep`` for real comparisons.
On PTB the baselines also run with the layer-normalised LSTM (``model.layer_norm=true``; Layer norm "speeds Adam
up considerably but hurts SGD", L369). The copy task uses a reduced DNC (:mod:`secondorder.models.memory_lstm`: an LSTM
controller with one content-addressed read and write head; no allocation or temporal links).

Quick profile: the same training time per cell on this CPU, smaller models (character PTB at the paper's size,
word PTB at 2 × 200, batch 20 / 32), validation and test perplexity on the first 20 000 tokens only — labelled.
"""

from __future__ import annotations

from secondorder.experiments.comparison import Comparison, Method, ProblemSpec

EVAL = ("dataset.eval_train_tokens=20000", "dataset.eval_tokens=20000")

METHODS = [
    *(Method(f"kfac_{approx}", ("optimizer=kfac_rnn", f"optimizer.approximation={approx}"))
      for approx in ("indep", "option1", "option2")),
    Method("adam", ("optimizer=adam", "optimizer.lr=0.03")),
    Method("sgd_momentum", ("optimizer=momentum", "optimizer.lr=1.0", "optimizer.momentum=0.9")),
]

LAYER_NORM = [Method(f"{m.label}_ln", (*m.overrides, "model.layer_norm=true")) for m in METHODS[3:]]

PROBLEMS = [
    ProblemSpec("ptb_char", ("experiment=kfac_rnn_ptb_char",),
                ("experiment=kfac_rnn_ptb_char", "dataset.batch_size=32", "optimizer.batch_size=32", *EVAL,
                 "trainer.eval_every=100"), methods=(*METHODS, *LAYER_NORM)),
    ProblemSpec("ptb_word", ("experiment=kfac_rnn_ptb_word",),
                ("experiment=kfac_rnn_ptb_word", "dataset.batch_size=20", "optimizer.batch_size=20",
                 "model.hidden_dim=200", "model.embedding_dim=200", *EVAL, "trainer.eval_every=100"),
                methods=(*METHODS, *LAYER_NORM)),
    ProblemSpec("ptb_word_1024", ("experiment=kfac_rnn_ptb_word", "model.hidden_dim=1024", "model.embedding_dim=1024"),
                None, methods=(*METHODS, *LAYER_NORM)),  # the paper's larger model (dashed lines, L361): full only
    ProblemSpec("dnc_copy", ("dataset=dnc_copy", "dataset.batch_size=200", "optimizer.batch_size=200",
                             "trainer.max_steps=5000", "trainer.eval_every=100"),
                ("dataset=dnc_copy", "dataset.batch_size=32", "optimizer.batch_size=32", "dataset.n_test=1000",
                 "trainer.eval_every=50")),
]

QUICK_SECONDS = {"ptb_char": 100, "ptb_word": 80, "dnc_copy": 30}


class KfacRnnComparison(Comparison):
    def cells(self, profile, runs_root):
        cells = super().cells(profile, runs_root)
        if profile == "quick":  # per-problem time budgets (the comparison's default is one value for all)
            for cell in cells:
                cell.overrides = [o for o in cell.overrides if not o.startswith("trainer.max_time_s=")]
                cell.overrides.append(f"trainer.max_time_s={QUICK_SECONDS[cell.labels['problem']]}")
        return cells


COMPARISON = KfacRnnComparison(
    name="kfac-rnn",
    title="K-FAC for RNNs (indep / option1 / option2) vs Adam and SGD (Martens, Ba & Johnson 2018)",
    methods=METHODS,
    problems=PROBLEMS,
    notes=["Paper's claims (no numbers printed): K-FAC beats Adam and SGD per update and in wall-clock time on "
           "PTB (≈ 1.8× an SGD update, L367; ≈ 2× an Adam update, L375); on the DNC copy task it wins per update, "
           "modestly per second (L389). Errors: perplexity (word), bits per character, fraction of wrong "
           "sequences (copy). The copy task's model is a reduced DNC (content-addressed memory only); `*_ln`: "
           "the baseline on the layer-normalised LSTM."],
    quick_budget=("trainer.max_steps=null", "trainer.max_epochs=null", "trainer.max_time_s=120",
                  "trainer.progress=false"),
)

if __name__ == "__main__":
    raise SystemExit(COMPARISON.main())

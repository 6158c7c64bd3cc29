"""``make reproduce-kfra-alignment``: Botev, Ritter & Barber (2017) App. G.2 — how well the KFRA and K-FAC updates
align with exact Gauss–Newton updates along a KFRA run.

At every ``every``-th iteration of a KFRA run, on a fresh batch of ``batch`` cases (1 000 in the paper) and with the
run's current damping d = γ + η (γ the factor damping, η the ℓ2 weight), we compute

* the **full GN** update δ_GN = −(G + d I)⁻¹ ∇h by CG with exact GGN-vector products ("as in Martens 2010", App. G.2);
* the **block-diagonal GN** update: the same, "applied independently for each separate layer" (CG on each
  G_λλ + d I);
* the KFRA and K-FAC updates δ̃ = −(Q̃ ⊗ 𝒢̃ + d I)⁻¹ ∇h per layer from factors estimated on the same batch (KFRA:
  the recursion; K-FAC: one sampled target per case), both with **factored damping** (eq. 36: (Q̃ + ω√d I) ⊗
  (𝒢̃ + √d/ω I), the optimiser's form) and with the **exact damped inverse** (eq. 35, through eigendecompositions),
  as App. G.2 compares;

and record cosine similarities: per layer δ̃_λ vs the block-diagonal GN update, and the whole δ̃ vs the full GN
update, and block-diagonal GN vs full GN. The paper's claims (App. G.2): KFRA aligns better with GN than K-FAC
throughout; batch sizes 250 / 500 / 1000 do not differ much. Its choices it leaves silent (recorded here, all
configurable): measured along the KFRA trajectory, CG to relative residual ``cg_tol`` or ``cg_iters`` iterations,
factors without running averages (the batch's own).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import Tensor

from secondorder.callbacks import Callback
from secondorder.composition import compose_config, path_override
from secondorder.curvature.products import GGNOperator
from secondorder.errors import ConfigError
from secondorder.experiments.alignment_verdicts import alignment_verdicts
from secondorder.experiments.measurements import load_measurement
from secondorder.experiments.verdicts import write_verdicts
from secondorder.kfac.factors import collect_statistics
from secondorder.kfac.inverses import BlockDiagonalInverse, robust_eigh
from secondorder.kfac.kfra import activations_after, kfra_statistics
from secondorder.kfac.layers import LinearLayers
from secondorder.problems import Sampler
from secondorder.report.tables import to_markdown
from secondorder.run_record import device_name, git_state
from secondorder.train import Trainer, run_training

PROFILES: dict[str, dict] = load_measurement("kfra-alignment")["profiles"]  # conf/measure/kfra-alignment.yaml


def conjugate_gradient(apply: callable, b: Tensor, max_iters: int, tol: float) -> tuple[Tensor, int]:
    """Solve A x = b (A SPD) from x = 0 until ‖r‖ ≤ tol ‖b‖ or ``max_iters``; returns (x, iterations)."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), torch.dot(r, r)
    threshold = (tol * torch.linalg.vector_norm(b)) ** 2
    for i in range(max_iters):
        if rr <= threshold:
            return x, i
        Ap = apply(p)
        alpha = rr / torch.dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = torch.dot(r, r)
        p, rr = r + (rr_new / rr) * p, rr_new
    return x, max_iters


def cosine(a: Tensor, b: Tensor) -> float:
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    return float(torch.dot(a, b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)))


def exact_damped_apply(A: Tensor, G: Tensor, V: Tensor, damping: float) -> Tensor:
    """(𝒢 ⊗ Q + d I)⁻¹ acting on the block V (row-major [W | b]): 𝒢 U Q + d U = V, by eigendecompositions."""
    (ea, qa), (eg, qg) = robust_eigh(A), robust_eigh(G)
    v = V.to(torch.float64)
    inner = (qg.T @ v @ qa) / (eg[:, None] * ea[None, :] + damping)
    return (qg @ inner @ qa.T).to(V.dtype)


@dataclass
class AlignmentProbe:
    """Everything needed to measure the alignment on one batch at the current parameters."""

    problem: object
    layers: object
    activations: list
    cg_iters: int
    cg_tol: float
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    def measure(self, batch: object, gamma: float) -> dict[str, float]:
        problem, layers = self.problem, self.layers
        damping = gamma + problem.l2
        params = [p for p in problem.model.parameters() if p.requires_grad]
        names = [n for n, p in problem.model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(problem.objective(batch), params)
        gradient_blocks = layers.to_blocks({n: g.detach() for n, g in zip(names, grads, strict=True)})
        operator = GGNOperator(problem, batch, include_l2=False)
        sizes = [b.numel() for b in gradient_blocks]
        offsets = [0, *torch.tensor(sizes).cumsum(0).tolist()]

        def gn_damped(flat: Tensor) -> Tensor:
            blocks = [flat[offsets[i]:offsets[i + 1]].reshape(b.shape) for i, b in enumerate(gradient_blocks)]
            out = operator(layers.from_blocks(blocks))
            return torch.cat([b.reshape(-1) for b in layers.to_blocks(out)]) + damping * flat

        g_flat = torch.cat([g.reshape(-1) for g in gradient_blocks])
        full, full_iters = conjugate_gradient(gn_damped, -g_flat, self.cg_iters, self.cg_tol)
        blockdiag, block_iters = [], 0
        for i in range(len(gradient_blocks)):
            def restricted(v: Tensor, i: int = i) -> Tensor:
                padded = torch.zeros_like(g_flat)
                padded[offsets[i]:offsets[i + 1]] = v
                return gn_damped(padded)[offsets[i]:offsets[i + 1]]

            solution, iters = conjugate_gradient(restricted, -g_flat[offsets[i]:offsets[i + 1]], self.cg_iters,
                                                 self.cg_tol)
            blockdiag.append(solution)
            block_iters = max(block_iters, iters)
        bd_flat = torch.cat(blockdiag)
        row: dict[str, float] = {"damping": damping, "cg_iters_full": full_iters, "cg_iters_block_max": block_iters,
                                 "blockdiag_gn_vs_full_gn": cosine(bd_flat, full)}
        run_forward = lambda: problem.outputs(batch)  # noqa: E731
        statistics = {
            "kfra": kfra_statistics(layers, self.activations, run_forward, problem.loss),
            "kfac": collect_statistics(layers, run_forward, problem.loss, "sampled", self.generator, False),
        }
        for name, stats in statistics.items():
            factored = BlockDiagonalInverse()
            factored.refresh(stats)
            proposals = {
                "factored": [-u for u in factored.apply(gradient_blocks, math.sqrt(damping))],
                "exact": [-exact_damped_apply(a, g, v, damping)
                          for a, g, v in zip(stats["A"], stats["G"], gradient_blocks, strict=True)],
            }
            for form, blocks in proposals.items():
                flat = torch.cat([b.reshape(-1) for b in blocks])
                row[f"{name}_{form}_vs_full_gn"] = cosine(flat, full)
                for i, b in enumerate(blocks):
                    row[f"{name}_{form}_layer{i + 1}_vs_blockdiag_gn"] = cosine(b, blockdiag[i])
        return row


PROBE_SEED_OFFSET = 2  # the measurement batches' own sampler: seed + 2 (the trainer's training sampler is separate)
MEASURED = ("every", "batch", "cg_iters", "cg_tol")  # the profile settings the callback itself uses


class AlignmentCallback(Callback):
    """The App. G.2 measurement as a trainer callback: at iteration 0 and after every ``every``-th step of the
    KFRA run it observes, :meth:`AlignmentProbe.measure` on a fresh batch of ``batch`` cases from its own sampler
    (seed ``run.seed + 2``), at the optimiser's current γ. Its rows (plus the batch objective ``train_loss``) are
    kept in its checkpointed state and written to ``alignment.csv`` in the run directory after each measurement;
    on resume the file is rewritten from the checkpoint's rows, so measurements after the last checkpoint are
    dropped and then repeated (identically: the probe sampler and the K-FAC target generator are checkpointed).
    """

    name = "alignment"

    def __init__(self, every: int, batch: int, cg_iters: int, cg_tol: float, verbose: bool = True) -> None:
        self.settings = {"every": every, "batch": batch, "cg_iters": cg_iters, "cg_tol": cg_tol}
        self.verbose = verbose
        self.rows: list[dict[str, float]] = []
        self.probe: AlignmentProbe | None = None
        self.sampler: Sampler | None = None
        self._restored: dict = {}

    def at_start(self, trainer: Trainer, resumed: bool) -> None:
        problem = trainer.problem
        if not hasattr(trainer.optimizer, "gamma"):
            raise ConfigError(f"the alignment measurement needs a K-FAC-family optimiser (optimizer=kfra); "
                              f"got optimizer={trainer.run.optimizer.name}")
        self.sampler = problem.make_sampler(seed=trainer.run.seed + PROBE_SEED_OFFSET)
        layers = LinearLayers(problem.model, lambda: problem.outputs(self.sampler.next(2)))
        self.probe = AlignmentProbe(problem, layers, activations_after(problem.model, layers),
                                    self.settings["cg_iters"], self.settings["cg_tol"])
        if resumed:  # the trainer has restored this callback's state (load_state_dict) first
            self.sampler.load_state_dict(self._restored["sampler"])
            self.probe.generator.set_state(self._restored["generator"])
            self._write(trainer.run_dir)
        else:
            self.rows = []
            self._measure(trainer)

    def after_step(self, trainer: Trainer, result: object) -> None:
        if trainer.iteration % self.settings["every"] == 0:
            self._measure(trainer)

    def _measure(self, trainer: Trainer) -> None:
        problem = trainer.problem
        batch = self.sampler.next(self.settings["batch"])
        row = self.probe.measure(batch, float(trainer.optimizer.gamma))
        with torch.no_grad():
            loss = float(problem.objective(batch))
        self.rows.append({"iteration": trainer.iteration, "train_loss": loss, **row})
        if self.verbose:
            print(f"iteration {trainer.iteration}: KFRA·GN {row['kfra_factored_vs_full_gn']:.3f}, "
                  f"K-FAC·GN {row['kfac_factored_vs_full_gn']:.3f}, blockGN·GN {row['blockdiag_gn_vs_full_gn']:.3f}",
                  flush=True)
        self._write(trainer.run_dir)

    def _write(self, run_dir: Path) -> None:
        tmp = run_dir / "alignment.csv.tmp"
        pd.DataFrame(self.rows).to_csv(tmp, index=False)
        tmp.replace(run_dir / "alignment.csv")

    def state_dict(self) -> dict:
        state: dict = {"settings": dict(self.settings), "rows": [dict(row) for row in self.rows]}
        if self.probe is not None:
            state.update(sampler=self.sampler.state_dict(), generator=self.probe.generator.get_state())
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["settings"] != self.settings:
            raise ConfigError(f"cannot resume this alignment run: it was measured with {state['settings']}, not "
                              f"{self.settings}; use another run directory")
        self.rows = [dict(row) for row in state["rows"]]
        self._restored = state


def run_overrides(settings: dict, run_dir: Path, data_dir: Path | None = None) -> list[str]:
    """The KFRA run as a trainer run: the profile's overrides, budget = its iterations, CPU (as the measurement's
    generator), checkpoints at every measurement, resumed when ``run_dir`` holds a checkpoint."""
    every = settings["every"]
    return [*settings["overrides"], f"trainer.max_steps={settings['iterations']}", "trainer.max_time_s=null",
            "trainer.max_epochs=null", f"trainer.eval_every={every}", f"trainer.checkpoint_every={every}",
            "trainer.device=cpu", "trainer.resume=auto", path_override("run_dir", run_dir),
            *([path_override("data_dir", data_dir)] if data_dir else [])]


def run_alignment(settings: dict, run_dir: Path, data_dir: Path | None = None) -> pd.DataFrame:
    """Run (or resume, or just read back when complete) the KFRA run in ``run_dir`` with the alignment callback;
    returns the measurements, one row per measured iteration."""
    run, resolved = compose_config(run_overrides(settings, run_dir, data_dir))
    callback = AlignmentCallback(**{key: settings[key] for key in MEASURED})
    run_training(run, Path(resolved["run_dir"]), resolved, callbacks=[callback])
    return pd.DataFrame(callback.rows)


def run_provenance(run_dir: Path | None) -> tuple[str, str]:
    """(commit, hardware) of the measured KFRA run from its ``summary.json`` (the last process that ran or resumed
    it); of this process's tree when the run directory has none (``write`` called on rows from elsewhere)."""
    summary = run_dir / "summary.json" if run_dir is not None else None
    if summary is not None and summary.exists():
        provenance = json.loads(summary.read_text()).get("provenance", {})
        commit, dirty = provenance.get("git_commit"), provenance.get("git_dirty")
        hardware = provenance.get("device_name")
    else:
        git = git_state(ignore=("results",))  # the reports this very command rewrites do not make the code dirty
        commit, dirty, hardware = git["git_commit"], git["git_dirty"], device_name(torch.device("cpu"))
    return f"{(commit or '?')[:10]}{' (dirty)' if dirty else ''}", str(hardware or "?")


def measured_problem(settings: dict) -> str:
    """The dataset the profile's KFRA run trains on (its ``dataset=`` override)."""
    return next((o.split("=", 1)[1] for o in settings.get("overrides", []) if o.startswith("dataset=")), "?")


def write(frame: pd.DataFrame, settings: dict, profile: str, out: Path, run_dir: Path | None = None) -> Path:
    """``alignment.md`` / ``.csv`` / ``.png`` and ``verdicts.md`` / ``.csv`` in ``out``; the provenance is the
    KFRA run's (``run_dir``)."""
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "alignment.csv", index=False)
    commit, hardware = run_provenance(run_dir)
    title = "KFRA / K-FAC alignment with Gauss–Newton updates (Botev et al. 2017 App. G.2)"
    provenance = (f"Runs: 1 (one KFRA run, {len(frame)} measurements); hardware: {hardware}; commit: {commit}.\n\n"
                  f"{' '.join(str(settings.get('note', '')).split())}")
    write_verdicts(out, title, profile, provenance, alignment_verdicts(frame, settings, measured_problem(settings)))
    if frame.empty:  # nothing measured yet: the verdicts say so, there is nothing to plot
        return out
    layer_columns = sorted({c.split("_layer")[1].split("_")[0] for c in frame.columns if "_layer" in c}, key=int)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2))
    palette = plt.get_cmap("tab10")
    colours = {"kfra": "tab:blue", "kfac": "tab:red"}
    for name, style in (("kfra", "-"), ("kfac", "--")):
        for form, marker in (("factored", "o"), ("exact", "s")):
            axes[1].plot(frame.iteration, frame[f"{name}_{form}_vs_full_gn"], style, marker=marker,
                         color=colours[name], alpha=1.0 if form == "factored" else 0.5,
                         label=f"{name.upper()} ({form} damping)")
            if form == "factored":  # one colour per layer: KFRA solid, K-FAC dashed
                for k, layer in enumerate(layer_columns):
                    axes[0].plot(frame.iteration, frame[f"{name}_{form}_layer{layer}_vs_blockdiag_gn"], style,
                                 marker=".", color=palette(k % 10), label=f"{name.upper()} layer {layer}")
    axes[1].plot(frame.iteration, frame.blockdiag_gn_vs_full_gn, ":", marker="^", color="k",
                 label="block-diagonal GN")
    cap = settings.get("cg_iters")
    for ax, column, what in ((axes[0], "cg_iters_block_max", "a layer's CG"), (axes[1], "cg_iters_full", "CG")):
        capped = frame.iteration[frame[column] >= cap] if cap is not None and column in frame else []
        if len(capped):
            ax.axvspan(min(capped), max(capped), color="0.9", zorder=0,
                       label=f"{what} at its cap of {cap} iterations (reference not converged)")
    axes[0].set_title("per layer: cos(δ̃_λ, block-diagonal GN update), factored damping")
    axes[1].set_title("whole update: cos(·, full GN update)")
    for ax, columns in ((axes[0], 4), (axes[1], 2)):
        ax.set_xlabel("KFRA iteration")
        ax.set_ylabel("cosine similarity")
        ax.legend(fontsize=6.5, ncol=columns, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    fig.savefig(out / "alignment.png", dpi=110)
    plt.close(fig)
    summary = frame[["iteration", "blockdiag_gn_vs_full_gn", "kfra_factored_vs_full_gn", "kfac_factored_vs_full_gn",
                     "kfra_exact_vs_full_gn", "kfac_exact_vs_full_gn", "cg_iters_full"]]
    wins = int((frame.kfra_factored_vs_full_gn > frame.kfac_factored_vs_full_gn).sum())
    lines = [
        f"# {title} — profile `{profile}`", "",
        settings.get("note", ""),
        f"Settings: { {k: v for k, v in settings.items() if k != 'note'} }. "
        f"Hardware: {hardware}; commit {commit}.", "",
        "Paper (App. G.2): KFRA aligns better with the exact GN update than K-FAC throughout the optimisation.",
        f"Here: KFRA's (factored-damping) update is closer to the full GN update than K-FAC's at {wins} of "
        f"{len(frame)} measurements; the verdicts: `verdicts.md`.", "",
        to_markdown(summary), "",
        "All columns (per layer, both damping forms): `alignment.csv`; plot: `alignment.png`.", ""]
    (out / "alignment.md").write_text("\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reproduce-kfra-alignment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="quick")
    parser.add_argument("--out", type=Path, default=Path("results/kfra-alignment"))
    parser.add_argument("--runs", type=Path, default=None,
                        help="the KFRA run goes to RUNS/<profile> (resumed there when interrupted; default "
                             "runs/kfra-alignment, or the profile's runs folder)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the run's alignment.csv as it is, running nothing (the run's "
                             "files, summary.json included, stay untouched)")
    args = parser.parse_args(argv)
    settings = {key: value for key, value in PROFILES[args.profile].items() if key != "runs"}
    runs = args.runs or Path(PROFILES[args.profile].get("runs", "runs/kfra-alignment")).expanduser()
    if args.report_only:
        measured = runs / args.profile / "alignment.csv"
        if not measured.exists():
            raise SystemExit(f"reproduce-kfra-alignment: {measured} does not exist; run without --report-only first")
        frame = pd.read_csv(measured)
    else:
        frame = run_alignment(settings, runs / args.profile, args.data_dir)
    out = write(frame, settings, args.profile, args.out / args.profile, runs / args.profile)
    print(f"wrote {out}/alignment.md, alignment.csv, alignment.png, verdicts.md (the KFRA run: {runs / args.profile})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

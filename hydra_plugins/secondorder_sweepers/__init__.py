"""Hydra sweepers for ``train -m``: grid, random and biased random search (:mod:`secondorder.search`).

    train -m hydra/sweeper=biased_random hydra.sweeper.n_trials=6 'optimizer.lr=tag(log,interval(1e-5,1e-1))'
    train -m +search=adam_lr hydra/launcher=submitit_slurm hydra.launcher.partition=gpu

Config names in the group ``hydra/sweeper``: ``biased_random`` (George 2017, Alg. 1), ``random_search`` and
``grid_search`` (the same sweeper with ``method`` = ``biased``, ``random``, ``grid``). Each batch of proposals is
launched through the configured ``hydra/launcher`` (local, ``submitit_local``, ``submitit_slurm``, …).
"""

"""Train, quantize, export and benchmark a grid of MobileNets; report the Pareto front.

    make sweep                                   # the grid in sweep.toml, on this machine
    python -m android_bench sweep sweep.toml --out build/sweep --target ssh://pi@raspberrypi

``grid`` reads the TOML grid, ``stages`` runs what is not done yet (each
configuration in ``OUT/<config-id>/``), ``report`` writes ``OUT/report.*``.
"""

"""Side-by-side performance comparisons of ``dae_tutor`` against a named baseline, run in one process.

Each module ``benchmarks/NAME.py`` has a ``main(argv)`` that prints a small table with ratios;
run it as ``python -m benchmarks NAME [options]`` or ``python benchmarks/NAME.py [options]``.
"""

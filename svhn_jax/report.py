"""`python -m svhn_jax.report`: the command users type; the program lives in `svhn_jax.cli.report`."""

if __name__ == "__main__":  # not in the worker processes a pool spawns (they import this as __mp_main__)
    from svhn_jax.cli.report import run_as_program
    run_as_program()

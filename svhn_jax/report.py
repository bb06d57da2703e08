"""`python -m svhn_jax.report`: the command users type; the program lives in `svhn_jax.report`."""
from svhn_jax.cli.report import run_as_program

if __name__ == "__main__":
    run_as_program()

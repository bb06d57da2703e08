"""`python -m svhn_jax.prepare`: the command users type; the program lives in `svhn_jax.prepare`."""
from svhn_jax.cli.prepare import run_as_program

if __name__ == "__main__":
    run_as_program()

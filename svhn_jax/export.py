"""`python -m svhn_jax.export`: the command users type; the program lives in `svhn_jax.cli.export`."""
from svhn_jax.cli.export import run_as_program

if __name__ == "__main__":
    run_as_program()

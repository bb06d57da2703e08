"""`python -m svhn_jax.main`: the command users type; the program lives in `svhn_jax.main`."""
from svhn_jax.cli.main import run_as_program

if __name__ == "__main__":
    run_as_program()

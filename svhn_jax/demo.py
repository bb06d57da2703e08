"""`python -m svhn_jax.demo`: the command users type; the program lives in `svhn_jax.cli.demo`."""
from svhn_jax.cli.demo import run_as_program

if __name__ == "__main__":
    run_as_program()

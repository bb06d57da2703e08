"""`python -m svhn_jax.score_photos`: the command users type; the program lives in `svhn_jax.score_photos`."""
from svhn_jax.cli.score_photos import run_as_program

if __name__ == "__main__":
    run_as_program()

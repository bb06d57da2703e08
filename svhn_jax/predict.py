"""`python -m svhn_jax.predict`: the command users type; the program lives in `svhn_jax.predict`."""
from svhn_jax.cli.predict import run_as_program

if __name__ == "__main__":
    run_as_program()

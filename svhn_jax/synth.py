"""`python -m svhn_jax.synth`: the command users type; the program lives in `svhn_jax.synth`."""
from svhn_jax.cli.synth import run_as_program

if __name__ == "__main__":
    run_as_program()

"""`python -m svhn_jax.import_ppocr`: the command users type; the program lives in `svhn_jax.cli.import_ppocr`."""
from svhn_jax.cli.import_ppocr import run_as_program

if __name__ == "__main__":
    run_as_program()

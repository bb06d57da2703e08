"""`python -m svhn_jax.main`: the command users type; the program lives in `svhn_jax.cli.main`."""

if __name__ == "__main__":  # not in the worker processes a pool spawns (they import this as __mp_main__)
    # Ctrl-C or SIGTERM while the libraries load (seconds): one line, not a traceback (`cli` takes over).
    # Only in the command's own process: the workers a rendering pool spawns import this module again
    # (as __mp_main__), and a worker the pool ends when its work is done must not report that.
    from svhn_jax.core import signals
    signals.handle_stop_signals(signals.exit_at_once)

    from svhn_jax.cli.main import run_as_program
    run_as_program()

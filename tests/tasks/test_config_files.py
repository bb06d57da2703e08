"""Training's ``--config`` files as users write them (`core.config.load_file`, `check_keys`, `cli.main`): a
file that is not a Python config, or lacks or misspells keys, is one line; a finished run says its result."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, run_module

from svhn_jax.core import config


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


HINT = "a config is a Python file whose get_config() returns an ml_collections ConfigDict (configs/*.py)"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Config files a user might hand over by mistake."""
    (tmp_path / "config.yaml").write_text("task: reader\nmodel: seed_cnn\n")
    (tmp_path / "config.json").write_text('{"model": "seed_cnn"}\n')
    (tmp_path / "syntax.py").write_text("def get_config(:\n")
    (tmp_path / "raises.py").write_text("import math\n\nraise RuntimeError('boom')\n")
    (tmp_path / "noget.py").write_text("x = 1\n")
    (tmp_path / "notdict.py").write_text("def get_config():\n    return 3\n")
    (tmp_path / "fails.py").write_text("def get_config():\n    return {}['model']\n")
    (tmp_path / "partial.py").write_text("import ml_collections\n\n\ndef get_config():\n"
                                         "    c = ml_collections.ConfigDict()\n"
                                         "    c.model = 'seed_cnn'\n    return c\n")
    (tmp_path / "typo.py").write_text("from svhn_jax.core import config\n\n\ndef get_config():\n"
                                      "    c = config.reader()\n    c.learning_rte = 0.1\n    return c\n")
    (tmp_path / "folder.py").mkdir()
    return tmp_path


def test_a_file_that_is_no_python_config_is_refused_in_one_line_naming_it(files):
    cases = {"config.yaml": f"line 1: NameError: name 'reader' is not defined; {HINT}",
             "config.json": f": defines no get_config(); {HINT}",
             "syntax.py": f"line 1: not Python (invalid syntax); {HINT}",
             "raises.py": f"line 3: RuntimeError: boom; {HINT}",
             "noget.py": f": defines no get_config(); {HINT}",
             "notdict.py": ": get_config() returned int, not an ml_collections ConfigDict; start from "
                           "svhn_jax.core.config.reader/localiser/line_reader() as configs/*.py do",
             "fails.py": "line 2: get_config() failed: KeyError: 'model'",
             "folder.py": ": not a config file (a folder)",
             "absent.py": ": no such file"}
    for name, reason in cases.items():
        with pytest.raises(ValueError) as e:
            config.load_file(str(files / name))
        sep = "" if reason.startswith(":") else " "
        assert str(e.value) == f"--config={files / name}{sep}{reason}"


def test_every_shipped_config_loads_with_exactly_its_tasks_keys():
    for path in sorted((REPO / "configs").glob("*.py")):
        if path.name != "__init__.py":
            config.check_keys(config.load_file(str(path)), str(path))


def test_a_config_that_lacks_or_misspells_keys_is_refused_naming_them(files):
    with pytest.raises(ValueError) as e:
        config.check_keys(config.load_file(str(files / "partial.py")), "--config=partial.py")
    assert str(e.value).startswith("--config=partial.py: lacks the reader config keys augment, batch_size, ")
    assert str(e.value).endswith(" more; start from svhn_jax.core.config.reader() as configs/*.py do")
    with pytest.raises(ValueError, match=r"^--config=typo.py: keys no reader run reads: learning_rte; start from "
                                         r"svhn_jax.core.config.reader\(\) as configs/\*.py do$"):
        config.check_keys(config.load_file(str(files / "typo.py")), "--config=typo.py")
    c = config.localiser()
    c.task = "detector"
    with pytest.raises(ValueError, match="^x.py: unknown task 'detector'; choose one of reader, localiser, "
                                         "line_reader$"):
        config.check_keys(c, "x.py")


@pytest.mark.slow
def test_training_with_a_config_that_is_not_python_or_lacks_keys_is_one_line(files):
    """Before: a YAML file and a syntax error were Python tracebacks, and a config lacking keys an
    AttributeError traceback from deep in training."""
    for name, end in (("config.yaml", f"line 1: NameError: name 'reader' is not defined; {HINT}"),
                      ("syntax.py", f"line 1: not Python (invalid syntax); {HINT}"),
                      ("partial.py", "more; start from svhn_jax.core.config.reader() as configs/*.py do")):
        result = run_module("svhn_jax.main", f"--config={files / name}", f"--workdir={files / 'run'}", timeout=120)
        assert result.returncode == 1 and result.stdout == ""
        line = _one_line(result)
        assert line.startswith(f"error: --config={files / name}") and line.endswith(end), line
    assert not (files / "run").exists()


@pytest.mark.slow
def test_a_finished_run_prints_its_final_accuracy_and_where_final_metrics_are(tmp_path, data_dir):
    result = run_module("svhn_jax.main", "--config=configs/test.py", f"--config.data_dir={data_dir}",
                        f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert result.stdout.splitlines()[-1] == (
        "done: reader seed_cnn, step 8, 100 test examples: "
        f"sequence accuracy {100 * final['eval_sequence_accuracy']:.1f} %, "
        f"digit accuracy {100 * final['eval_digit_accuracy']:.1f} %, loss {final['eval_loss']:.4g}; "
        f"final metrics in {tmp_path / 'run' / 'final_metrics.json'}")


@pytest.mark.slow
def test_training_help_shows_its_text_and_every_flag():
    """Before: --help printed the shim's one line ("the command users type; ...") and no flag at all."""
    from svhn_jax.cli import main
    result = run_module("svhn_jax.main", "--help", timeout=120)
    assert "Traceback" not in result.stderr and main.__doc__ in result.stdout, result.stdout[:2000]
    listed = re.findall(r"^  --(?:\[no\])?(\w+):", result.stdout, re.M)
    assert sorted(listed) == ["config", "coordinator_address", "cpu_devices", "num_processes", "overwrite",
                              "process_id", "workdir"], result.stdout

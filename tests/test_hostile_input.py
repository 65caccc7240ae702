"""Hostile and absurd input: every bad value is refused with one line that says what is
wrong and what to do; never a traceback, never silently accepted.

Most cases call the parsers directly (fast); a few go through the ``arena`` entry point
in this process (``main``: the one-line error and the exit code), and a few through a real
subprocess, the way a user hits them.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO, TINY_TOML, run_arena

from msda_arena.api.errors import ConfigError, UsageError
from msda_arena.api.spec import MAX_SPEC_LENGTH, SpecError, parse_spec
from msda_arena.cli.main import main
from msda_arena.data import check_dataset_options, load_dataset
from msda_arena.data.crops import Scenario
from msda_arena.grid.cells import parse_seeds, validate_archs
from msda_arena.grid.config import MAX_SEED, MAX_SEEDS, default_results, load_config, parse_config

BASE = (REPO / "arena.toml").read_text()


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# ----------------------------------------------------------------------------- arena.toml


def test_a_toml_syntax_error_names_the_file_and_the_line():
    lines = BASE.splitlines()
    line = next(i for i, t in enumerate(lines, 1) if t.startswith("[recipes.quick]"))
    lines[line - 1] = "[recipes.quick"
    with pytest.raises(ConfigError) as info:
        parse_config("\n".join(lines), "my/arena.toml")
    message = one_line(info)
    assert message.startswith(f"my/arena.toml:{line}:15: invalid TOML: Expected ']'"), message
    assert "fix the syntax" in message
    with pytest.raises(ConfigError, match=r"^my/arena.toml:3: invalid TOML: .*end of the file"):
        parse_config("[defaults]\nresults = 'r'\nx = ", "my/arena.toml")


NUMBERS = [
    # non-finite numbers anywhere a number is taken; TOML reads 1e400 as inf
    (("lr = 0.05\n", "lr = nan\n"), r"\[recipes.quick\]: lr = nan is not a finite number"),
    (("lr = 0.05\n", "lr = inf\n"), r"lr = inf is not a finite number; need 0 < lr <= 10"),
    (("lr = 0.05\n", "lr = 1e400\n"), r"lr = inf is not a finite number"),
    (("lr = 0.05\n", "lr = -inf\n"), r"lr = -inf is not a finite number"),
    (("momentum = 0.9", "momentum = nan"), r"momentum = nan is not a finite number"),
    (("weight_decay = 1e-4", "weight_decay = inf"), r"weight_decay = inf is not a finite"),
    (("lr = 0.05\n", "lr = 0.0\n"), r"lr = 0.0 is out of range; need 0 < lr <= 10"),
    (("lr = 0.05\n", "lr = -0.1\n"), r"lr = -0.1 is out of range"),
    (("momentum = 0.9", "momentum = 1.0"), r"momentum = 1.0 is out of range"),
    (("epochs = 8 ", "epochs = 0 "), r"\[recipes.quick\]: epochs = 0 is out of range; need 1 <="),
    (("epochs = 8 ", "epochs = -3 "), r"epochs = -3 is out of range"),
    (("epochs = 8 ", "epochs = 9223372036854775807 "), r"epochs = 9223372036854775807 is out"),
    (("batch_size = 64", "batch_size = 1"), r"batch_size = 1 is out of range; need 2 <="),
    (("batch_size = 64", "batch_size = 10000000"), r"batch_size = 10000000 is out of range"),
    (("warmup_epochs = 5", "warmup_epochs = 500"), r"warmup_epochs = 500 is more than epochs"),
    (("train_subset = 500 ", "train_subset = 5 "), r"train_subset = 5 is smaller than batch"),
    (("train_subset = 500 ", "train_subset = -1 "), r"train_subset = -1 is out of range"),
    # scenarios
    (("scale = [2.0, 4.0]", "scale = [nan, 4.0]"), r"\[scenarios.large-crop\]: .*finite"),
    (("scale = [2.0, 4.0]", "scale = [2.0, inf]"), r"scale .*must hold finite numbers"),
    (("scale = [2.0, 4.0]", "scale = [2.0, 1e300]"), r"scale .*must lie within 0.01 .. 100"),
    (("scale = [2.0, 4.0]", "scale = [1e-9, 4.0]"), r"scale .*must lie within 0.01 .. 100"),
    (("scale = [2.0, 4.0]", 'scale = "24"'), r"scale .*must be a number or a pair"),
    (("scale = [2.0, 4.0]", "scale = [true, 4.0]"), r"scale .*must be a number or a pair"),
    (("scale = [2.0, 4.0]", "scale = [1.0, 2.0, 3.0]"), r"scale .*must be a number or a pair"),
    (("ratio = [0.75, 1.3333333333333333]", "ratio = [0.0, 1.0]"), r"ratio must satisfy 0 <"),
    (("translate = 0.125", "translate = nan"), r"translate must be a number in \[0, 1\)"),
    (("translate = 0.125", 'translate = "0.5"'), r"translate must be a number in \[0, 1\)"),
    (("translate = 0.125", "translate = false"), r"translate must be a number in \[0, 1\)"),
    (("flip = true", 'flip = "yes"'), r"flip must be true or false"),
    (('description = "pad-4', "description = 4\n#"), r"description must be a string"),
]


@pytest.mark.parametrize(("change", "message"), NUMBERS)
def test_absurd_and_non_finite_numbers_are_refused(change, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(edit(*change), "arena.toml")
    assert one_line(info).startswith("arena.toml [")


UNKNOWN_KEYS = [
    (("[defaults]\n", "[defaults]\nresult = 'x'\n"), r"\[defaults\]: unknown key 'result'"),
    (
        ("translate = 0.125", "translat = 0.125"),
        r"\[scenarios.standard\]: .*unknown key.*'translat'",
    ),
    (("lr = 0.1 ", "lrate = 0.1 "), r"\[recipes.cifar\]: unknown key 'lrate'"),
    (('recipe = "quick"', 'recipe = "quick"\nrecipes = "x"'), r"\[profiles.quick\]: unknown key"),
    (("num_classes = 4", "num_clases = 4"), r"\[profiles.quick\]: unknown option.*'num_clases'"),
    (("[defaults]", "[extras]\na = 1\n[defaults]"), r"arena.toml: unknown table \[extras\]"),
]


@pytest.mark.parametrize(("change", "message"), UNKNOWN_KEYS)
def test_unknown_keys_name_the_key_and_the_table(change, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(edit(*change), "arena.toml")
    assert "allowed" in one_line(info)


def test_malformed_tables_and_names_are_one_line_errors():
    cases = [
        ("scenarios = 3\n[profiles.x]\n", r"\[scenarios\]: must be tables such as"),
        ("defaults = 3\n", r"\[defaults\]: must be a table"),
        ("[profiles]\nx = 3\n", r"\[profiles.x\]: must be a table, got 3"),
        (edit("[scenarios.standard]", '[scenarios."std\\n"]'), r"\[scenarios.'std\\n'\]: a name"),
        (edit("[recipes.quick]", "[recipes." + "q" * 65 + "]"), r"1 to 64 characters"),
        (edit('results = "results"', 'results = "a\\u0000b"'), r"control character '\\x00'"),
        (edit('results = "results"', 'results = " "'), r"'results' is empty"),
        (edit('data_root = "~/data/imagenet100"', 'data_root = "a\\nb"'), r"control character"),
    ]
    for text, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            parse_config(text, "arena.toml")
        one_line(info)


def test_a_config_that_is_not_utf8_or_not_readable_is_one_line(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(BASE.replace("# [ours]", "# caf\xe9").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.toml: not UTF-8 text \(byte \d+\)"):
        load_config(bad)
    with pytest.raises(UsageError, match=r"is a folder; pass an arena\.toml file"):
        load_config(tmp_path)


# ----------------------------------------------------------------------------- datasets


DATASET_OPTIONS = [
    ("num_classes = 4", "num_classes = 1000", r"num_classes of dataset 'procedural' is 1000; "
     r"it must be 2 <= num_classes <= 100 \(5 shapes x 4 textures x 5 cuts\)"),
    ("num_classes = 4", "num_classes = 1", r"2 <= num_classes <= 100"),
    ("image_size = 24", "image_size = 1", r"image_size .* is 1; it must be 8 <= image_size <= 512"),
    ("image_size = 24", "image_size = 100000", r"8 <= image_size <= 512"),
    ("image_size = 24", 'image_size = "24"', r"image_size .* must be a whole number, got '24'"),
    ("image_size = 24", "image_size = 24.0", r"must be a whole number, got 24.0"),
    ("train_size = 1024", "train_size = -5", r"train_size .* is -5; it must be 1 <= train_size"),
    ("train_size = 1024", "train_size = 0", r"1 <= train_size <= 1000000"),
    ("test_size = 1024", "test_size = 0", r"1 <= test_size"),
    ("train_size = 1024", "train_size = 10", r"10 training images .* fewer than batch_size 64"),
    ("object_scale = 0.6", "object_scale = nan", r"object_scale .* must be a finite number"),
    ("object_scale = 0.6", "object_scale = 0.0", r"0 < object_scale <= 1"),
    ("object_scale = 0.6", "object_scale = true", r"object_scale .* must be a number, got True"),
    ("object_scale = 0.6", "object_scale = 0.6, seed = -1", r"0 <= seed <= 2147483647"),
    (
        "train_size = 1024, test_size = 1024, num_classes = 4, image_size = 24",
        "train_size = 1000000, test_size = 1000000, num_classes = 4, image_size = 512",
        r"2000000 images of 3x512x512 pixels need 1464.8 GiB, over the 4 GiB limit",
    ),
    ('dataset = "procedural"', 'dataset = "cifar1000"', r"unknown dataset 'cifar1000'; choose"),
    ('dataset = "procedural"', 'dataset = "imagenet1k"', r"imagenet1k is published-only"),
    ("image_size = 224 }", "image_size = 4 }", r"dataset 'imagenet100' is 4; it must be 8 <="),
    ("image_size = 224 }", "image_size = 224, download = true }", r"unknown option.*'download'"),
    (
        'dataset = "cifar100"\n',
        'dataset = "cifar100"\ndataset_options = { download = 1 }\n',
        r"download of dataset 'cifar100' must be true or false, got 1",
    ),
    (
        "dataset_options = { label_noise = 0.2 }",
        "dataset_options = { label_noise = 0.2, image_size = 28 }",
        r"unknown option\(s\) 'image_size' for dataset 'fashion_mnist' "
        r"\(allowed: label_noise, label_noise_seed\)",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), DATASET_OPTIONS)
def test_dataset_options_are_checked_at_config_load(old, new, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(edit(old, new), "arena.toml")
    assert one_line(info).startswith("arena.toml [profiles.")


def test_the_loader_checks_the_same_rules_before_loading_anything():
    for options, message in [
        ({"num_classes": 1000}, "2 <= num_classes <= 100"),
        ({"image_size": 100_000}, "8 <= image_size <= 512"),
        ({"train_size": -5}, "1 <= train_size"),
        ({"train_size": 1_000_000, "image_size": 512}, "over the 4 GiB limit"),
    ]:
        with pytest.raises(UsageError, match=message):
            load_dataset("procedural", **options)
    with pytest.raises(UsageError, match="8 <= image_size <= 512"):
        load_dataset("imagenet100", root="/nonexistent", image_size=100_000)
    # sane options pass, and say how many training images they give
    assert check_dataset_options("procedural", {"train_size": 100, "image_size": 8}) == 100
    assert check_dataset_options("cifar10", {"download": False}) is None


def test_scenarios_built_in_python_are_checked_alike():
    for kwargs, message in [
        ({"scale": "12"}, "must be a number or a pair"),
        ({"scale": (math.nan, 1.0)}, "finite"),
        ({"scale": 10**400}, "finite"),
        ({"ratio": (0.01, 1.0)}, "within 0.1 .. 10"),
        ({"translate": "0.5"}, "translate must be a number"),
        ({"translate": math.inf}, "translate must be a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            Scenario("x", **kwargs)


# ----------------------------------------------------------------------------- seeds


def test_seeds_are_ascii_bounded_and_counted_before_expanding():
    assert parse_seeds(f"0,{MAX_SEED}") == (0, MAX_SEED)
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS
    started = time.perf_counter()
    for text, message in [
        (str(2**63), "is too large"),
        (str(2**31), "is too large"),
        ("9" * 5000, "is too large"),  # int() of 5000 digits would raise ValueError
        ("0-100000000", f"more than {MAX_SEEDS} seeds"),
        (f"0-{MAX_SEED}", f"more than {MAX_SEEDS} seeds"),
        (f"0-{MAX_SEEDS - 1},{MAX_SEEDS}", f"more than {MAX_SEEDS} seeds"),
        ("٣", "ASCII digits"),  # ARABIC-INDIC DIGIT THREE: int() and \d accept it
        ("１", "ASCII digits"),  # FULLWIDTH DIGIT ONE
        ("-1", "write seeds like"),
        ("1e3", "write seeds like"),
        ("", "write seeds like"),
    ]:
        with pytest.raises(UsageError, match=message) as info:
            parse_seeds(text)
        assert len(one_line(info)) < 300
    assert time.perf_counter() - started < 1  # nothing was expanded


def test_config_seeds_have_the_same_bounds():
    old = 'seeds = [0, 1]\nrecipe = "quick"'
    for seeds, message in [
        (f"[{2**31}]", r"'seeds' holds 2147483648; each seed must be an integer 0 <= seed <="),
        ("[9223372036854775807]", r"'seeds' holds 9223372036854775807"),
        ("[-1]", r"'seeds' holds -1"),
        ("[1.5]", r"'seeds' holds 1.5"),
        ("[1, 1]", r"'seeds' lists 1 twice"),
        (str(list(range(MAX_SEEDS + 1))), rf"at most {MAX_SEEDS} per run"),
    ]:
        with pytest.raises(ConfigError, match=message) as info:
            parse_config(edit(old, f'seeds = {seeds}\nrecipe = "quick"'), "arena.toml")
        one_line(info)


# ----------------------------------------------------------------------------- names


def test_architecture_names_are_checked_before_the_timm_lookup(monkeypatch):
    import timm

    def no_lookup(name):
        raise AssertionError(f"timm was asked about {name!r}")

    monkeypatch.setattr(timm, "is_model", no_lookup)
    for name in ("../../etc/passwd", "a/b", "..", ".hidden", "", "x" * 101, "res net", "r\n"):
        with pytest.raises(UsageError, match=r"architecture name .* is not allowed: use 1 to 100"):
            validate_archs((name,))
    with pytest.raises(UsageError, match="'resnet50' is named twice"):
        validate_archs(("resnet50", "resnet50"))
    with pytest.raises(ConfigError, match=r"'archs' holds '../x', not a valid name"):
        parse_config(edit('archs = ["resnet50"]', 'archs = ["../x"]'), "arena.toml")
    twice = edit('["large-crop", "small-crop"]  # [paper]', '["small-crop", "small-crop"]  #')
    with pytest.raises(ConfigError, match=r"'scenarios' names 'small-crop' twice"):
        parse_config(twice, "arena.toml")


def test_long_or_control_character_specs_are_refused():
    long = "hmix(r=0.25" + ", alpha=1" * 30 + ")"
    assert len(long) > MAX_SPEC_LENGTH
    with pytest.raises(SpecError, match=rf"is {len(long)} characters long; .* at most 200") as info:
        parse_spec(long)
    assert len(one_line(info)) < 150
    for bad in ("hmix\x1b[31m", "hmix(r=0.25)\x00", "mix\u202eup", "hmix\x7f"):
        with pytest.raises(SpecError, match=r"holds the control character .*\(U\+[0-9A-F]{4}\)"):
            parse_spec(bad)
    assert parse_spec("hmix(\n  r=0.25,\talpha=2\n)").params == {"r": 0.25, "alpha": 2}
    with pytest.raises(ConfigError, match=r"\[profiles.quick\]: 'baselines': method spec"):
        parse_config(edit('baselines = ["vanilla", "mixup", "cutmix", "hmix", "gmix"]\n',
                          'baselines = ["vanilla", "mix((up"]\n'), "arena.toml")  # fmt: skip


# ----------------------------------------------------------------------------- the command


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the ``arena`` entry point in this process; return (exit code, stdout, stderr)."""
    monkeypatch.delenv("ARENA_DEBUG", raising=False)

    def call(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(list(argv))
        out, err = capsys.readouterr()
        return info.value.code, out, err

    return call


def test_hostile_command_lines_are_one_line_errors(cli, tiny_config, tmp_path):
    configs = {
        "syntax": TINY_TOML.replace("[recipes.tiny]", "[recipes.tiny"),
        "nan": TINY_TOML.replace("lr = 0.05", "lr = nan"),
        "classes": TINY_TOML.replace("num_classes = 4", "num_classes = 1000"),
    }
    for name, text in configs.items():
        (tmp_path / f"{name}.toml").write_text(text)
    syntax_line = TINY_TOML.splitlines().index("[recipes.tiny]") + 1
    run = ("run", "--method", "mixup", "--dry-run", "--results", str(tmp_path / "r"))
    cases = [
        ((*run, "--config", str(tmp_path / "syntax.toml")), f"syntax.toml:{syntax_line}:"),
        ((*run, "--config", str(tmp_path / "nan.toml")), "lr = nan is not a finite number"),
        ((*run, "--config", str(tmp_path / "classes.toml")), "2 <= num_classes <= 100"),
        ((*run, "--config", str(tiny_config), "--seeds", str(2**63)), "is too large"),
        ((*run, "--config", str(tiny_config), "--seeds", "0-100000000"), "more than 10000"),
        ((*run, "--config", str(tiny_config), "--seeds", "٣"), "ASCII digits"),
        ((*run, "--config", str(tiny_config), "--arch", "../../x"), "architecture name"),
        ((*run, "--config", str(tiny_config), "--method", "x" * 300), "at most 200"),
        ((*run, "--config", str(tiny_config), "--method", "mix\x1bup"), "control character"),
        (("report", "--config", str(tmp_path / "none.toml")), "none.toml does not exist"),
        (("report", "--config", str(tmp_path / "syntax.toml")), f"syntax.toml:{syntax_line}:"),
    ]
    for argv, fragment in cases:
        code, out, err = cli(*argv)
        assert code == 2, (argv, err)
        assert err.startswith("arena: error: ") and err.count("\n") == 1, (argv, err)
        assert fragment in err and "Traceback" not in err, (argv, err)
        assert out == "" and not (tmp_path / "r").exists()


def test_a_user_sees_one_line_from_the_real_command(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(TINY_TOML.replace("lr = 0.05", "lr = 1e400"))  # TOML reads inf
    result = run_arena("run", "--method", "mixup", "--dry-run", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"arena: error: {config} [recipes.tiny]: lr = inf is not a finite number; "
        "need 0 < lr <= 10\n"
    )


# ----------------------------------------------------------------- arena report --config


def test_report_reads_the_store_named_by_its_config(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "arena.toml").write_text('[defaults]\nresults = "local-store"\n')
    other = tmp_path / "other.toml"
    other.write_text('[defaults]\nresults = "other-store"\n')
    assert default_results(other) == "other-store" and default_results() == "local-store"
    (tmp_path / "other-store").mkdir()
    code, _, err = cli("report", "--config", str(other))
    assert code == 1 and err == "arena: error: no results in other-store; run `arena run` " \
        "first or point --results at a store\n"  # fmt: skip
    code, _, err = cli("report", "--config", str(other), "--results", "given")
    assert code == 1 and "no result store at given;" in err  # --results wins
    code, _, err = cli("report")
    assert code == 1 and "no result store at local-store;" in err
    other.write_text('[defaults]\nresults = "a\\u0000b"\n')
    code, _, err = cli("report", "--config", str(other))
    assert code == 2 and "other.toml [defaults]: 'results' holds the control character" in err
    other.write_text("[defaults]\nresults = 3\n")
    code, _, err = cli("report", "--config", str(other), "--results", "given")
    assert code == 2 and "'results' must be a str, got 3" in err  # checked even then


def test_report_with_a_config_does_not_import_torch(tmp_path):
    (tmp_path / "other.toml").write_text('[defaults]\nresults = "elsewhere"\n')
    script = textwrap.dedent(
        """
        import sys
        from msda_arena.cli.main import main
        try:
            main(["report", "--config", "other.toml"])
        except SystemExit as exc:
            print(exc.code, "torch" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.stdout.split() == ["1", "False"], result
    assert result.stderr == (
        "arena: error: no result store at elsewhere; run `arena run` first or point "
        "--results at one\n"
    )

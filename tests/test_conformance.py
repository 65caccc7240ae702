import torch

from msda_arena import MaskMethod, get_method
from msda_arena.methods.cutmix import CutMix
from msda_arena.pluginkit.conformance import RULES, assert_conforms, run_checks


def failed(method):
    return {r.rule: r.detail for r in run_checks(method) if not r.passed}


def test_every_builtin_passes_every_rule():
    for spec in ["vanilla", "mixup", "cutmix", "hmix", "gmix", "mixup-cutmix", "hmix(r=0.25)"]:
        results = run_checks(spec)
        assert [r.rule for r in results] == list(RULES)
        assert failed(spec) == {}, spec


class OutOfRange(MaskMethod):
    name = "oor"

    def masks(self, lam, height, width, generator):
        return lam.view(-1, 1, 1, 1).expand(-1, 1, height, width) * 2.0


class GlobalRandom(MaskMethod):
    name = "globalrand"

    def masks(self, lam, height, width, generator):
        return torch.rand(lam.shape[0], 1, height, width)  # ignores the generator


class Looped(CutMix):
    name = "looped"

    def masks(self, lam, height, width, generator):
        return torch.cat(
            [
                CutMix.masks(self, lam[i : i + 1], height, width, generator)
                for i in range(lam.shape[0])
            ]
        )


class Raises(MaskMethod):
    name = "raises"

    def masks(self, lam, height, width, generator):
        raise RuntimeError("boom")


def test_out_of_range_values_fail_the_range_rule():
    f = failed(OutOfRange())
    assert "range" in f and "[0, 1]" in f["range"]
    assert "shape" not in f and "dtype" not in f


def test_ignoring_the_generator_fails_determinism():
    assert set(failed(GlobalRandom())) == {"determinism"}


def test_a_python_loop_per_sample_fails_vectorised():
    assert set(failed(Looped())) == {"vectorised"}


def test_a_raising_method_fails_runs_with_the_error():
    f = failed(Raises())
    assert "boom" in f["runs"]


def test_assert_conforms_names_the_failed_rule():
    try:
        assert_conforms(OutOfRange())
    except AssertionError as exc:
        assert str(exc).startswith("range:")
    else:
        raise AssertionError("an out-of-range method passed")
    assert_conforms(get_method("gmix"))


class NumpyLoop(MaskMethod):
    name = "numpyloop"

    def masks(self, lam, height, width, generator):
        import numpy as np

        rows = []
        for value in lam.tolist():  # per-sample work outside torch
            m = np.full((1, height, width), value, dtype=np.float32)
            for _ in range(20):
                m = np.clip(m, 0.0, 1.0)
            rows.append(m)
        return torch.from_numpy(np.stack(rows))


def test_a_per_sample_loop_outside_torch_fails_vectorised_by_time():
    f = failed(NumpyLoop())
    assert set(f) == {"vectorised"} and "us per extra sample" in f["vectorised"]

"""llama-cpp-python built for the CPU at hand (rag/models/llama_build.py): the flags each CPU kind gets (AMX
never), the preflight that refuses a build this CPU cannot run, and what `make install` put in this environment."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.models import llama_build as lb

#: /proc/cpuinfo flags of the CPU kinds seen here and of the ones users have
SAPPHIRE_RAPIDS = ("fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl "
                   "avx512vbmi avx512_vnni avx512_bf16 avx512_fp16 avx_vnni amx_tile amx_int8 amx_bf16")
EPYC_ZEN4 = ("fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl "
             "avx512vbmi avx512_vnni avx512_bf16 avx_vnni")
HASWELL = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2"
OLD = "fpu sse sse2 ssse3 sse4_1 sse4_2"


def flags(text: str) -> set[str]:
    return lb.cpu_flags(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {text}\n")


@pytest.mark.parametrize("cpu, variant", [(SAPPHIRE_RAPIDS, "zen4"), (EPYC_ZEN4, "zen4"), (HASWELL, "haswell"),
                                          (OLD, "sse42"), ("fpu sse sse2", "x64")])
def test_each_cpu_gets_the_richest_variant_it_runs_and_never_amx(cpu, variant):
    assert lb.choose_variant(flags(cpu)) == variant
    args = lb.build_for(variant).cmake_args.split()
    assert "-DGGML_NATIVE=OFF" in args
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(args)
    assert not any("AMX" in a and a.endswith("=ON") for a in args)
    # every feature the variant turns on, this CPU has; every other one is off, explicitly
    on = {a.split("=")[0].removeprefix("-DGGML_") for a in args if a.endswith("=ON")}
    assert on == set(lb.VARIANTS[variant]) and lb.supports(flags(cpu), tuple(on))


def test_the_cache_key_names_version_variant_and_flags():
    zen4, haswell = lb.build_for("zen4"), lb.build_for("haswell")
    assert zen4.key != haswell.key and zen4.key == lb.build_for("zen4").key
    assert zen4.key.startswith(f"llama-cpp-python-{lb.VERSION}-zen4-")


INFO_AMX = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 |"
INFO_AVX512 = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 |"
INFO_AVX2 = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | OPENMP = 1 |"


def test_preflight_refuses_what_would_crash_and_says_how_to_rebuild():
    assert "AMX" in lb.preflight(INFO_AMX, flags(SAPPHIRE_RAPIDS)) and "make install" in lb.preflight(INFO_AMX, flags(SAPPHIRE_RAPIDS))
    why = lb.preflight(INFO_AVX512, flags(HASWELL))
    assert "another CPU" in why and "AVX512" in why and "AVX512_VNNI" in why
    assert lb.preflight(INFO_AVX512, flags(SAPPHIRE_RAPIDS)) is None
    assert lb.preflight(INFO_AVX2, flags(HASWELL)) is None
    assert lb.compiled_features(INFO_AMX)["AMX_INT8"] is True and "AVX512" not in lb.compiled_features(INFO_AVX2)


def test_make_install_built_llama_cpp_for_this_cpu_without_amx():
    """What `make install` left in this environment: the record matches this CPU's build and the library
    it describes, and the CPU kernels hold no AMX instruction at all."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    record = lb.installed_record()
    if record is None:
        pytest.skip("llama-cpp-python was not installed by make install (no rag-llama-build.json in this environment)")
    assert record["key"] == lb.build_for(lb.choose_variant(lb.cpu_flags())).key
    assert record["library_sha256"] == lb.installed_library(sys.executable)
    if shutil.which("objdump") is None:
        pytest.skip("objdump is not installed: the library's instructions cannot be listed")
    import llama_cpp

    library = Path(llama_cpp.__file__).parent / "lib" / "libggml-cpu.so"
    code = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True).stdout
    amx = [line for line in code.splitlines() if any(op in line for op in ("ldtilecfg", "tileloadd", "tdpbssd", "tdpbf16ps"))]
    assert code and not amx, amx[:5]
    assert lb.preflight(llama_cpp.llama_print_system_info().decode()) is None

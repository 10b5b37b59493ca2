"""llama-cpp-python built for the CPU it runs on, with no code path that crashes there.

Why this exists (written by hand: pip has no notion of CPU flags):
- pip builds llama-cpp-python from source with `-march=native`. On an Intel Xeon with AMX that compiles
  llama.cpp's AMX matmul in, and every generation dies with SIGSEGV in `ggml_backend_amx_mul_mat`
  (`ldtilecfg`; llama.cpp #20824, PR #26954: the tile permission is requested on one thread only).
- A native wheel built on an AVX-512 machine dies with SIGILL on an AVX2-only one, and pip's wheel cache
  is keyed by the package version alone, so a cached or shared wheel carries the wrong flags across CPUs.

So the flags are chosen here, explicitly: the richest of ggml's own x86 CPU variants (the list of
GGML_CPU_ALL_VARIANTS in ggml/src/CMakeLists.txt) that this CPU supports, with AMX always off and
`GGML_NATIVE=OFF`. The wheel is built with pip's cache off, kept in a cache folder of our own under a key
made of the version, the variant and the exact CMake arguments, and the key is recorded beside the
virtual environment (`<venv>/rag-llama-build.json`). A wheel built for another CPU is never picked up:
another CPU gives another key. At run time `preflight()` compares what the installed library was compiled
with (llama.cpp's own system info) with this CPU and refuses, with the fix, instead of crashing.

Standard library only: the Makefile runs it (`python rag/models/llama_build.py install ...`) before the
project's dependencies are installed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

VERSION = "0.3.36"  # pinned in pyproject.toml; the runs-everywhere flags were checked with it
RECORD = "rag-llama-build.json"  # beside the virtual environment (sys.prefix)

#: ggml's CMake feature switch -> the /proc/cpuinfo flags the instructions it enables need (gcc's
#: -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw for GGML_AVX512, ggml/src/ggml-cpu/CMakeLists.txt)
FEATURES: dict[str, tuple[str, ...]] = {
    "SSE42": ("sse4_2",),
    "AVX": ("avx",),
    "F16C": ("f16c",),
    "FMA": ("fma",),
    "AVX2": ("avx2",),
    "BMI2": ("bmi2",),
    "AVX_VNNI": ("avx_vnni",),
    "AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "AVX512_VBMI": ("avx512vbmi",),
    "AVX512_VNNI": ("avx512_vnni",),
    "AVX512_BF16": ("avx512_bf16",),
}
#: never compiled in (the crash above); listed so that the build says so explicitly
NEVER = ("AMX_TILE", "AMX_INT8", "AMX_BF16")

#: ggml's x86 CPU variants (GGML_CPU_ALL_VARIANTS), without "sapphirerapids", the one with AMX
VARIANTS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("SSE42",),
    "sandybridge": ("SSE42", "AVX"),
    "ivybridge": ("SSE42", "AVX", "F16C"),
    "piledriver": ("SSE42", "AVX", "F16C", "FMA"),
    "haswell": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"),
    "skylakex": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512"),
    "cannonlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI"),
    "cascadelake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI"),
    "icelake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI"),
    "cooperlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI", "AVX512_BF16"),
    "zen4": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"),
    "alderlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI"),
}

#: llama.cpp's system-info names (llama_print_system_info) -> our feature names, for preflight()
_SYSTEM_INFO = {"SSE42": "SSE42", "AVX": "AVX", "F16C": "F16C", "FMA": "FMA", "AVX2": "AVX2", "BMI2": "BMI2",
                "AVX_VNNI": "AVX_VNNI", "AVX512": "AVX512", "AVX512_VBMI": "AVX512_VBMI",
                "AVX512_VNNI": "AVX512_VNNI", "AVX512_BF16": "AVX512_BF16"}


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The instruction-set flags /proc/cpuinfo lists for the first CPU (empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name as /proc/cpuinfo gives it ("" where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def supports(flags: set[str], features: tuple[str, ...]) -> bool:
    return all(f in flags for feature in features for f in FEATURES[feature])


def choose_variant(flags: set[str]) -> str:
    """The variant with the most features this CPU runs (ggml scores its variants the same way)."""
    fitting = [name for name, features in VARIANTS.items() if supports(flags, features)]
    return max(fitting, key=lambda name: len(VARIANTS[name]))


@dataclass(frozen=True)
class Build:
    variant: str
    cmake_args: str

    @property
    def key(self) -> str:
        digest = hashlib.sha256(f"{VERSION} {self.cmake_args}".encode()).hexdigest()[:12]
        return f"llama-cpp-python-{VERSION}-{self.variant}-{digest}"

    def record(self, cpu: str) -> dict:
        return {"key": self.key, "version": VERSION, "variant": self.variant, "features": list(VARIANTS[self.variant]),
                "cmake_args": self.cmake_args, "built_for_cpu": cpu}


def build_for(variant: str) -> Build:
    on = set(VARIANTS[variant])
    switches = ["-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=OFF", "-DGGML_CPU_ALL_VARIANTS=OFF", "-DLLAVA_BUILD=OFF"]
    switches += [f"-DGGML_{feature}={'ON' if feature in on else 'OFF'}" for feature in FEATURES]
    switches += [f"-DGGML_{feature}=OFF" for feature in NEVER]
    return Build(variant, " ".join(switches))


def installed_record(prefix: str | Path = sys.prefix) -> dict | None:
    """What rag-llama-build.json says about the llama-cpp-python in the environment at `prefix`."""
    try:
        return json.loads((Path(prefix) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def installed_library(python: str) -> str | None:
    """sha256 of the CPU kernels (libggml-cpu.so) of the llama_cpp in the environment of `python`, found
    without importing it; None when there is none. It tells our build from one pip put there since."""
    probe = ("import importlib.util, pathlib; s = importlib.util.find_spec('llama_cpp'); "
             "print(pathlib.Path(s.origin).parent / 'lib' / 'libggml-cpu.so' if s else '')")
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    path = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install(python: str, cache: Path, flags: set[str] | None = None, cpu: str | None = None) -> str:
    """Make the environment of `python` hold llama-cpp-python built for this CPU. Returns what was done."""
    flags = cpu_flags() if flags is None else flags
    build = build_for(choose_variant(flags))
    prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                            check=True).stdout.strip()
    record = installed_record(prefix)
    if record and record.get("key") == build.key and record.get("library_sha256") == installed_library(python):
        return f"llama-cpp-python {VERSION} already built for this CPU ({build.variant}, AMX off)"
    folder = cache / build.key
    wheels = sorted(folder.glob("llama_cpp_python-*.whl")) if folder.is_dir() else []
    done = f"llama-cpp-python {VERSION} for {build.variant} (AMX off) from the wheel cache {folder}"
    if not wheels:
        wheels = [_build_wheel(python, build, folder)]
        done = f"llama-cpp-python {VERSION} built for {build.variant} (AMX off) into {folder}"
    (Path(prefix) / RECORD).unlink(missing_ok=True)  # no record may outlive the library it describes
    # a wheel of the same version would count as installed already: the other build goes first
    subprocess.run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "llama-cpp-python"], check=False,
                   capture_output=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-cache-dir", str(wheels[-1])], check=True)
    tmp = Path(prefix) / (RECORD + ".tmp")
    record = build.record(cpu if cpu is not None else cpu_name()) | {"library_sha256": installed_library(python)}
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, Path(prefix) / RECORD)
    return done


def _build_wheel(python: str, build: Build, folder: Path) -> Path:
    """pip wheel from the sdist with our flags and pip's cache off, moved into `folder` only when whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    print(f"building llama-cpp-python {VERSION} for this CPU ({build.variant}, AMX off; about 10 minutes on 2 cores)...",
          flush=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".build-") as tmp:
        env = {**os.environ, "CMAKE_ARGS": build.cmake_args, "FORCE_CMAKE": "1"}
        env.pop("SOURCE_DATE_EPOCH", None)  # it would switch GGML_NATIVE's default; ours is explicit anyway
        subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-cache-dir",
                        "--no-binary", "llama-cpp-python", f"llama-cpp-python=={VERSION}", "-w", tmp], check=True, env=env)
        wheel = next(Path(tmp).glob("llama_cpp_python-*.whl"))
        (Path(tmp) / "build.json").write_text(json.dumps(build.record(cpu_name()), indent=1), encoding="utf-8")
        staged = Path(tmp) / "staged"
        staged.mkdir()
        shutil.move(str(wheel), staged / wheel.name)
        shutil.move(str(Path(tmp) / "build.json"), staged / "build.json")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staged, folder)  # the cache entry appears whole or not at all
    return folder / wheel.name


def compiled_features(system_info: str) -> dict[str, bool]:
    """Feature -> compiled in, from llama.cpp's system info ("CPU : SSE3 = 1 | AVX = 1 | ... | AMX_INT8 = 1 |")."""
    found: dict[str, bool] = {}
    for part in system_info.replace("\n", "|").split("|"):
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if name and value.strip() in ("0", "1"):
            found[name] = value.strip() == "1"
    return found


def preflight(system_info: str, flags: set[str] | None = None) -> str | None:
    """Why the installed llama.cpp must not run on this CPU (None when it may): compiled with AMX (the
    crash above), or with instructions this CPU lacks (SIGILL). The reason says how to rebuild."""
    flags = cpu_flags() if flags is None else flags
    compiled = compiled_features(system_info)
    fix = "rebuild it for this CPU: make install (or python rag/models/llama_build.py install --python <venv python>)"
    if any(compiled.get(f) for f in NEVER):
        return f"llama-cpp-python was compiled with Intel AMX, whose llama.cpp code path crashes (llama.cpp #20824); {fix}"
    if not flags:  # no /proc/cpuinfo (not Linux): nothing to compare
        return None
    missing = [name for name, feature in _SYSTEM_INFO.items() if compiled.get(name) and not supports(flags, (feature,))]
    if missing:
        return f"llama-cpp-python was compiled for another CPU (it uses {', '.join(missing)}, which this CPU lacks); {fix}"
    return None


def check(gguf: str, max_tokens: int = 4) -> str:
    """Load `gguf` in this process and write a few tokens (the smoke test runs this in a subprocess: a crash
    ends that process only). Returns the text; raises what llama.cpp raises."""
    from llama_cpp import Llama, llama_print_system_info

    if (why := preflight(llama_print_system_info().decode("utf-8", "replace"))) is not None:
        raise SystemExit(why)
    llm = Llama(model_path=gguf, n_ctx=512, n_threads=os.cpu_count() or 1, verbose=False)
    out = llm.create_chat_completion(messages=[{"role": "user", "content": "What is 2 + 3? Reply with the number only."}],
                                     max_tokens=max_tokens, temperature=0.0)
    return out["choices"][0]["message"]["content"]


def diagnosis(prefix: str | Path = sys.prefix) -> str:
    """What a person needs to see when the model fails on a machine: the CPU, its flags, what the installed
    llama.cpp was compiled with (asked in a subprocess: importing the library runs none of its kernels) and
    how it was built."""
    info = subprocess.run([sys.executable, "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"],
                          capture_output=True, text=True, timeout=60)
    flags = cpu_flags()
    wanted = sorted({f for feature in FEATURES.values() for f in feature} | {"amx_tile", "amx_int8", "amx_bf16"})
    return "\n".join([
        f"CPU: {cpu_name() or 'unknown'}",
        f"CPU flags that matter: {' '.join(f for f in wanted if f in flags) or '(none)'}",
        f"llama.cpp compiled with: {(info.stdout or info.stderr).strip() or '(could not import llama_cpp)'}",
        f"build record ({Path(prefix) / RECORD}): {json.dumps(installed_record(prefix)) or 'none: not built by make install'}",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install llama-cpp-python built for this CPU into an environment")
    inst.add_argument("--python", default=sys.executable, help="the environment's python (default: this one)")
    inst.add_argument("--cache", required=True, type=Path, help="folder of built wheels, one subfolder per build key")
    show = sub.add_parser("show", help="print the variant and CMake arguments this CPU gets")
    show.add_argument("--cpuinfo", type=Path, help="a saved /proc/cpuinfo instead of this machine's")
    smoke = sub.add_parser("check", help="write a few tokens with a GGUF in this process; print the CPU and the build")
    smoke.add_argument("--gguf", required=True)
    args = parser.parse_args(argv)
    if args.command == "install":
        print(install(args.python, args.cache))
    elif args.command == "check":
        print(diagnosis(), flush=True)
        print(f"generated: {check(args.gguf)!r}")
    else:
        text = args.cpuinfo.read_text(encoding="utf-8") if args.cpuinfo else None
        build = build_for(choose_variant(cpu_flags(text)))
        print(json.dumps(build.record(cpu_name(text)) | {"key": build.key}, indent=1))


if __name__ == "__main__":
    main()

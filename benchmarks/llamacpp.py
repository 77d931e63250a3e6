"""llama.cpp tools for the comparison benchmarks, built once from the llama-cpp-python sdist.

    tool("llama-bench") / tool("llama-server") -> path of the binary

The sources are cached in ~/.cache/sparrow/llama.cpp/src, the build in .../build (cmake,
Release, native CPU flags). LLAMA_BENCH / LLAMA_SERVER name existing binaries instead.
"""
import os
import subprocess
import sys
import tarfile

CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "sparrow")
VERSION = "0.3.36"
ENV = {"llama-bench": "LLAMA_BENCH", "llama-server": "LLAMA_SERVER"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def tool(name):
    if os.environ.get(ENV[name]):
        return os.environ[ENV[name]]
    build = os.path.join(CACHE, "llama.cpp", "build")
    exe = os.path.join(build, "bin", name)
    if os.path.exists(exe):
        return exe
    src = os.path.join(CACHE, "llama.cpp", "src")
    if not os.path.exists(os.path.join(src, "CMakeLists.txt")):
        sdist_dir = os.path.join(CACHE, "llama.cpp", "sdist")
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
             "-d", sdist_dir, f"llama-cpp-python=={VERSION}"])
        tar = os.path.join(sdist_dir, f"llama_cpp_python-{VERSION}.tar.gz")
        prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
        with tarfile.open(tar) as tf:
            for m in tf:
                if m.name.startswith(prefix) and len(m.name) > len(prefix):
                    m.name = m.name[len(prefix):]
                    tf.extract(m, src)
    run([sys.executable, "-m", "pip", "install", "-q", "cmake"])
    print(f"building {name} (once, a few minutes)...", file=sys.stderr)
    run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DGGML_NATIVE=ON",
         "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON"])
    run(["cmake", "--build", build, "--target", name, "-j", str(os.cpu_count() or 2)])
    return exe

"""Build step of the sample app "api".

Byte-compiles the package, checks it imports, bundles it with its version and
an asset manifest into a single zipapp, and writes gzip-compressed,
content-fingerprinted copies of the static assets.
"""

import argparse
import compileall
import gzip
import hashlib
import json
import os
import shutil
import sys
import zipapp


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    stage = os.path.abspath("stage")
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree("src", stage)
    shutil.copy("VERSION", os.path.join(stage, "api", "VERSION"))

    os.makedirs(os.path.join(args.out, "assets"), exist_ok=True)
    manifest = {}
    for name in sorted(os.listdir("assets")):
        data = open(os.path.join("assets", name), "rb").read()
        digest = hashlib.sha256(data).hexdigest()[:12]
        base, ext = os.path.splitext(name)
        fingerprinted = "%s.%s%s" % (base, digest, ext)
        with gzip.open(os.path.join(args.out, "assets", fingerprinted + ".gz"), "wb", 9) as fh:
            fh.write(data)
        manifest[name] = fingerprinted
    with open(os.path.join(stage, "api", "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)

    if not compileall.compile_dir(stage, quiet=1):
        sys.exit("build: byte-compilation failed")
    sys.path.insert(0, stage)
    import api.main  # noqa: F401  -- the bundle must import before it ships

    zipapp.create_archive(stage, os.path.join(args.out, "api.pyz"), main="api.main:main")
    print("build: bundled %d assets into %s" % (len(manifest), os.path.join(args.out, "api.pyz")))


if __name__ == "__main__":
    main()

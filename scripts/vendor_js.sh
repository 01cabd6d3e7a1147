#!/usr/bin/env bash
# Refresh the two JavaScript packages the book ships instead of loading them from a CDN:
#   _static/mathjax/        MathJax 3 (Apache-2.0): TeX input, CHTML output, its fonts and
#                           the TeX extensions its autoloader may ask for; nothing else.
#   scripts/vendor/axe-core/ axe-core (MPL-2.0), injected by scripts/browser_check.py.
# Needs npm (Debian package `npm`) and the npm registry. Usage: bash scripts/vendor_js.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MATHJAX=mathjax@3.2.2
AXE=axe-core@4.14.1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$MATHJAX" "$AXE" >/dev/null && mkdir mj axe \
  && tar xzf mathjax-*.tgz -C mj && tar xzf axe-core-*.tgz -C axe)

mj="$work/mj/package"
rm -rf _static/mathjax
mkdir -p _static/mathjax/output/chtml/fonts _static/mathjax/input/tex
cp "$mj/LICENSE" _static/mathjax/LICENSE
cp "$mj/es5/tex-chtml.js" _static/mathjax/
cp -r "$mj/es5/output/chtml/fonts/woff-v2" _static/mathjax/output/chtml/fonts/
cp -r "$mj/es5/input/tex/extensions" _static/mathjax/input/tex/
# all-packages.js is only for the tex-full bundles; the autoloader never asks for it.
rm _static/mathjax/input/tex/extensions/all-packages.js

rm -rf scripts/vendor/axe-core
mkdir -p scripts/vendor/axe-core
cp "$work/axe/package/axe.min.js" "$work/axe/package/LICENSE" scripts/vendor/axe-core/
echo "$MATHJAX $AXE" > scripts/vendor/VERSIONS
du -sh _static/mathjax scripts/vendor/axe-core

#!/bin/sh
# Creates, once, a virtualenv under target/python-clients with the official OpenAI and
# Ollama Python clients (tests/python/requirements.txt), and prints the path of its python.
# It is rebuilt when the requirements change. Needs python3 with venv, and PyPI.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/python-clients"
requirements="$root/tests/python/requirements.txt"
if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 is missing: install it (Debian: apt-get install python3 python3-venv)" >&2
    exit 3
fi
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2; then
        echo "python3 cannot create a virtualenv: install python3-venv" >&2
        exit 3
    fi
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2; then
        echo "pip could not install $requirements (is PyPI reachable?)" >&2
        exit 3
    fi
    cp "$requirements" "$venv/requirements.txt"
fi
echo "$venv/bin/python"
